"""Packaging: what a newcomer meets first.

The fast tests check the explanation given when Python imports an uncompiled source tree, and
``fastmlp --version``. The slow ones (``-m slow``; CI runs them) copy the source checkout these
tests belong to, as a fresh clone would have it, make a fresh virtual environment, and run the two
commands README.md gives, exactly as written there, from the copy's folder; then they check what
``pip install .`` installed (no generated C, the license, under 5 MB) and what the sdist holds.
"""
import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import fastmlp
from fastmlp._cli import main

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = all((ROOT / name).exists() for name in
               ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in", "fastmlp/_kernels"))
EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)
BUILD_PRODUCTS = ("*.so", "*.pyd", "*.o", "*.c", "*.cpp", "*.html", "build", "dist",
                  "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".venv*", ".git")


def run(command, cwd, env=None, timeout=600):
    """Run ``command`` (a list, or a string for bash); return the completed process, output
    merged into ``stdout``."""
    if isinstance(command, str):
        command = ["bash", "-c", command]
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def clean_env():
    """The environment without anything that would make Python find another fastmlp."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


# -- an uncompiled source tree explains itself --------------------------------------------------

def fake_tree(tmp_path, keep=(), checkout=True):
    """A copy of the installed package at ``tmp_path/fastmlp`` without its compiled kernels
    (except those named in ``keep``), inside a folder that looks like a checkout when
    ``checkout``."""
    package = Path(fastmlp.__file__).resolve().parent
    shutil.copytree(package, tmp_path / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    kernels = tmp_path / "fastmlp" / "_kernels"
    for path in kernels.iterdir():
        name = path.name.split(".")[0]
        if path.name.endswith(EXTENSION_SUFFIXES) and name not in keep:
            path.unlink()
    for pyx in ("_optim.pyx", "_train.pyx"):    # an installed package may lack the sources
        (kernels / pyx).touch()
    if checkout:
        (tmp_path / "setup.py").write_text("")
        (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


@pytest.mark.parametrize("command", [["-c", "import fastmlp"], ["-m", "fastmlp", "demo"]])
def test_uncompiled_checkout_says_what_happened_and_the_ways_out(tmp_path, command):
    tree = fake_tree(tmp_path)
    result = run([sys.executable, *command], cwd=tree, env=clean_env())
    assert result.returncode != 0
    last = result.stdout[result.stdout.rindex("ImportError"):]
    assert f"source checkout ({tree.resolve()})" in last
    assert "its Cython kernels are not compiled" in last
    assert "`fastmlp` command" in last and "another folder" in last
    assert "pip install -e ." in last and "python setup.py build_ext --inplace" in last
    assert "No module named" not in result.stdout


def test_partly_compiled_checkout_names_the_missing_kernels(tmp_path):
    kernels = Path(fastmlp.__file__).resolve().parent / "_kernels"
    compiled = {p.name.split(".")[0] for p in kernels.iterdir()
                if p.name.endswith(EXTENSION_SUFFIXES)}
    tree = fake_tree(tmp_path, keep=compiled - {"_optim"})
    result = run([sys.executable, "-c", "import fastmlp"], cwd=tree, env=clean_env())
    assert result.returncode != 0
    assert "some of its Cython kernels are not compiled (fastmlp._kernels._optim)" in result.stdout
    assert "_train" not in result.stdout.split("not compiled")[1].split(")")[0]


def test_incomplete_installation_says_reinstall(tmp_path):
    tree = fake_tree(tmp_path, checkout=False)
    result = run([sys.executable, "-c", "import fastmlp"], cwd=tree, env=clean_env())
    assert result.returncode != 0
    assert "this installation of fastmlp" in result.stdout
    assert "pip install --force-reinstall fastmlp" in result.stdout


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"fastmlp {fastmlp.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", fastmlp.__version__)


# -- the README's commands in a fresh virtual environment (slow) ---------------------------------

def readme_commands(readme):
    """The shell commands of the README's "Set up" section, in order."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def fresh_clone(destination):
    """Copy the checkout as a fresh clone has it: the files git tracks or would track (the
    uncommitted state included), or, outside git (an unpacked sdist), everything but build
    products."""
    files = None
    if (ROOT / ".git").exists() and shutil.which("git"):
        listing = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                      cwd=ROOT)
        if listing.returncode == 0:
            files = [name for name in listing.stdout.split("\0") if name]
    if files is None:
        shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*BUILD_PRODUCTS))
        return destination
    for name in files:
        source = ROOT / name
        if source.is_file():            # a tracked file deleted in the working tree is skipped
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """``(clone, env, bin)``: a copy of the checkout and a fresh virtual environment, activated
    in ``env``."""
    if not CHECKOUT:
        pytest.skip(f"no source checkout next to these tests ({ROOT} lacks pyproject.toml, "
                    f"setup.py, README.md, MANIFEST.in or fastmlp/): nothing to install from")
    if shutil.which("bash") is None:
        pytest.skip("the README's commands are bash commands; no bash here")
    work = tmp_path_factory.mktemp("fresh")
    clone = fresh_clone(work / "fastmlp-clone")
    venv.create(work / "venv", with_pip=True)
    bindir = work / "venv" / ("Scripts" if os.name == "nt" else "bin")
    env = clean_env()
    env["VIRTUAL_ENV"] = str(work / "venv")
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    return clone, env, bindir


@pytest.mark.slow
def test_readme_commands_work_as_written_from_a_fresh_clone(fresh):
    clone, env, bindir = fresh
    install_and_demo, install_and_test = readme_commands(clone / "README.md")[:2]
    assert install_and_demo.startswith("pip install . &&"), install_and_demo

    # 1. typed as written, from the clone's folder
    result = run(install_and_demo, cwd=clone, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:]
    assert re.search(r"\b0\.917\b", result.stdout), result.stdout[-2000:]   # the lecture's test accuracy

    # 2. the install as written; the tests on one small file, to keep the time down
    install, _, test = install_and_test.rpartition("&&")
    assert test.strip() == "pytest" and "pip install" in install, install_and_test
    result = run(install, cwd=clone, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:]
    result = run("pytest -q -p no:cacheprovider tests/test_initializers.py", cwd=clone, env=env)
    assert result.returncode == 0, result.stdout[-5000:]
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]

    # the console script's --version, and python -m from outside the clone
    result = run(["fastmlp", "--version"], cwd=clone, env=env)
    assert result.stdout == f"fastmlp {fastmlp.__version__}\n", result.stdout
    result = run([str(bindir / "python"), "-m", "fastmlp", "--version"], cwd=clone.parent,
                 env=env)
    assert result.returncode == 0 and result.stdout.startswith("fastmlp "), result.stdout
    # python -m inside the clone meets the source tree, and says so
    result = run([str(bindir / "python"), "-m", "fastmlp", "demo"], cwd=clone, env=env)
    assert result.returncode != 0 and "source checkout" in result.stdout, result.stdout[-2000:]


@pytest.mark.slow
def test_installed_package_is_lean_and_licensed(fresh):
    """What ``pip install .`` (the README's first command) put in site-packages: run after the
    README test in the same environment, or installs it first."""
    clone, env, bindir = fresh
    python = str(bindir / "python")
    if run([python, "-c", "import fastmlp"], cwd=clone.parent, env=env).returncode != 0:
        result = run("pip install .", cwd=clone, env=env, timeout=1800)
        assert result.returncode == 0, result.stdout[-5000:]
    script = (
        "import importlib.metadata as m, pathlib\n"
        "d = m.distribution('fastmlp')\n"
        "files = [str(f) for f in d.files]\n"
        "size = sum(f.locate().stat().st_size for f in d.files if str(f).startswith('fastmlp/'))\n"
        "print(size)\n"
        "print(d.metadata['License-Expression'])\n"
        "print('\\n'.join(files))\n")
    result = run([python, "-c", script], cwd=clone.parent, env=env)
    assert result.returncode == 0, result.stdout
    size, license_expression, *files = result.stdout.splitlines()
    assert int(size) < 5_000_000, f"the installed package takes {int(size) / 1e6:.1f} MB"
    assert license_expression == "BSD-3-Clause"
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files), files
    assert not [f for f in files if f.endswith((".c", ".cpp", ".html"))]
    compiled = [f for f in files if f.endswith(EXTENSION_SUFFIXES)]
    sources = [f for f in files if f.endswith(".pyx")]
    assert len(compiled) == len(sources) > 0, (compiled, sources)
    assert any(f.endswith("_kernels/_train.pxd") or f.endswith("_kernels/_dense.pxd")
               for f in files)


@pytest.mark.slow
def test_sdist_holds_what_the_tests_need_and_no_build_products(fresh, tmp_path):
    clone, env, bindir = fresh
    result = run([str(bindir / "python"), "-m", "pip", "install", "-q", "build"], cwd=clone,
                 env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    result = run([str(bindir / "python"), "-m", "build", "--sdist", "--outdir", str(tmp_path)],
                 cwd=clone, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout[-5000:]
    assert "warning" not in result.stdout.lower(), result.stdout[-5000:]
    import tarfile
    (sdist,) = tmp_path.glob("fastmlp-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in",
                   "tests/conftest.py", "tests/test_packaging.py", "fastmlp/_kernels/_train.pyx",
                   "fastmlp/_kernels/_activations.pxd", "fastmlp/py.typed"):
        assert needed in names, needed
    tests = {f"tests/{p.name}" for p in (clone / "tests").glob("*.py")}
    assert tests <= names, tests - names
    assert not [n for n in names if n.endswith((".c", ".so", ".pyd", ".o", ".pyc"))]
