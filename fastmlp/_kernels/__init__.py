"""Compiled kernels (Cython). Nothing here is public API; see fastmlp.MLP.

``CPU_TARGET`` names the CPU target whose hand-written loops run ('baseline', 'avx2' or
'avx512'; see ``_dense.set_cpu_target`` and the environment variable ``FASTMLP_CPU``).
"""


def __getattr__(name):
    if name == "CPU_TARGET":
        from ._dense import cpu_target
        return cpu_target()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
