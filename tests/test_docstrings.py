"""Every example in the public modules' docstrings runs and prints what it shows."""
import doctest
import importlib

import pytest

MODULES = ["fastmlp", "fastmlp.mlp", "fastmlp.stack", "fastmlp.schedules", "fastmlp.optimizers",
           "fastmlp.initializers", "fastmlp.callbacks", "fastmlp.io", "fastmlp.estimators",
           "fastmlp.losses", "fastmlp.datasets", "fastmlp.plot", "fastmlp.gradcheck",
           "fastmlp.reference", "fastmlp.export", "fastmlp.model_selection", "fastmlp.ensemble"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    if name == "fastmlp.plot":
        pytest.importorskip("matplotlib").use("Agg")
    if name in ("fastmlp.estimators", "fastmlp.model_selection", "fastmlp.ensemble"):
        pytest.importorskip("sklearn")
    if name == "fastmlp.export":
        pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)                 # an example that saves a file saves it here
    result = doctest.testmod(importlib.import_module(name), verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {name}'s examples failed"
    assert result.attempted > 0
