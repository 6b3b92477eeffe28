"""Compiled kernels (Cython). Nothing here is public API; see fastmlp.MLP.

Importing this package checks that every kernel is compiled. A source checkout has only the
``.pyx`` sources until it is built; Python imports it instead of the installed package when it
runs from the checkout's folder (``python -m fastmlp``, a REPL, a script in that folder), and the
check then says so and how to get out, instead of a bare ``No module named ...``.
"""
import importlib.machinery
from pathlib import Path


def _check_compiled():
    here = Path(__file__).resolve().parent
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    missing = sorted(
        pyx.stem for pyx in here.glob("*.pyx")
        if not any((here / (pyx.stem + suffix)).is_file() for suffix in suffixes))
    if not missing:
        return
    root = here.parent.parent
    every = len(missing) == len(list(here.glob("*.pyx")))
    what = ("its Cython kernels are not compiled" if every else
            "some of its Cython kernels are not compiled (" +
            ", ".join(f"fastmlp._kernels.{name}" for name in missing) + ")")
    if (root / "setup.py").is_file() and (root / "pyproject.toml").is_file():
        raise ImportError(
            f"fastmlp was imported from its source checkout ({root}), and {what}.\n"
            f"Python looks first in the current folder, so `python -m fastmlp`, a REPL or a "
            f"script started in the checkout's folder imports this source tree instead of the "
            f"installed fastmlp. Either:\n"
            f"  - run from another folder, or use the `fastmlp` command that `pip install .` "
            f"installs (e.g. `fastmlp demo`); or\n"
            f"  - compile the checkout in place: `pip install -e .`, or "
            f"`python setup.py build_ext --inplace` (again after changing a .pyx file).",
            name=f"fastmlp._kernels.{missing[0]}", path=str(here))
    raise ImportError(
        f"this installation of fastmlp ({here.parent}) is incomplete: {what}. Reinstall it: "
        f"pip install --force-reinstall fastmlp (or `pip install .` from a source checkout).",
        name=f"fastmlp._kernels.{missing[0]}", path=str(here))


_check_compiled()
del _check_compiled
