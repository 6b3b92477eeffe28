# Activation functions, applied in place to a layer's pre-activations.
#
# The ids are the contract with fastmlp/activations.py (which reads them from
# fastmlp._kernels._dense.ACTIVATION_IDS); add a new activation here, in ``activate`` and in the
# reference, and nowhere else.
from cython cimport floating
from libc.math cimport exp, expf

cdef enum:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_RELU = 2


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), without overflow for large |z|."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + _exp(-z))
    e = _exp(z)
    return e / (1 + e)


cdef inline void activate(int act, floating* z, floating* d, Py_ssize_t n) noexcept nogil:
    """z[i] := f(z[i]) and, when d is not NULL, d[i] := f'(z[i]) (the derivative cache)."""
    cdef Py_ssize_t i
    cdef floating a
    if act == ACT_RELU:
        if d == NULL:
            for i in range(n):
                z[i] = z[i] if z[i] > 0 else 0
        else:
            for i in range(n):
                if z[i] > 0:
                    d[i] = 1
                else:
                    z[i] = 0
                    d[i] = 0
    elif act == ACT_SIGMOID:
        for i in range(n):
            a = sigmoid(z[i])
            z[i] = a
            if d != NULL:
                d[i] = a * (1 - a)
    elif act == ACT_IDENTITY:
        if d != NULL:
            for i in range(n):
                d[i] = 1
