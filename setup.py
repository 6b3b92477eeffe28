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

# --- CPU dispatch (issue 9) -------------------------------------------------------------------
# The hand-written batch loops live in fastmlp/_kernels/_simd_body.h and are compiled, inside
# _dense, once per CPU target through __attribute__((target(...))) (see _simd.h): the build flags
# stay portable (baseline x86-64, or whatever the platform's default is) and the module picks the
# AVX2/FMA or AVX-512 versions at import when the CPU has them. No target flag is passed here, so
# MSVC and non-x86 builds compile only the portable versions. The headers are listed as depends
# (rebuild on change, shipped in the sdist).
KERNEL_DIR = os.path.join("fastmlp", "_kernels")
SIMD_HEADERS = [os.path.join(KERNEL_DIR, name) for name in ("_simd.h", "_simd_body.h")]
SIMD_USERS = {"_dense"}
# -----------------------------------------------------------------------------------------------


def _extension(path):
    name = os.path.splitext(os.path.basename(path))[0]
    simd = name in SIMD_USERS
    return Extension(
        "fastmlp._kernels." + name,
        [path],
        extra_compile_args=compile_args,
        include_dirs=[KERNEL_DIR] if simd else [],
        depends=SIMD_HEADERS if simd else [],
    )


extensions = [_extension(path) for path in sorted(glob(os.path.join(KERNEL_DIR, "*.pyx")))]

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
