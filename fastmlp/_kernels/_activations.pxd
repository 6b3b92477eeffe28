# Activation functions, applied in place to a layer's pre-activations.
#
# The ids are the contract with fastmlp/activations.py (which reads them from
# fastmlp._kernels._dense.ACTIVATION_IDS); add a new activation here, in ``activate``, in
# ``_dense.ACTIVATION_IDS``/``ACTIVATION_DEFAULT_PARAMS`` and in the reference.
#
# Every formula is written so that no intermediate overflows or cancels badly for |z| up to 1e3
# in float32 and float64: exponentials only ever see -|z| (or -z^2/2), and 1 - sigmoid(z) is
# taken from the same exp(-|z|) rather than by subtraction.
from cython cimport floating
from libc.math cimport erfc, erfcf, exp, expf, expm1, expm1f, log1p, log1pf, tanh, tanhf

cdef enum:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_RELU = 2
    ACT_TANH = 3
    ACT_LEAKY_RELU = 4
    ACT_ELU = 5
    ACT_GELU = 6
    ACT_GELU_TANH = 7
    ACT_SILU = 8
    ACT_SOFTPLUS = 9
    ACT_MISH = 10

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _erfc(floating x) noexcept nogil:
    if floating is float:
        return erfcf(x)
    else:
        return erfc(x)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), without overflow for large |z|."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + _exp(-z))
    e = _exp(z)
    return e / (1 + e)


cdef inline void activate(int act, floating param, floating* z, floating* d,
                          Py_ssize_t n) noexcept nogil:
    """z[i] := f(z[i]) and, when d is not NULL, d[i] := f'(z[i]) (the derivative cache).

    ``param`` is the negative slope of leaky_relu and the alpha of elu; the others ignore it.
    One loop per activation, so the branch on ``act`` is taken once per call.
    """
    cdef Py_ssize_t i
    cdef floating x, a, e, r, s, sc, t, u
    cdef floating SQRT_2_OVER_PI = <floating> 0.7978845608028654   # sqrt(2 / pi)
    cdef floating INV_SQRT_2 = <floating> 0.7071067811865476       # 1 / sqrt(2)
    cdef floating INV_SQRT_2PI = <floating> 0.3989422804014327     # 1 / sqrt(2 pi)
    cdef floating GELU_C = <floating> 0.044715                     # cubic term of the tanh GELU
    if act == ACT_RELU:
        # Selects rather than branches: the sign of z is a coin toss, and a mispredicted branch
        # per element cost more than the layer's products on small networks.
        if d != NULL:
            for i in range(n):
                d[i] = 1 if z[i] > 0 else 0
        for i in range(n):
            z[i] = z[i] if z[i] > 0 else 0
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
    elif act == ACT_TANH:
        for i in range(n):
            a = _tanh(z[i])
            z[i] = a
            if d != NULL:
                d[i] = 1 - a * a
    elif act == ACT_LEAKY_RELU:
        # f = z (z > 0), param * z (z <= 0); selects, not branches, as for relu.
        if d != NULL:
            for i in range(n):
                d[i] = 1 if z[i] > 0 else param
        for i in range(n):
            z[i] = z[i] if z[i] > 0 else param * z[i]
    elif act == ACT_ELU:
        # f = z (z > 0), param * (exp(z) - 1) (z <= 0); f' = 1, param * exp(z). The derivative
        # is not taken as f + param, which cancels for very negative z.
        for i in range(n):
            x = z[i]
            if x > 0:
                if d != NULL:
                    d[i] = 1
            else:
                z[i] = param * _expm1(x)
                if d != NULL:
                    d[i] = param * _exp(x)
    elif act == ACT_GELU:
        # f = z Phi(z), f' = Phi(z) + z phi(z); Phi(z) = erfc(-z / sqrt 2) / 2 keeps the left
        # tail accurate where 1 + erf(z / sqrt 2) would cancel.
        for i in range(n):
            x = z[i]
            s = <floating> 0.5 * _erfc(-x * INV_SQRT_2)
            z[i] = x * s
            if d != NULL:
                d[i] = s + x * INV_SQRT_2PI * _exp(<floating> -0.5 * x * x)
    elif act == ACT_GELU_TANH:
        # f = z s with s = (1 + tanh(u)) / 2 = sigmoid(2u), u = sqrt(2/pi) (z + c z^3);
        # f' = s + z s (1 - s) 2 u'. s and 1 - s both come from e = exp(-|2u|).
        for i in range(n):
            x = z[i]
            u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x)
            e = _exp(-2 * (u if u >= 0 else -u))
            r = 1 / (1 + e)
            if u >= 0:
                s = r
                sc = e * r
            else:
                s = e * r
                sc = r
            z[i] = x * s
            if d != NULL:
                d[i] = s + 2 * x * s * sc * SQRT_2_OVER_PI * (
                    1 + 3 * GELU_C * x * x)
    elif act == ACT_SILU:
        # f = z s, f' = s (1 + z (1 - s)) with s = sigmoid(z)
        for i in range(n):
            x = z[i]
            e = _exp(-x if x >= 0 else x)
            r = 1 / (1 + e)
            if x >= 0:
                s = r
                sc = e * r
            else:
                s = e * r
                sc = r
            z[i] = x * s
            if d != NULL:
                d[i] = s * (1 + x * sc)
    elif act == ACT_SOFTPLUS:
        # f = max(z, 0) + log1p(exp(-|z|)), f' = sigmoid(z)
        for i in range(n):
            x = z[i]
            e = _exp(-x if x >= 0 else x)
            z[i] = (x if x > 0 else 0) + _log1p(e)
            if d != NULL:
                d[i] = 1 / (1 + e) if x >= 0 else e / (1 + e)
    elif act == ACT_MISH:
        # f = z t with t = tanh(softplus(z)); f' = t + z (1 - t^2) sigmoid(z)
        for i in range(n):
            x = z[i]
            e = _exp(-x if x >= 0 else x)
            t = _tanh((x if x > 0 else 0) + _log1p(e))
            z[i] = x * t
            if d != NULL:
                d[i] = t + x * (1 - t * t) * (1 / (1 + e) if x >= 0 else e / (1 + e))
