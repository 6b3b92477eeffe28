"""The command line: train and predict on CSV files written here, in-process through
``fastmlp.__main__.main`` and as ``python -m fastmlp`` subprocesses; every expected error is one
line on stderr with exit status 2 and no traceback. The CSV reading and preprocessing
(``fastmlp._tabular``) is tested with both readers, pandas and NumPy."""
import csv
import json
import os
import stat
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, _cli, _tabular
from fastmlp import io as model_io
from fastmlp.__main__ import main

READERS = ["numpy"] + (["pandas"] if _tabular.have_pandas() else [])


def write_csv(path, header, rows, sep=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=sep)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_output(path_or_text):
    """A predictions CSV as (header, list of rows)."""
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


def spec_of(model_path):
    return model_io.load(model_path, with_extra=True)[1]


def printed_score(out, which, metric):
    """The number after e.g. ``held-out R^2`` in train's output."""
    match = re.search(rf"{which} {re.escape(metric)} (-?[0-9.]+)", out)
    assert match, out
    return float(match.group(1))


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """Three well-separated blobs in 3-D, labelled by strings, with a non-feature id column
    placed between the features."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    names = np.array(["red", "green", "blue"])
    index = rng.integers(0, 3, 150)
    X = centres[index] + rng.normal(size=(150, 3))
    rows = [[f"{a:.5f}", f"{b:.5f}", names[i], f"{c:.5f}"] for (a, b, c), i in zip(X, index)]
    path = write_csv(tmp_path_factory.mktemp("data") / "colours.csv", ["a", "b", "colour", "c"],
                     rows)
    return path, names[index]


@pytest.fixture(scope="module")
def surface(tmp_path_factory):
    """A smooth regression target of two features, far from zero mean and unit scale."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(200, 2))
    y = 100 + 20 * (2 * X[:, 0] - X[:, 1] + 0.5 * X[:, 0] ** 2)
    rows = [[f"{x0:.6f}", f"{x1:.6f}", f"{t:.6f}"] for (x0, x1), t in zip(X, y)]
    path = write_csv(tmp_path_factory.mktemp("data") / "surface.csv", ["x1", "x2", "price"],
                     rows)
    return path, y


def make_customers(path, n=240, seed=5):
    """Synthetic customer data: an id column, a text column, numeric columns with missing
    values and a text target that depends on all of them."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    age = rng.uniform(18, 80, n)
    spend = rng.gamma(2.0, 50.0, n)
    score = (age - 50) / 15 + (spend - 100) / 50 + np.select(
        [plan == "basic", plan == "plus"], [-1.5, 0.0], 1.5)
    churn = np.where(score + 0.3 * rng.normal(size=n) > 0, "stays", "leaves")
    rows = []
    for i in range(n):
        rows.append([f"C{1000 + i}", "" if i % 17 == 3 else plan[i],
                     "" if i % 13 == 5 else f"{age[i]:.1f}", f"{spend[i]:.2f}", churn[i]])
    return write_csv(path, ["customer_id", "plan", "age", "spend", "churn"], rows)


def r2(y, pred):
    return 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def run(argv, capsys):
    """``main(argv)`` in-process: exit status, stdout, stderr (argparse exits are caught)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def python_m_fastmlp(args, cwd):
    """``python -m fastmlp args`` in a subprocess, importing the fastmlp under test."""
    env = dict(os.environ)
    package_root = str(Path(fastmlp.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "fastmlp", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(status, err, *fragments):
    assert status == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- help -------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["predict"], ["bench"]])
def test_every_command_has_help(command, capsys):
    status, out, _ = run([*command, "--help"], capsys)
    assert status == 0
    assert out.startswith(f"usage: fastmlp {' '.join(command)}".rstrip())


def test_help_of_train_and_predict_lists_every_option(capsys):
    _, out, _ = run(["train", "--help"], capsys)
    for option in ("--target", "--features", "--drop", "--categorical", "--sep", "--index-col",
                   "--strict", "--reader", "--task", "--validation-fraction", "--hidden",
                   "--epochs", "--batch-size", "--lr", "--optimizer", "--l2", "--dropout",
                   "--early-stopping", "--patience", "--seed", "--out", "--verbose"):
        assert option in out
    for optimizer in ("sgd", "adam", "rmsprop"):
        assert optimizer in out
    _, out, _ = run(["predict", "--help"], capsys)
    for option in ("--out", "--id", "--proba", "--sep", "--index-col", "--strict", "--reader"):
        assert option in out
    assert "all zeros" in " ".join(out.split())


# -- train and predict in-process -------------------------------------------------------------

def test_classification_with_string_labels(colours, tmp_path, capsys):
    path, truth = colours
    model = tmp_path / "colours.npz"
    status, out, err = run(["train", path, "--target", "colour", "--hidden", "16",
                            "--epochs", "30", "--out", model], capsys)
    assert (status, err) == (0, "")
    assert "classification (3 classes" in out and "[3, 16, 3]" in out
    assert "120 training rows, 30 held out (--validation-fraction 0.2, stratified, seed 0)" in out
    assert printed_score(out, "held-out", "accuracy") > 0.9
    assert not list(tmp_path.glob("*.json"))          # one file, no sidecar
    spec = spec_of(model)
    assert [c["name"] for c in spec["columns"]] == ["a", "b", "c"]
    assert spec["target"] == "colour" and spec["task"] == "classification"
    assert spec["classes"] == ["blue", "green", "red"]

    status, out, err = run(["predict", model, path], capsys)
    assert (status, err) == (0, "")
    header, rows = read_output(out)
    assert header == ["colour"] and len(rows) == len(truth)
    assert np.mean(np.array([r[0] for r in rows]) == truth) > 0.95

    # Columns found by name: reordered, target dropped, an extra column: same predictions.
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1, 3))
    shuffled = write_csv(tmp_path / "new.csv", ["c", "note", "a", "b"],
                         [[f"{c:.5f}", "x", f"{a:.5f}", f"{b:.5f}"] for a, b, c in data])
    status, out, _ = run(["predict", model, shuffled, "--out", tmp_path / "p.csv"], capsys)
    assert status == 0 and "wrote 150 predictions" in out
    assert read_output(tmp_path / "p.csv") == (header, rows)


def test_binary_classification_with_string_labels(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 2))
    answer = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    path = write_csv(tmp_path / "yesno.csv", ["u", "v", "answer"],
                     [[f"{u:.5f}", f"{v:.5f}", a] for (u, v), a in zip(X, answer)])
    status, out, _ = run(["train", path, "--target", "answer", "--hidden", "8", "--epochs",
                          "40", "--out", tmp_path / "m.npz"], capsys)
    assert status == 0 and "[2, 8, 1]" in out and "(2 classes" in out
    status, out, _ = run(["predict", tmp_path / "m.npz", path, "--proba"], capsys)
    header, rows = read_output(out)
    assert header == ["answer", "no", "yes"]
    assert np.mean(np.array([r[0] for r in rows]) == answer) > 0.95
    proba = np.array([[float(p) for p in r[1:]] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert [r[0] for r in rows] == np.where(proba[:, 1] >= 0.5, "yes", "no").tolist()


def test_regression_predicts_in_the_target_units(surface, tmp_path, capsys):
    path, y = surface
    status, out, _ = run(["train", path, "--target", "price", "--hidden", "32,16", "--epochs",
                          "100", "--out", tmp_path / "m"], capsys)     # .npz is appended
    assert status == 0 and "regression" in out
    spec = spec_of(tmp_path / "m.npz")
    assert spec["task"] == "regression" and spec["classes"] is None
    train_rows, _ = _tabular.split_rows(y, False, 0.2, 0)
    assert spec["target_mean"] == pytest.approx(y[train_rows].mean(), abs=1e-4)
    status, out, _ = run(["predict", tmp_path / "m.npz", path], capsys)
    header, rows = read_output(out)
    assert header == ["price"]
    assert r2(y, np.array([r[0] for r in rows], dtype=float)) > 0.98


@pytest.mark.parametrize("values, task, expected", [
    ([0, 1, 2, 3, 4] * 6, "auto", "classification"),        # few integers: class labels
    (list(range(30)), "auto", "regression"),                # more than 20 distinct integers
    ([0.5, 1.5] * 15, "auto", "regression"),                # not integers
    ([0, 1, 2, 3, 4] * 6, "regression", "regression"),      # overridden
    ([0.5, 1.5] * 15, "classification", "classification"),
])
def test_the_task_follows_the_target_unless_overridden(values, task, expected, tmp_path,
                                                       capsys):
    rng = np.random.default_rng(3)
    path = write_csv(tmp_path / "t.csv", ["x", "y"],
                     [[f"{rng.normal():.4f}", v] for v in values])
    status, _, err = run(["train", path, "--target", "y", "--task", task, "--epochs", "1",
                          "--hidden", "4", "--out", tmp_path / "m.npz"], capsys)
    assert (status, err) == (0, "")
    spec = spec_of(tmp_path / "m.npz")
    assert spec["task"] == expected
    if expected == "classification":
        assert spec["classes"] == sorted(set(values))


# -- the held-out split and its score ---------------------------------------------------------

def test_split_is_stratified_seeded_and_keeps_every_class_in_training():
    y = np.repeat([0, 1, 2], [50, 30, 1])
    train, held = _tabular.split_rows(y, True, 0.2, seed=4)
    assert np.bincount(y[held], minlength=3).tolist() == [10, 6, 0]
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(len(y)))
    again, _ = _tabular.split_rows(y, True, 0.2, seed=4)
    other, _ = _tabular.split_rows(y, True, 0.2, seed=5)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    train, held = _tabular.split_rows(np.arange(10.0), False, 0.3, seed=0)
    assert (len(train), len(held)) == (7, 3)
    with pytest.raises(_tabular.TableError, match="holds out no row"):
        _tabular.split_rows(np.array([0, 1]), True, 0.2, seed=0)



@pytest.mark.parametrize("sizes, fraction", [([3] * 10, 0.2), ([2] * 7, 0.25), ([4, 1, 9, 3], 0.3),
                                             ([50, 30, 1], 0.2)])
def test_small_classes_hold_out_the_fraction_of_all_rows_not_more(sizes, fraction):
    # Rounded class by class, ten classes of 3 rows at 0.2 held out 10 rows of 30.
    y = np.repeat(np.arange(len(sizes)), sizes)
    train, held = _tabular.split_rows(y, True, fraction, seed=0)
    assert len(held) == round(fraction * len(y))
    assert set(np.unique(y[train])) == set(range(len(sizes)))
    per_class = np.bincount(y[held], minlength=len(sizes))
    assert np.all(np.abs(per_class - fraction * np.array(sizes)) < 1)

def test_the_printed_held_out_score_is_the_score_of_the_held_out_rows(surface, tmp_path,
                                                                       capsys):
    path, y = surface
    status, out, _ = run(["train", path, "--target", "price", "--hidden", "16", "--epochs",
                          "40", "--validation-fraction", "0.25", "--seed", "3", "--out",
                          tmp_path / "m.npz"], capsys)
    assert status == 0 and "150 training rows, 50 held out" in out
    _, held = _tabular.split_rows(y, False, 0.25, seed=3)
    _, predicted = run(["predict", tmp_path / "m.npz", path], capsys)[:2]
    predicted = np.array([r[0] for r in read_output(predicted)[1]], dtype=float)
    assert printed_score(out, "held-out", "R^2") == pytest.approx(r2(y[held], predicted[held]),
                                                                  abs=1e-4)
    rmse = float(re.search(r"RMSE ([0-9.]+)", out).group(1))
    assert rmse == pytest.approx(np.sqrt(np.mean((y[held] - predicted[held]) ** 2)), rel=1e-4)
    assert spec_of(tmp_path / "m.npz")["scores"]["held_out"] == pytest.approx(
        printed_score(out, "held-out", "R^2"), abs=1e-4)


def test_validation_fraction_zero_trains_on_every_row(surface, tmp_path, capsys):
    path, _ = surface
    status, out, _ = run(["train", path, "--target", "price", "--epochs", "2",
                          "--validation-fraction", "0", "--out", tmp_path / "m.npz"], capsys)
    assert status == 0 and "200 training rows, none held out" in out
    assert "training R^2" in out and "held-out" not in out


# -- training options -------------------------------------------------------------------------

def test_training_options_reach_the_model(colours, tmp_path, capsys):
    path, _ = colours
    status, out, _ = run(["train", path, "--target", "colour", "--hidden", "8,4",
                          "--epochs", "3", "--optimizer", "rmsprop", "--lr", "0.003",
                          "--l2", "0.01", "--dropout", "0.25", "--batch-size", "7",
                          "--out", tmp_path / "m.npz"], capsys)
    assert status == 0
    assert "with rmsprop (lr 0.003, batch 7, l2 0.01, dropout 0.25) for 3 epochs" in out
    model = model_io.load(tmp_path / "m.npz")
    assert model.sizes == [3, 8, 4, 3]
    assert type(model.optimizer).__name__ == "RMSProp" and model.base_lr == 0.003
    assert model.l2 == 0.01 and list(model.dropout) == [0.25, 0.25]


def test_seed_makes_training_repeatable(colours, tmp_path, capsys):
    path, _ = colours
    params = []
    for seed, name in ((1, "a"), (1, "b"), (2, "c")):
        run(["train", path, "--target", "colour", "--epochs", "2", "--seed", seed, "--out",
             tmp_path / f"{name}.npz"], capsys)
        params.append(model_io.load(tmp_path / f"{name}.npz").params)
    assert np.array_equal(params[0], params[1]) and not np.array_equal(params[0], params[2])


def test_early_stopping_stops_and_keeps_the_best_epoch(surface, tmp_path, capsys):
    path, _ = surface
    status, out, _ = run(["train", path, "--target", "price", "--hidden", "64,64", "--lr",
                          "0.05", "--epochs", "3000", "--early-stopping", "--patience", "3",
                          "--out", tmp_path / "m.npz"], capsys)
    assert status == 0
    match = re.search(r"stopped after epoch (\d+): no improvement for 3 epochs; kept the "
                      r"weights of epoch (\d+)", out)
    assert match, out
    stopped, best = map(int, match.groups())
    assert best == stopped - 3 and stopped < 3000
    history = model_io.load(tmp_path / "m.npz").history
    assert len(history["loss"]) == stopped
    assert int(np.argmin(history["val_loss"])) + 1 == best


def test_epochs_accepts_exponent_notation(surface, tmp_path, capsys):
    path, _ = surface
    status, out, _ = run(["train", path, "--target", "price", "--epochs", "3e0", "--out",
                          tmp_path / "m.npz"], capsys)
    assert status == 0 and "for 3 epochs" in out


# -- choosing and preparing columns -----------------------------------------------------------

def test_features_and_drop_choose_the_columns(tmp_path, capsys):
    path = make_customers(tmp_path / "customers.csv")
    status, out, _ = run(["train", path, "--target", "churn", "--drop", "customer_id",
                          "--epochs", "2", "--out", tmp_path / "m.npz"], capsys)
    assert status == 0 and "not used: 'customer_id'" in out
    assert [c["name"] for c in spec_of(tmp_path / "m.npz")["columns"]] == ["plan", "age", "spend"]
    status, out, _ = run(["train", path, "--target", "churn", "--features", "spend",
                          "--features", "age", "--epochs", "2", "--out", tmp_path / "m.npz"],
                         capsys)
    assert status == 0 and "2 columns -> 2 inputs" in out
    assert [c["name"] for c in spec_of(tmp_path / "m.npz")["columns"]] == ["spend", "age"]
    status, out, _ = run(["train", path, "--target", "churn", "--drop", "customer_id,plan",
                          "--epochs", "2", "--out", tmp_path / "m.npz"], capsys)
    assert [c["name"] for c in spec_of(tmp_path / "m.npz")["columns"]] == ["age", "spend"]


def test_text_columns_are_one_hot_encoded_and_missing_values_imputed(tmp_path, capsys):
    path = make_customers(tmp_path / "customers.csv")
    status, out, err = run(["train", path, "--target", "churn", "--drop", "customer_id",
                            "--epochs", "2", "--out", tmp_path / "m.npz"], capsys)
    assert (status, err) == (0, "")
    assert "3 columns -> 5 inputs" in out
    assert "one-hot encoded: 'plan' (3 categories: 'basic', 'plus', 'pro'" in out
    assert re.search(r"imputed: 'plan', 14 missing values filled with the training rows' most "
                     r"frequent '(basic|plus|pro)'", out), out
    assert re.search(r"imputed: 'age', 19 missing values filled with the training rows' median",
                     out), out
    spec = spec_of(tmp_path / "m.npz")
    table = _tabular.read_table(path)
    y = np.array([v for v in table.columns["churn"]])
    train_rows, _ = _tabular.split_rows(np.unique(y, return_inverse=True)[1], True, 0.2, 0)
    age = table.columns["age"][train_rows]
    assert spec["columns"][1] == {"name": "age", "kind": "numeric",
                                  "fill": float(np.nanmedian(age)),
                                  "mean": pytest.approx(np.where(np.isnan(age),
                                                                 np.nanmedian(age), age).mean()),
                                  "std": pytest.approx(np.where(np.isnan(age),
                                                                np.nanmedian(age), age).std())}
    plans = table.columns["plan"][train_rows]
    plans = plans[plans != None].tolist()       # noqa: E711 (elementwise)
    assert spec["columns"][0]["fill"] == max(set(plans), key=plans.count)


def test_transform_encodes_unseen_categories_as_zeros_and_fills_missing_values(tmp_path):
    columns = [{"name": "plan", "kind": "text", "fill": "plus",
                "categories": ["basic", "plus", "pro"]},
               {"name": "age", "kind": "numeric", "fill": 40.0, "mean": 50.0, "std": 10.0}]
    path = write_csv(tmp_path / "new.csv", ["age", "plan"],
                     [["30", "pro"], ["", "gold"], ["70", ""], ["50", "basic"]])
    for reader in READERS:
        X, report = _tabular.transform(_tabular.read_table(path, reader=reader), columns)
        np.testing.assert_array_equal(X, [[0, 0, 1, -2], [0, 0, 0, -1], [0, 1, 0, 2],
                                          [1, 0, 0, 0]])
        assert report == [("plan", 1, 1), ("age", 1, 0)]
        with pytest.raises(_tabular.TableError, match="'plan'.*--strict"):
            _tabular.transform(_tabular.read_table(path, reader=reader), columns, strict=True)


def test_predict_reports_unseen_categories_and_imputed_values(tmp_path, capsys):
    path = make_customers(tmp_path / "customers.csv")
    run(["train", path, "--target", "churn", "--drop", "customer_id", "--epochs", "2",
         "--out", tmp_path / "m.npz"], capsys)
    new = write_csv(tmp_path / "new.csv", ["customer_id", "plan", "age", "spend"],
                    [["N1", "gold", "30", "100"], ["N2", "pro", "", "50"]])
    status, out, err = run(["predict", tmp_path / "m.npz", new, "--id", "customer_id"], capsys)
    assert status == 0 and read_output(out)[0] == ["customer_id", "churn"]
    assert "note: column 'plan': 1 value of categories unseen in training encoded as all " \
           "zeros" in err
    assert "note: column 'age': 1 missing value imputed as in training" in err
    status, _, err = run(["predict", tmp_path / "m.npz", new, "--strict"], capsys)
    assert_one_line_error(status, err, "'plan'", "not seen in training", "--strict")


def test_categorical_one_hot_encodes_number_codes(tmp_path, capsys):
    rng = np.random.default_rng(6)
    region = rng.integers(1, 4, 90)
    path = write_csv(tmp_path / "r.csv", ["region", "x", "y"],
                     [[r, f"{rng.normal():.3f}", f"{r * 10 + rng.normal():.3f}"]
                      for r in region])
    status, out, _ = run(["train", path, "--target", "y", "--categorical", "region",
                          "--epochs", "2", "--out", tmp_path / "m.npz"], capsys)
    assert status == 0 and "one-hot encoded: 'region' (3 categories: '1', '2', '3'" in out
    status, out, _ = run(["predict", tmp_path / "m.npz", path], capsys)
    assert status == 0 and len(read_output(out)[1]) == 90


def test_sep_and_index_col(tmp_path, capsys):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 2))
    y = np.where(X[:, 0] > 0, "up", "down")
    rows = [[i, f"{a:.4f}", f"{b:.4f}", t] for i, ((a, b), t) in enumerate(zip(X, y))]
    semi = write_csv(tmp_path / "semi.csv", ["", "a", "b", "y"], rows, sep=";")
    status, _, err = run(["train", semi, "--target", "y"], capsys)
    assert_one_line_error(status, err, "single column", "pass --sep ';'")
    status, _, err = run(["train", semi, "--target", "y", "--sep", ";"], capsys)
    assert_one_line_error(status, err, "has no name", "--index-col 0")
    status, out, err = run(["train", semi, "--target", "y", "--sep", ";", "--index-col", "0",
                            "--epochs", "2", "--out", tmp_path / "m.npz"], capsys)
    assert (status, err) == (0, "")
    assert "and the index column 'index'" in out
    assert [c["name"] for c in spec_of(tmp_path / "m.npz")["columns"]] == ["a", "b"]
    # predict reads the training separator by default and can pass the index through
    status, out, _ = run(["predict", tmp_path / "m.npz", semi, "--index-col", "0", "--id",
                          "index"], capsys)
    header, rows = read_output(out)
    assert status == 0 and header == ["index", "y"]
    assert [r[0] for r in rows] == [str(i) for i in range(60)]
    status, _, err = run(["train", semi, "--target", "y", "--index-col", "0"], capsys)
    assert_one_line_error(status, err, "single column", "--sep ';'")
    status, _, err = run(["train", semi, "--target", "index", "--sep", ";", "--index-col", "0"],
                         capsys)
    assert_one_line_error(status, err, "--target 'index' is the index column")
    status, _, err = run(["train", semi, "--target", "y", "--sep", ";", "--index-col", "0",
                          "--features", "a,index"], capsys)
    assert_one_line_error(status, err, "no column 'index'", "--features")


def test_strict_refuses_text_and_missing_values(tmp_path, capsys):
    path = make_customers(tmp_path / "customers.csv")
    base = ["train", path, "--target", "churn", "--strict", "--epochs", "1", "--out",
            tmp_path / "m.npz"]
    status, _, err = run(base, capsys)
    assert_one_line_error(status, err, "'customer_id'", "holds text", "--strict")
    status, _, err = run(base + ["--drop", "customer_id"], capsys)
    assert_one_line_error(status, err, "'plan'", "holds text", "--strict")
    status, _, err = run(base + ["--drop", "customer_id,plan"], capsys)
    assert_one_line_error(status, err, "'age'", "19 missing values", "data row 6", "--strict")
    status, out, _ = run(base + ["--features", "spend"], capsys)
    assert status == 0 and "imputed" not in out and "one-hot" not in out


def test_rows_with_a_missing_target_are_left_out(tmp_path, capsys):
    path = write_csv(tmp_path / "t.csv", ["x", "y"],
                     [[i, "" if i % 10 == 0 else i % 2] for i in range(50)])
    status, out, _ = run(["train", path, "--target", "y", "--epochs", "1", "--out",
                          tmp_path / "m.npz"], capsys)
    assert status == 0 and "left out 5 rows whose target 'y' is missing" in out
    assert "36 training rows, 9 held out" in out
    status, _, err = run(["train", path, "--target", "y", "--strict", "--out",
                          tmp_path / "m.npz"], capsys)
    assert_one_line_error(status, err, "missing in 5 rows", "data row 1", "--strict")


def test_an_identifier_column_gets_a_hint(tmp_path, capsys):
    path = write_csv(tmp_path / "t.csv", ["row", "x", "y"],
                     [[i + 1, (i * 7) % 5, i % 2] for i in range(40)])
    status, out, _ = run(["train", path, "--target", "y", "--epochs", "1", "--out",
                          tmp_path / "m.npz"], capsys)
    assert status == 0 and "note: 'row' holds a distinct integer in every row" in out


# -- reading CSV files ------------------------------------------------------------------------

TABLES = {
    "numeric.csv": 'a,b,y\n1,2.5,0\n3,-4e-3,1\n\n5,6,0\n',
    "mixed.csv": 'id,colour,x,y\nA1,red,1.5,0\nA2,,NA,1\nA3, blue ,  ,0\nA4,"red",7,1\n',
    "quoted.csv": 'name,"note, with comma",y\n"x, y",1,0\nz,2,1\n',
    "semicolon.csv": 'a;b;y\n1,5;2;0\n3;4;1\n',
}


@pytest.mark.parametrize("name", TABLES)
def test_both_readers_read_the_same_table(name, tmp_path):
    path = tmp_path / name
    path.write_text(TABLES[name])
    sep = ";" if name == "semicolon.csv" else ","
    tables = [_tabular.read_table(path, sep=sep, reader=reader) for reader in READERS]
    for table in tables:
        assert table.names == tables[0].names
        for column in table.names:
            assert table.is_text(column) == tables[0].is_text(column)
            np.testing.assert_array_equal(table.columns[column], tables[0].columns[column])
    if name == "mixed.csv":
        columns = tables[0].columns
        assert columns["colour"].tolist() == ["red", None, "blue", "red"]
        np.testing.assert_array_equal(columns["x"], [1.5, np.nan, np.nan, 7.0])
    if name == "semicolon.csv":
        assert tables[0].columns["a"].tolist() == ["1,5", "3"]


def test_read_table_uses_pandas_when_installed_and_numpy_otherwise(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    assert _tabular.read_table(path).reader == ("pandas" if _tabular.have_pandas() else "numpy")
    monkeypatch.setattr(_tabular, "have_pandas", lambda: False)
    assert _tabular.read_table(path).reader == "numpy"
    with pytest.raises(_tabular.TableError, match=r"needs pandas.*fastmlp\[cli\]"):
        _tabular.read_table(path, reader="pandas")


# -- model files ------------------------------------------------------------------------------

def test_model_and_preprocessing_are_one_checksummed_file(colours, tmp_path, capsys):
    path, _ = colours
    run(["train", path, "--target", "colour", "--epochs", "1", "--out", tmp_path / "m.npz"],
        capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    model, spec = model_io.load(tmp_path / "m.npz", with_extra=True)
    assert spec["format"] == _tabular.FORMAT
    # A model with preprocessing that does not fit it (3 inputs declared, 2 given).
    spec["columns"] = spec["columns"][:2]
    model_io.save(model, tmp_path / "bad.npz", extra=spec)
    status, _, err = run(["predict", tmp_path / "bad.npz", path], capsys)
    assert_one_line_error(status, err, "does not match its model", "retrain")


def test_predict_refuses_a_model_saved_without_preprocessing(colours, tmp_path, capsys):
    path, _ = colours
    MLP([3, 4, 3], seed=0).save(tmp_path / "plain.npz")
    status, _, err = run(["predict", tmp_path / "plain.npz", path], capsys)
    assert_one_line_error(status, err, "without the command line's preprocessing",
                          "fastmlp.load(", "MLP.save or fastmlp.io.save")
    assert "fastmlp.save" not in err and not hasattr(fastmlp, "save")
    (tmp_path / "plain.npz.json").write_text(json.dumps({"format": "fastmlp-cli-preprocessing/1"}))
    status, _, err = run(["predict", tmp_path / "plain.npz", path], capsys)
    assert_one_line_error(status, err, "older `fastmlp train`", "plain.npz.json", "retrain")


def test_predict_proba_and_id(colours, tmp_path, capsys):
    path, truth = colours
    run(["train", path, "--target", "colour", "--hidden", "16", "--epochs", "30", "--out",
         tmp_path / "m.npz"], capsys)
    keys = [f"{10 * i:04d}" for i in range(149)] + ["12345678901234567891"]
    ids = write_csv(tmp_path / "ids.csv", ["key", "a", "b", "c"],
                    [[key, *row] for key, row in
                     zip(keys, np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1, 3)))])
    outputs = []
    for reader in READERS:
        status, out, _ = run(["predict", tmp_path / "m.npz", ids, "--proba", "--id", "key",
                              "--reader", reader], capsys)
        assert status == 0
        outputs.append(out)
    assert all(out == outputs[0] for out in outputs)
    header, rows = read_output(outputs[0])
    assert header == ["key", "colour", "blue", "green", "red"]
    assert [r[0] for r in rows] == keys         # as written: leading zeros, beyond 2**53
    proba = np.array([r[2:] for r in rows], dtype=float)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-12)
    assert [r[1] for r in rows] == np.array(["blue", "green", "red"])[proba.argmax(1)].tolist()
    assert np.mean(np.array([r[1] for r in rows]) == truth) > 0.95


def test_predict_out_is_written_atomically_and_never_replaces_a_special_file(colours, tmp_path,
                                                                            capsys):
    path, _ = colours
    run(["train", path, "--target", "colour", "--hidden", "8", "--epochs", "5", "--out",
         tmp_path / "m.npz"], capsys)
    out = tmp_path / "pred.csv"
    out.write_text("old predictions\n")
    status, _, _ = run(["predict", tmp_path / "m.npz", path, "--out", out], capsys)
    assert status == 0 and out.read_text().startswith("colour\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "pred.csv"]
    os.mkfifo(tmp_path / "pipe")
    status, _, err = run(["predict", tmp_path / "m.npz", path, "--out", tmp_path / "pipe"],
                         capsys)
    assert status == 2 and "pipe" in err and len(err.strip().splitlines()) == 1
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def test_predict_refuses_to_write_over_its_model_or_its_csv(colours, tmp_path, capsys):
    """--out naming the model or the CSV (however spelled: another path, a hard link) would
    replace the input with predictions: refused before anything is read or written."""
    path, _ = colours
    data = tmp_path / "data.csv"
    data.write_bytes(Path(path).read_bytes())
    model = tmp_path / "m.npz"
    run(["train", data, "--target", "colour", "--hidden", "8", "--epochs", "2", "--out", model],
        capsys)
    before = {p: p.read_bytes() for p in (model, data)}
    os.link(data, tmp_path / "alias.csv")
    for out, what in ((model, "the model file"), (data, "the input CSV"),
                      (tmp_path / "sub" / ".." / "m.npz", "the model file"),
                      (tmp_path / "alias.csv", "the input CSV")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        status, stdout, err = run(["predict", model, data, "--out", out], capsys)
        assert_one_line_error(status, err, f"--out {out} is {what}", "choose another --out")
        assert stdout == ""
        assert {p: p.read_bytes() for p in before} == before
    status, _, _ = run(["predict", model, data, "--out", tmp_path / "pred.csv"], capsys)
    assert status == 0


def test_train_refuses_to_write_its_model_over_the_training_csv(colours, tmp_path, capsys):
    path, _ = colours
    data = tmp_path / "data.npz"            # a CSV with the model's suffix
    data.write_bytes(Path(path).read_bytes())
    status, stdout, err = run(["train", data, "--target", "colour", "--out", data], capsys)
    assert_one_line_error(status, err, f"--out {data} is the training CSV")
    assert stdout == "" and data.read_bytes() == Path(path).read_bytes()


def test_numbers_too_large_to_standardize_are_an_error_not_a_zeroed_column(tmp_path):
    """A column whose spread overflows float64 (values near 1e200) was standardized by an
    infinite std, so it became all zeros, with a raw RuntimeWarning: now a clear error."""
    rows = [[f"{v:g}", i, i % 2, f"{t:g}"] for i, (v, t) in
            enumerate(zip([1e200, -1e200, 5e199, 7, 9, 11, 13, 15], [1, 2, 3, 4, 5, 6, 7, 8]))]
    write_csv(tmp_path / "huge.csv", ["a", "b", "y", "t"], rows)
    done = python_m_fastmlp(["train", "huge.csv", "--target", "y", "--epochs", "1"], tmp_path)
    assert_one_line_error(done.returncode, done.stderr, "column 'a' of huge.csv",
                          "too large to standardize", "1e+200", "rescale", "--drop")
    assert done.stdout == "" and not (tmp_path / "model.npz").exists()
    done = python_m_fastmlp(["train", "huge.csv", "--target", "a", "--task", "regression",
                             "--epochs", "1"], tmp_path)
    assert_one_line_error(done.returncode, done.stderr, "the target column 'a' of huge.csv",
                          "too large to standardize", "rescale")


def test_train_reports_imputation_only_where_values_were_missing(tmp_path, capsys):
    """Categories seen only in held-out rows were reported as 'imputed: ..., 0 missing
    values'; they are reported as what they are."""
    rows = [["p", i % 2] for i in range(30)] + [[k, 1] for k in "abcdefghij"]
    path = write_csv(tmp_path / "rare.csv", ["c", "y"], rows)
    status, out, _ = run(["train", path, "--target", "y", "--epochs", "1",
                          "--validation-fraction", "0.5", "--out", tmp_path / "m.npz"], capsys)
    assert status == 0
    assert "imputed" not in out and "0 missing" not in out, out
    assert re.search(r"note: 'c': [0-9]+ held-out values? of categories not in the training "
                     r"rows, encoded as all zeros", out), out


@pytest.mark.parametrize("command", ["train", "predict"])
def test_out_is_checked_before_any_work(command, colours, tmp_path, capsys, monkeypatch):
    """An --out that cannot be written is refused before the data are read or the model
    trained or loaded, with the user's path in the message (not a temporary file's)."""
    path, _ = colours
    model = tmp_path / "m.npz"
    run(["train", path, "--target", "colour", "--hidden", "4", "--epochs", "1", "--out", model],
        capsys)
    argv = (["train", path, "--target", "colour", "--epochs", "1"] if command == "train" else
            ["predict", model, path])
    (tmp_path / "folder.npz").mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked
                        else real_access(p, mode, **kw))
    cases = [("", ["--out takes a file name; got ''"]),
             ("  ", ["--out takes a file name; got '  '"]),
             (tmp_path / "nowhere" / "p.npz",
              [f"cannot write {tmp_path / 'nowhere' / 'p.npz'}: the folder "
               f"{tmp_path / 'nowhere'} does not exist"]),
             (locked / "p.npz", [f"cannot write {locked / 'p.npz'}: no permission to write "
                                 f"in the folder {locked}"]),
             (tmp_path / "folder.npz", ["folder.npz", "is a directory"])]
    for out, fragments in cases:
        status, stdout, err = run(argv + ["--out", out], capsys)
        assert_one_line_error(status, err, *fragments)
        assert stdout == "" and ".tmp" not in err and "Errno" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.npz", "locked", "m.npz"]


def test_load_and_save_errors_name_the_file_once_without_errno(colours, tmp_path, capsys,
                                                               monkeypatch):
    """The CLI's messages around model files: no '[Errno N]' prefix, and one 'cannot load'."""
    path, _ = colours
    status, _, err = run(["predict", path, path], capsys)
    assert_one_line_error(status, err, f"cannot load the model {path}: not a fastmlp model file")
    assert err.count("cannot load") == 1, err
    model = tmp_path / "m.npz"
    run(["train", path, "--target", "colour", "--hidden", "4", "--epochs", "1", "--out", model],
        capsys)

    def denied(p, **kwargs):
        raise PermissionError(13, "Permission denied", str(p))
    monkeypatch.setattr(model_io, "load", denied)
    status, _, err = run(["predict", model, path], capsys)
    assert_one_line_error(status, err, f"cannot load the model {model}: Permission denied")
    assert "Errno" not in err and err.count(str(model)) == 1, err
    monkeypatch.undo()

    def full_disk(model, path, **kwargs):
        raise OSError(28, f"cannot save the model to {str(path)!r}: No space left on device")
    monkeypatch.setattr(model_io, "save", full_disk)
    status, _, err = run(["train", path, "--target", "colour", "--hidden", "4", "--epochs",
                          "1", "--out", tmp_path / "n.npz"], capsys)
    assert_one_line_error(status, err, "cannot save the model to", "No space left on device")
    assert "Errno" not in err, err


# -- errors -----------------------------------------------------------------------------------

def bad_files(tmp_path):
    write_csv(tmp_path / "good.csv", ["a", "b", "y"], [[1, 2, 0], [3, 4, 1], [5, 6, 0],
                                                       [7, 8, 1], [9, 10, 0], [11, 12, 1]])
    write_csv(tmp_path / "typo.csv", ["a", "b", "y"],
              [[1, 2, 0], [3, "oops", 1], [4, 5, 0], [6, 7, 1], [8, 9, 0], [10, 11, 1]])
    write_csv(tmp_path / "inf.csv", ["a", "b", "y"], [[1, 2, 0], [3, "inf", 1]])
    write_csv(tmp_path / "header_only.csv", ["a", "b", "y"], [])
    write_csv(tmp_path / "no_header.csv", [1, 2, 0], [[3, 4, 1]])
    write_csv(tmp_path / "ragged.csv", ["a", "b", "y"], [[1, 2, 0], [3, 4, 5, 6]])
    write_csv(tmp_path / "twice.csv", ["a", "a", "y"], [[1, 2, 0]])
    write_csv(tmp_path / "one_class.csv", ["a", "b", "y"], [[1, 2, "z"], [3, 4, "z"]])
    write_csv(tmp_path / "text_target.csv", ["a", "y"], [[1, "x"], [2, "y"]])
    write_csv(tmp_path / "names.csv", ["name", "y"], [[f"n{i}", i % 2] for i in range(300)])
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)))


ERRORS = [
    (["train", "good.csv", "--target", "price"], ["'price'", "'a', 'b', 'y'"]),
    (["train", "missing.csv", "--target", "y"], ["no such file", "missing.csv"]),
    (["train", "typo.csv", "--target", "y"], ["'b'", "mixes numbers and text", "row 2",
                                              "'oops'", "--drop"]),
    (["train", "inf.csv", "--target", "y"], ["'b'", "infinite", "row 2"]),
    (["train", "empty.csv", "--target", "y"], ["empty.csv is empty"]),
    (["train", "header_only.csv", "--target", "y"], ["no data rows"]),
    (["train", "no_header.csv", "--target", "0"], ["header row"]),
    (["train", "ragged.csv", "--target", "y"], ["line 3"]),
    (["train", "twice.csv", "--target", "y"], ["'a' twice"]),
    (["train", "binary.csv", "--target", "y"], ["binary.csv is not a readable CSV"]),
    (["train", "one_class.csv", "--target", "y"], ["single class"]),
    (["train", "text_target.csv", "--target", "y", "--task", "regression"],
     ["must hold numbers", "'x'"]),
    (["train", "names.csv", "--target", "y"], ["'name'", "distinct values", "too many", "--drop"]),
    (["train", "good.csv", "--target", "y", "--features", "a,zz"], ["'zz'", "--features"]),
    (["train", "good.csv", "--target", "y", "--drop", "zz"], ["'zz'", "--drop"]),
    (["train", "good.csv", "--target", "y", "--features", "y"], ["target", "--features"]),
    (["train", "good.csv", "--target", "y", "--drop", "a,b"], ["no feature column"]),
    (["train", "good.csv", "--target", "y", "--categorical", "zz"], ["'zz'", "--categorical"]),
    (["train", "good.csv", "--target", "y", "--index-col", "7"], ["--index-col", "'7'"]),
    (["train", "good.csv", "--target", "y", "--sep", "::"], ["--sep", "one character"]),
    (["train", "good.csv", "--target", "y", "--hidden", "64,x"], ["--hidden", "'64,x'"]),
    (["train", "good.csv", "--target", "y", "--hidden", "0"], ["--hidden"]),
    (["train", "good.csv", "--target", "y", "--hidden", "\u00b2"],
     ["--hidden takes the hidden-layer widths as integers", "'\u00b2'"]),
    (["train", "good.csv", "--target", "y", "--hidden", "8,\u0663"],
     ["--hidden takes the hidden-layer widths as integers", "'8,\u0663'"]),
    (["train", "good.csv", "--target", "y", "--lr", "inf"],
     ["--lr must be a finite number above 0; got inf"]),
    (["train", "good.csv", "--target", "y", "--lr", "1e400"],
     ["--lr must be a finite number above 0; got 1e400"]),
    (["train", "good.csv", "--target", "y", "--l2", "inf"],
     ["--l2 must be a finite number of at least 0; got inf"]),
    (["train", "good.csv", "--target", "y", "--hidden", "20000,20000"],
     ["--hidden 20000,20000", "400,", "weights", "smaller"]),
    (["train", "good.csv", "--target", "y", "--epochs", "ten"], ["--epochs", "'ten'"]),
    (["train", "good.csv", "--target", "y", "--epochs", "0"], ["--epochs", "at least 1"]),
    (["train", "good.csv", "--target", "y", "--epochs", "1e20"],
     ["--epochs 1e20 is too large", "at most 1000000", "--early-stopping"]),
    (["train", "good.csv", "--target", "y", "--epochs", "2.5"], ["--epochs", "integer"]),
    (["train", "good.csv", "--target", "y", "--batch-size", "0"], ["--batch-size"]),
    (["train", "good.csv", "--target", "y", "--lr", "0"],
     ["--lr must be a finite number above 0; got 0"]),
    (["train", "good.csv", "--target", "y", "--lr", "nan"], ["--lr"]),
    (["train", "good.csv", "--target", "y", "--l2", "-1"], ["--l2"]),
    (["train", "good.csv", "--target", "y", "--dropout", "1"], ["--dropout", "[0, 1)"]),
    (["train", "good.csv", "--target", "y", "--dropout", "0.5", "--hidden", "none"],
     ["--dropout", "hidden"]),
    (["train", "good.csv", "--target", "y", "--validation-fraction", "1"],
     ["--validation-fraction"]),
    (["train", "good.csv", "--target", "y", "--early-stopping", "--validation-fraction", "0"],
     ["--early-stopping", "--validation-fraction"]),
    (["train", "good.csv", "--target", "y", "--patience", "0"], ["--patience"]),
    (["train", "good.csv", "--target", "y", "--optimizer", "fast"], ["'fast'"]),
    (["train", "good.csv", "--target", "y", "--reader", "excel"], ["'excel'"]),
    (["train", "good.csv", "--target", "y", "--out", "nowhere/m.npz"], ["nowhere"]),
    (["train", "good.csv"], ["--target"]),
    (["train", "good.csv", "--target", "y", "--colour"], ["--colour"]),
    (["predict", "nothing.npz", "good.csv"], ["no such file", "nothing.npz"]),
    (["predict", "good.csv", "good.csv"], ["cannot load the model good.csv"]),
    (["predict", ".", "good.csv"], ["is a directory"]),
    (["fly"], ["'fly'"]),
    (["demo", "--repeats", "0"], ["--repeats must be at least 1; got 0"]),
    (["demo", "--repeats", "-3"], ["--repeats must be at least 1; got -3"]),
    (["demo", "--repeats", "many"], ["--repeats takes an integer; got 'many'"]),
    (["demo", "--repeats", "1e9"], ["--repeats 1e9 is too large: at most 1000"]),
]


@pytest.mark.parametrize("argv, fragments", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
@pytest.mark.parametrize("reader", READERS)
def test_errors_are_one_line_with_status_2(argv, fragments, reader, tmp_path, monkeypatch,
                                           capsys):
    bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_tabular, "have_pandas", lambda: reader == "pandas")
    status, out, err = run(argv, capsys)
    assert_one_line_error(status, err, *fragments)


def test_errors_of_predict(colours, surface, tmp_path, capsys):
    path, _ = colours
    run(["train", path, "--target", "colour", "--epochs", "1", "--out", tmp_path / "m.npz"],
        capsys)
    partial = write_csv(tmp_path / "partial.csv", ["b", "colour"], [[1, "red"]])
    status, _, err = run(["predict", tmp_path / "m.npz", partial], capsys)
    assert_one_line_error(status, err, "no columns 'a', 'c'", "the model was trained on them")
    status, _, err = run(["predict", tmp_path / "m.npz", path, "--id", "key"], capsys)
    assert_one_line_error(status, err, "no column 'key'", "--id")
    status, _, err = run(["predict", tmp_path / "m.npz", path, "--id", "colour"], capsys)
    assert_one_line_error(status, err, "--id 'colour'", "predicted column")
    words = write_csv(tmp_path / "words.csv", ["a", "b", "c"], [[1, "two", 3]])
    status, _, err = run(["predict", tmp_path / "m.npz", words], capsys)
    assert_one_line_error(status, err, "'b'", "must hold numbers", "'two'")
    surface_path, _ = surface
    run(["train", surface_path, "--target", "price", "--epochs", "1", "--out",
         tmp_path / "r.npz"], capsys)
    status, _, err = run(["predict", tmp_path / "r.npz", surface_path, "--proba"], capsys)
    assert_one_line_error(status, err, "--proba needs a classification model")
    data = bytearray((tmp_path / "m.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "m.npz").write_bytes(bytes(data))
    status, _, err = run(["predict", tmp_path / "m.npz", path], capsys)
    assert_one_line_error(status, err, "cannot load the model")


def _error_case(*argv):
    return next(case for case in ERRORS if case[0] == list(argv))


@pytest.mark.parametrize("argv, fragments", [
    _error_case("train", "good.csv", "--target", "price"),
    _error_case("train", "missing.csv", "--target", "y"),
    _error_case("train", "typo.csv", "--target", "y"),
    _error_case("train", "good.csv", "--target", "y", "--epochs", "1e20"),
], ids=["missing column", "missing file", "typo", "epochs 1e20"])
def test_errors_of_python_m_fastmlp_have_no_traceback(argv, fragments, tmp_path):
    bad_files(tmp_path)
    done = python_m_fastmlp(argv, cwd=tmp_path)
    assert done.stdout == ""
    assert_one_line_error(done.returncode, done.stderr, *fragments)


# -- end to end, as a user types it -----------------------------------------------------------

def test_python_m_fastmlp_end_to_end_on_a_csv_with_ids_text_and_gaps(tmp_path):
    make_customers(tmp_path / "customers.csv", n=300)
    done = python_m_fastmlp(["train", "customers.csv", "--target", "churn", "--drop",
                             "customer_id", "--hidden", "16", "--epochs", "200",
                             "--early-stopping", "--out", "churn.npz"], cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    out = done.stdout
    assert "read customers.csv with " in out
    assert "one-hot encoded: 'plan'" in out and "imputed: 'age'" in out
    assert "240 training rows, 60 held out" in out
    assert "early stopping:" in out
    assert printed_score(out, "held-out", "accuracy") > 0.8
    assert printed_score(out, "training", "accuracy") > 0.8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn.npz", "customers.csv"]

    done = python_m_fastmlp(["predict", "churn.npz", "customers.csv", "--proba", "--id",
                             "customer_id", "--out", "predictions.csv"], cwd=tmp_path)
    assert done.returncode == 0
    assert "wrote 300 predictions of 'churn' to predictions.csv" in done.stdout
    header, rows = read_output(tmp_path / "predictions.csv")
    assert header == ["customer_id", "churn", "leaves", "stays"]
    assert [r[0] for r in rows] == [f"C{1000 + i}" for i in range(300)]
    proba = np.array([r[2:] for r in rows], dtype=float)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-12)
    truth = [r[-1] for r in csv.reader((tmp_path / "customers.csv").read_text().splitlines())][1:]
    assert np.mean(np.array([r[1] for r in rows]) == np.array(truth)) > 0.8


def test_diabetes_reports_the_held_out_score_beside_the_training_score(tmp_path, capsys):
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_diabetes(scaled=False)
    names = [*data.feature_names, "target"]
    path = write_csv(tmp_path / "diabetes.csv", names,
                     np.column_stack([data.data, data.target]).tolist())
    status, out, _ = run(["train", path, "--target", "target", "--hidden", "32", "--l2",
                          "0.01", "--epochs", "500", "--early-stopping", "--out",
                          tmp_path / "m.npz"], capsys)
    assert status == 0
    training = printed_score(out, "training", "R^2")
    held_out = printed_score(out, "held-out", "R^2")
    assert 0.3 < held_out < training < 0.8


# -- bench and demo ---------------------------------------------------------------------------

def test_bench_outside_a_source_checkout(monkeypatch, capsys):
    monkeypatch.setattr(_cli, "_source_checkout", lambda: None)
    status, _, err = run(["bench", "--quick"], capsys)
    assert_one_line_error(status, err, "source checkout", "python -m benchmarks")


def test_bench_runs_the_suite_of_the_checkout_with_the_options(tmp_path, monkeypatch, capsys):
    suite = tmp_path / "benchmarks"
    suite.mkdir()
    (suite / "__init__.py").write_text("")
    (suite / "__main__.py").write_text(
        "import json, os, sys\n"
        "open('ran.json', 'w').write(json.dumps([os.getcwd(), sys.argv[1:]]))\n"
        "sys.exit(3)\n")
    monkeypatch.setattr(_cli, "_source_checkout", lambda: tmp_path)
    status, _, _ = run(["bench", "--quick", "--configs", "small"], capsys)
    assert status == 3                  # the suite's own exit status
    cwd, args = json.loads((tmp_path / "ran.json").read_text())
    assert Path(cwd) == tmp_path and args == ["--quick", "--configs", "small"]


def test_demo_still_runs(capsys):
    status, out, _ = run(["demo", "--repeats", "1"], capsys)
    assert status == 0
    assert "fastmlp" in out and "plain NumPy" in out and "faster than" in out



def test_proba_columns_are_prefixed_when_a_class_name_is_taken(tmp_path, capsys):
    path = write_csv(tmp_path / "t.csv", ["1", "x", "y"],
                     [[f"r{i}", i % 7, int(i % 7 > 3)] for i in range(40)])
    run(["train", path, "--target", "y", "--drop", "1", "--epochs", "2", "--out",
         tmp_path / "m.npz"], capsys)
    status, out, _ = run(["predict", tmp_path / "m.npz", path, "--proba", "--id", "1"], capsys)
    assert status == 0 and read_output(out)[0] == ["1", "y", "y=0", "y=1"]
