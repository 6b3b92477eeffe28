"""Build the Cython kernels under fastmlp/_kernels/.

The default is a release build: optimized, no debug information, symbols stripped on Linux.

Environment switches:
  FASTMLP_NATIVE=1  compile with -march=native (faster on the build machine, not portable).
  FASTMLP_DEBUG=1   a debug build: bounds and wraparound checks back on in every kernel, and the
                    compiler's debug information kept (-g, not stripped).
"""
import os
import sys
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTMLP_DEBUG") == "1"
native = os.environ.get("FASTMLP_NATIVE") == "1"

compile_args, link_args = [], []
if sys.platform == "win32":
    # MSVC: Python's own flags already optimize (/Ox) without debug information; /Zi adds it.
    if debug:
        compile_args, link_args = ["/Zi"], ["/DEBUG"]
else:
    compile_args = [
        "-O3", "-fno-math-errno", "-Wno-unreachable-code",
        # Cython's generated code takes a non-const pointer to a `const` memoryview's data
        # (gcc: -Wdiscarded-qualifiers, clang: -Wincompatible-pointer-types-discards-qualifiers);
        # each compiler ignores the other's name, given -Wno-unknown-warning-option for clang.
        "-Wno-unknown-warning-option", "-Wno-discarded-qualifiers",
        "-Wno-incompatible-pointer-types-discards-qualifiers",
    ]
    # Python's CFLAGS contain -g; the last -g option wins, so -g0 drops the debug information.
    compile_args.append("-g" if debug else "-g0")
    if native:
        compile_args.append("-march=native")
    if not debug and sys.platform.startswith("linux"):
        link_args.append("-s")          # strip the symbol table too (PyInit_* stays exported)

extensions = [
    Extension(
        "fastmlp._kernels." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
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
