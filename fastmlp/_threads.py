"""How many threads BLAS may use inside fastmlp's kernels.

OpenBLAS runs large products on several threads, and on a busy machine its spinning threads
make small and medium products many times slower (measured here: 5.7x slower for a
784-512-256-10 network on two loaded cores). fastmlp therefore runs its BLAS calls on one thread
by default, and gets parallelism from training several models at once (training releases the
GIL). ``set_num_threads`` changes that.

The limit is applied with threadpoolctl around each training or prediction call whose products
are large enough for OpenBLAS to thread them, and is reference-counted, so that concurrent fits
in several Python threads do not undo each other's limit. While a limit is active it applies to
every BLAS library of the process (NumPy's too).
"""
import contextlib
import threading

__all__ = ["set_num_threads", "get_num_threads", "blas_threads"]

# OpenBLAS threads a product only from m * n * k >= 65536 * 4 (its GEMM_MULTITHREAD_THRESHOLD).
OPENBLAS_THREADING_MIN = 1 << 18

_lock = threading.Lock()
_num_threads = 1
_depth = 0
_limiter = None
_controller = None


def set_num_threads(n):
    """Set the number of BLAS threads fastmlp's kernels use: an int >= 1, or None to leave
    BLAS's own setting alone. The default is 1.

    Examples
    --------
    >>> import fastmlp
    >>> fastmlp.set_num_threads(2)
    >>> fastmlp.get_num_threads()
    2
    >>> fastmlp.set_num_threads(1)
    """
    global _num_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"the number of threads must be an integer >= 1 or None; got {n!r}")
    with _lock:
        _num_threads = n


def get_num_threads():
    """The number of BLAS threads fastmlp's kernels use (None: BLAS's own setting)."""
    return _num_threads


def _get_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:         # then BLAS keeps its own setting
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def blas_threads(work):
    """Within this block, BLAS uses ``get_num_threads()`` threads, if ``work`` (the largest
    m * n * k of the products to come) is large enough for BLAS to thread at all."""
    global _depth, _limiter
    if _num_threads is None or work < OPENBLAS_THREADING_MIN:
        yield
        return
    with _lock:
        if _depth == 0:
            controller = _get_controller()
            _limiter = controller.limit(limits=_num_threads, user_api="blas") if controller else None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
