"""Build the Cython kernels under fastmlp/_kernels/.

Environment switches:
  FASTMLP_NATIVE=1  compile with -march=native (faster on the build machine, not portable).
  FASTMLP_DEBUG=1   turn bounds and wraparound checks back on in every kernel.
"""
import os
import sys
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTMLP_DEBUG") == "1"
native = os.environ.get("FASTMLP_NATIVE") == "1"

compile_args = []
if sys.platform != "win32":
    compile_args = ["-O3", "-fno-math-errno", "-Wno-unreachable-code"]
    if native:
        compile_args.append("-march=native")

extensions = [
    Extension(
        "fastmlp._kernels." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=compile_args,
    )
    for path in sorted(glob(os.path.join("fastmlp", "_kernels", "*.pyx")))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "nonecheck": False,
        },
    ),
)
