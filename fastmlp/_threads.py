"""How many threads BLAS may use inside fastmlp's kernels: one decision, in one place.

The default policy ("auto") serves both ways of using the machine. A fit alone uses the idle
cores for its large products; fits running at the same time in several Python threads (a
``GridSearchCV`` on joblib's threading backend, training releases the GIL) share them instead of
oversubscribing them: while ``k`` fits with large products run, BLAS gets
``max(1, idle // k)`` threads, recomputed whenever one starts or ends. ``idle`` is the cores
this process may use less the load of other work (the one-minute load average beyond fastmlp's
own fits): OpenBLAS's threads wait for each other by spinning, so on cores that other
processes keep busy a second thread makes products several times slower (measured here: a
60-60-60-1 full-batch fit 6x slower on two threads than on one on two loaded cores). Products
too small for several threads to pay (below ``MULTITHREAD_MIN``) run on one. ``set_num_threads(n)`` fixes the
number instead; ``set_num_threads(None)`` leaves BLAS's own setting alone.

The limit is process-wide (OpenBLAS's pthreads pool serves every thread) and must work from
any thread. threadpoolctl >= 3.8 lets only the first thread that sets an OpenBLAS limit change
it (other threads "silently do nothing"), so fastmlp does not go through its limiting API: it
uses threadpoolctl only to find the BLAS libraries loaded in the process, then calls OpenBLAS's
own ``openblas_set_num_threads`` (or, for the other libraries and for OpenBLAS on its OpenMP
layer, whose limit is per thread, the controller's ``set_num_threads``). The original limits are
restored when the last fit ends.
"""
import contextlib
import os
import threading

__all__ = ["set_num_threads", "get_num_threads", "blas_threads"]

# OpenBLAS threads a product only from m * n * k >= 65536 * 4 (its GEMM_MULTITHREAD_THRESHOLD):
# below that nothing needs limiting.
OPENBLAS_THREADING_MIN = 1 << 18
# Below this m * n * k, a second thread costs more in synchronisation than it saves. Measured
# on this project's 2-core machine (loaded by other work): a digits fit (batches of 200 through
# 64x128, m * n * k = 1.6e6) took 0.43 s on one thread and 4.6 s on two; a 784-512-256-10 fit
# (8e7) is where a second thread can pay on a quiet machine.
MULTITHREAD_MIN = 1 << 23

_lock = threading.Lock()
_setting = "auto"
_local = threading.local()          # .depth: nesting of blas_threads in this thread
_fits = {}                          # counted blocks (outermost in a thread, large products)
                                    # -> whether their products exceed MULTITHREAD_MIN
_pools = None                       # list of _Pool, found once
_original = None                    # the limits before the first active block


def set_num_threads(n):
    """Set the number of BLAS threads fastmlp's kernels use.

    Parameters
    ----------
    n : int >= 1, "auto" or None
        "auto" (the default): a fit alone uses the idle cores for its large products, concurrent
        fits share the cores. An int: that many threads for every fit. None: leave BLAS's own
        setting alone.

    Examples
    --------
    >>> import fastmlp
    >>> fastmlp.set_num_threads(2)
    >>> fastmlp.get_num_threads()
    2
    >>> fastmlp.set_num_threads("auto")
    """
    global _setting
    valid_int = isinstance(n, int) and not isinstance(n, bool) and n >= 1
    if not (valid_int or n is None or (isinstance(n, str) and n == "auto")):
        raise ValueError(f"the number of threads must be an integer >= 1, 'auto' or None; "
                         f"got {n!r}")
    with _lock:
        _setting = n
        if _fits:
            _apply()


def get_num_threads():
    """The setting of ``set_num_threads``: "auto" (the default), an int, or None.

    Examples
    --------
    >>> import fastmlp
    >>> fastmlp.get_num_threads()
    'auto'
    """
    return _setting


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:              # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class _Pool:
    """One BLAS library's thread pool, set from any thread."""

    def __init__(self, controller):
        self.controller = controller
        self.per_thread = getattr(controller, "threading_layer", None) == "openmp"
        self._get = self._set = None
        if controller.internal_api == "openblas" and not self.per_thread:
            for prefix in ("", "scipy_"):
                for suffix in ("", "64_", "_64"):
                    setter = getattr(controller.dynlib,
                                     f"{prefix}openblas_set_num_threads{suffix}", None)
                    getter = getattr(controller.dynlib,
                                     f"{prefix}openblas_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None:
                        self._get, self._set = getter, setter
                        break
                if self._set is not None:
                    break

    def get(self):
        return self._get() if self._get is not None else self.controller.get_num_threads()

    def set(self, n):
        if self._set is not None:
            self._set(n)
        else:           # MKL, BLIS, FlexiBLAS, OpenBLAS on OpenMP: threadpoolctl's own call
            self.controller.set_num_threads(n)


def _find_pools():
    global _pools
    if _pools is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:             # then BLAS keeps its own setting
            _pools = []
        else:
            _pools = [_Pool(c) for c in ThreadpoolController().lib_controllers
                      if c.user_api == "blas"]
    return _pools


def _loadavg():
    """The one-minute load average (0 where the system does not report one)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):          # pragma: no cover - Windows
        return 0.0


def idle_cores():
    """The cores this process may use that other work does not keep busy (at least 1)."""
    others = max(0.0, _loadavg() - len(_fits))
    return max(1, cores() - int(others + 0.5))


def _wanted(original):
    """The thread count for a pool whose own setting is ``original`` (under ``_lock``)."""
    if _setting != "auto":
        return _setting
    if not any(_fits.values()):
        return 1
    return max(1, min(original or 1, idle_cores()) // len(_fits))


def _apply(per_thread=False):
    """Set the pools to the wanted count (under ``_lock``): the process-wide pools, or with
    ``per_thread`` those whose limit belongs to the calling thread (set by that thread)."""
    if _setting is None or _original is None:
        return
    for pool, original in zip(_pools, _original):
        if pool.per_thread == per_thread:
            n = _wanted(original)
            if pool.get() != n:
                pool.set(n)


@contextlib.contextmanager
def blas_threads(work):
    """Within this block, BLAS uses the threads the policy gives (see the module docstring).

    ``work`` is the largest m * n * k of the products to come: below
    ``OPENBLAS_THREADING_MIN`` nothing is limited, and the block does not count as a fit.
    Blocks nest within a thread (a fit's validation pass inside the fit counts once), and may
    end in any order.
    """
    global _original
    depth = getattr(_local, "depth", 0)
    counted = _setting is not None and work >= OPENBLAS_THREADING_MIN and depth == 0
    _local.depth = depth + 1
    key = object()
    try:
        if counted:
            with _lock:
                pools = _find_pools()
                if not _fits:
                    _original = [pool.get() for pool in pools]
                _fits[key] = work >= MULTITHREAD_MIN     # one step: no count without its key
                _apply()
                _apply(per_thread=True)
        yield
    finally:
        _local.depth -= 1
        if counted:
            with _lock:
                if _fits.pop(key, None) is not None:
                    _released()


def _released():
    """A counted block ended (under ``_lock``): give the cores to the others, or put the
    original limits back after the last."""
    global _original
    if not _fits:
        for pool, original in zip(_pools, _original):
            if original is not None and pool.get() != original:
                pool.set(original)
        _original = None
        return
    _apply()
    for pool, original in zip(_pools, _original):
        if pool.per_thread and original is not None:
            pool.set(original)
