"""scikit-learn's own tests of its MLP, run against fastmlp's estimators.

The test file shipped inside the installed scikit-learn
(``sklearn/neural_network/tests/test_mlp.py``) is copied at run time with only its import line
changed to ``from fastmlp import MLPClassifier, MLPRegressor``, and run by pytest in a
subprocess (it needs scikit-learn's fixtures: ``-p sklearn.conftest``). Every test must pass but
the three that read scikit-learn's private methods.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import fastmlp

sklearn = pytest.importorskip("sklearn")

IMPORT_LINE = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
# They call scikit-learn's private methods (_forward_pass, _loss_grad_lbfgs, _optimizer).
READ_PRIVATE_METHODS = {"test_gradient", "test_learning_rate_warmstart",
                        "test_adaptive_learning_rate"}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{test name (without parameters): set of outcomes} of scikit-learn's test_mlp.py."""
    source = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    text = source.read_text()
    assert text.count(IMPORT_LINE) == 1, "scikit-learn changed the import line of test_mlp.py"
    folder = tmp_path_factory.mktemp("sklearn_mlp")
    (folder / "test_mlp.py").write_text(
        text.replace(IMPORT_LINE, "from fastmlp import MLPClassifier, MLPRegressor"))
    # The fastmlp imported here (installed, or the checkout's in-place build) is the one tested.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(fastmlp.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]))
    report = folder / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "sklearn.conftest", "-p", "no:cacheprovider",
         "-q", f"--junitxml={report}", "--rootdir", str(folder), "test_mlp.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    results = {}
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name").split("[")[0]
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        results.setdefault(name, set()).add(
            "failed" if failed else "skipped" if skipped else "passed")
    assert results, run.stdout[-3000:]
    return results, run.stdout


def test_sklearn_test_mlp_passes_against_fastmlp(outcomes):
    results, log = outcomes
    failing = {name for name, seen in results.items() if "failed" in seen}
    unexpected = failing - READ_PRIVATE_METHODS
    assert not unexpected, f"scikit-learn's tests failing on fastmlp: {sorted(unexpected)}\n" \
                           + log[-5000:]
    passed = sum(1 for seen in results.values() if seen == {"passed"})
    assert passed == len(results) - len(failing)
    assert len(results) > 40      # every test ran (the file has about 45 test functions)

