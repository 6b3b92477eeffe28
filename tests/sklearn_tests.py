"""Runs a test file shipped inside the installed scikit-learn, edited, against fastmlp (used by
test_sklearn_mlp.py and test_sklearn_search.py)."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import fastmlp


def run_edited_test_file(folder, name, text):
    """Write ``text`` as ``folder/name`` and run it with pytest in a subprocess (with
    scikit-learn's fixtures, ``-p sklearn.conftest``) importing the fastmlp under test.

    Returns ({test name without parameters: set of "passed", "failed", "skipped"}, stdout)."""
    (folder / name).write_text(text)
    # The fastmlp imported here (installed, or the checkout's in-place build) is the one tested.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(fastmlp.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]))
    report = folder / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "sklearn.conftest", "-p", "no:cacheprovider",
         "-q", f"--junitxml={report}", "--rootdir", str(folder), name],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    results = {}
    for case in ET.parse(report).iter("testcase"):
        test = case.get("name").split("[")[0]
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        results.setdefault(test, set()).add(
            "failed" if failed else "skipped" if skipped else "passed")
    assert results, run.stdout[-3000:]
    return results, run.stdout
