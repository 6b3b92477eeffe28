"""How many threads BLAS may use inside fastmlp's kernels: one decision, in one place.

The default policy ("auto") is deterministic and serves both ways of using the machine. A fit
alone uses every core this process may run on for its large products; fits running at the same
time in several Python threads (a ``GridSearchCV`` on joblib's threading backend: training
releases the GIL) share them instead of oversubscribing them. While ``k`` fits run, and one of
them has products of at least ``MULTITHREAD_MIN`` multiply-adds, BLAS gets
``max(1, cores // k)`` threads (``cores``: the cores this process may run on, capped by BLAS's
own setting, e.g. ``OPENBLAS_NUM_THREADS`` or an outer ``threadpoolctl`` limit), recomputed
whenever a fit starts or ends. Every running fit counts, small ones too: each keeps a core busy,
and OpenBLAS's threads wait for each other by spinning, so a product split over more threads
than free cores runs several times slower than on one. Products too small for several threads to
pay (below ``MULTITHREAD_MIN``, measured by ``benchmarks/switchover.py --threads``) run on one.
The rule reads nothing but the fits of this process: the machine's other work is not guessed at
(a load average also counts this process's own recent work, and changes from one fit to the
next). ``set_num_threads(n)`` fixes the number instead; ``set_num_threads(None)`` leaves BLAS's
own setting alone.

The limit is process-wide (OpenBLAS's pthreads pool serves every thread) and must work from
any thread. threadpoolctl >= 3.8 lets only the first thread that sets an OpenBLAS limit change
it (other threads "silently do nothing"), so fastmlp does not go through its limiting API: it
uses threadpoolctl only to find the BLAS libraries loaded in the process, then calls OpenBLAS's
own ``openblas_set_num_threads`` (or, for the other libraries and for OpenBLAS on its OpenMP
layer, whose limit is per thread, the controller's ``set_num_threads``). The original limits are
restored when the last fit ends.
"""
import os
import threading

__all__ = ["set_num_threads", "get_num_threads", "blas_threads"]

# OpenBLAS threads a product only from m * n * k >= 65536 * 4 (its GEMM_MULTITHREAD_THRESHOLD):
# a fit whose products are all smaller never needs a limit set (it still counts as a fit).
OPENBLAS_THREADING_MIN = 1 << 18
# A fit whose largest product (m * n * k) is below this runs BLAS on one thread: a second
# thread costs about as much in synchronisation as it saves. ``benchmarks/switchover.py
# --threads`` measures the engine's products on one thread against two. On this project's
# 2-core machine, idle: the `wide` network's products with batches of 128 (2.1e7 to 5.1e7) run
# 1.9x faster on two threads (float32 1651 us a batch against 3143, 187 GFLOP/s, 92% of a
# 2048x2048 product's rate; float64 1.94x), so a second thread pays there. A second thread on a
# core that other processes keep busy makes a product several times slower (OpenBLAS's threads
# wait for each other by spinning); fastmlp does not guess at other processes' load:
# ``set_num_threads(1)`` is the setting for a busy machine.
MULTITHREAD_MIN = 1 << 23

_lock = threading.Lock()
_setting = "auto"
_local = threading.local()          # .depth: nesting of blas_threads in this thread
_fits = {}                          # running fits (outermost blocks in a thread) -> their work
_pools = None                       # list of _Pool, found once
_original = None                    # the limits before fastmlp set any, while it holds them


def set_num_threads(n):
    """Set the number of BLAS threads fastmlp's kernels use.

    Parameters
    ----------
    n : int >= 1, "auto" or None
        "auto" (the default): a fit alone uses every core for its large products, ``k``
        concurrent fits get ``cores // k`` threads each. An int: that many threads for every
        fit. None: leave BLAS's own setting alone.

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
        if _original is not None:
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


def policy(running, original, n_cores):
    """The "auto" thread count: BLAS threads for each fit while fits whose largest products
    are ``running`` (m * n * k each) run together, under a BLAS setting of ``original``
    threads, on ``n_cores`` cores.

    Examples
    --------
    >>> from fastmlp._threads import policy
    >>> policy([1 << 26], original=2, n_cores=2)             # a large fit alone: every core
    2
    >>> policy([1 << 26, 1 << 20], original=2, n_cores=2)    # two fits: a core each
    1
    >>> policy([1 << 20], original=2, n_cores=2)             # medium products: one thread
    1
    """
    if not running or max(running) < MULTITHREAD_MIN:
        return 1
    return max(1, min(original or 1, n_cores) // len(running))


def _wanted(original):
    """The thread count for a pool whose own setting is ``original`` (under ``_lock``)."""
    if _setting != "auto":
        return _setting
    return policy(list(_fits.values()), original, cores())


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


def _threaded():
    """Whether a running fit has products BLAS may thread (under ``_lock``)."""
    return any(work >= OPENBLAS_THREADING_MIN for work in _fits.values())


class blas_threads:
    """Within this block, BLAS uses the threads the policy gives (see the module docstring).

    ``work`` is the largest m * n * k of the products to come. The outermost block in a thread
    counts as one running fit (a fit's validation pass inside the fit counts once); limits are
    set while a running fit has products of at least ``OPENBLAS_THREADING_MIN`` (smaller ones
    never run threaded). Blocks may end in any order. A class rather than a generator: a
    small fit or a one-row prediction pays about a microsecond for it.
    """
    __slots__ = ("work", "counted")

    def __init__(self, work):
        self.work = work
        self.counted = False

    def __enter__(self):
        global _original
        depth = getattr(_local, "depth", 0)
        _local.depth = depth + 1
        if _setting is None or depth:
            return self
        try:
            with _lock:
                _fits[self] = self.work         # one step: no count without its key
                self.counted = True
                if _original is None and self.work >= OPENBLAS_THREADING_MIN:
                    _original = [pool.get() for pool in _find_pools()]
                if _original is not None:
                    _apply()
                    _apply(per_thread=True)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        _local.depth -= 1
        if self.counted:
            self.counted = False
            with _lock:
                if _fits.pop(self, None) is not None:
                    _released()
        return False


def _released():
    """A counted block ended (under ``_lock``): give the cores to the others, or put the
    original limits back once no running fit needs them."""
    global _original
    if _original is None:
        return
    if not _threaded():
        for pool, original in zip(_pools, _original):
            if original is not None and pool.get() != original:
                pool.set(original)
        _original = None
        return
    _apply()
    for pool, original in zip(_pools, _original):
        if pool.per_thread and original is not None:
            pool.set(original)
