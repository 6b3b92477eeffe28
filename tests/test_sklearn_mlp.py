"""scikit-learn's own tests of its MLP, run against fastmlp's estimators.

The test file shipped inside the installed scikit-learn
(``sklearn/neural_network/tests/test_mlp.py``) is copied at run time with only its import line
changed to ``from fastmlp import MLPClassifier, MLPRegressor``, and run by pytest in a
subprocess (it needs scikit-learn's fixtures: ``-p sklearn.conftest``). Every test must pass but
the three that read scikit-learn's private methods.
"""
from pathlib import Path

import pytest
from sklearn_tests import run_edited_test_file

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
    return run_edited_test_file(
        tmp_path_factory.mktemp("sklearn_mlp"), "test_mlp.py",
        text.replace(IMPORT_LINE, "from fastmlp import MLPClassifier, MLPRegressor"))


def test_sklearn_test_mlp_passes_against_fastmlp(outcomes):
    results, log = outcomes
    failing = {name for name, seen in results.items() if "failed" in seen}
    unexpected = failing - READ_PRIVATE_METHODS
    assert not unexpected, f"scikit-learn's tests failing on fastmlp: {sorted(unexpected)}\n" \
                           + log[-5000:]
    passed = sum(1 for seen in results.values() if seen == {"passed"})
    assert passed == len(results) - len(failing)
    assert len(results) > 40      # every test ran (the file has about 45 test functions)

