"""The command line, ``python -m fastmlp``: demo, train, predict, bench.

``train`` reads a CSV file with a header row, standardizes the feature columns, trains an MLP
and saves two files: the model, ``<out>`` (``fastmlp.io.save``), and next to it the preprocessing
the model needs, ``<out>.json``: the feature and target column names, the task, the class labels
(classification), the feature means and standard deviations and, for regression, those of the
target (which is standardized too). ``predict`` reads both back and applies them to a new CSV.

Every expected failure (a missing file or column, a non-numeric value, a bad option) ends the
program with one line ``error: <message>`` on stderr and exit status 2, never a traceback.
"""
import argparse
import csv
import importlib.util
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["main"]

# Auto task: a numeric target with at most this many distinct integer values is a class label.
MAX_AUTO_CLASSES = 20
SIDECAR_FORMAT = "fastmlp-cli-preprocessing/1"


class CLIError(ValueError):
    """An error in what the user asked for, reported as one line without a traceback."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other error of the CLI."""

    def error(self, message):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def demo(args):
    """The lecture's circles experiment with fastmlp and with the NumPy reference."""
    from . import MLP
    from .datasets import make_circles, standardize, stratified_split
    from .reference import ReferenceMLP

    X, y = make_circles(n_samples=200, factor=0.5, noise=0.08, random_state=1)
    X_train, X_test, y_train, y_test = stratified_split(X, y, test_size=0.3, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    config = dict(layer_sizes=[2, 4, 4, 1], lr=0.3, seed=42, hidden_activation="relu",
                  lr_decay=0.95)
    epochs, batch = 150, 32
    print("The lecture's experiment: two circles (200 points, noise 0.08), 70/30 stratified "
          "split, [2, 4, 4, 1] ReLU, lr 0.3 decaying 0.95 per epoch, 150 epochs of batch 32.")
    print(f"{len(X_train)} training and {len(X_test)} test samples.\n")

    def fit_fast():
        return MLP(**config).fit(X_train, y_train, epochs=epochs, batch_size=batch,
                                 verbose=False, shuffle_seed=0)

    def fit_reference():
        shuffles = np.random.default_rng(0)
        orders = [shuffles.permutation(len(X_train)) for _ in range(epochs)]
        return ReferenceMLP(**config).train(X_train, y_train, epochs=epochs, batch_size=batch,
                                            orders=orders)

    rows = []
    for name, fit in (("fastmlp", fit_fast), ("NumPy reference", fit_reference)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model = fit()
            times.append(time.perf_counter() - start)
        accuracy = [np.mean((model.forward(Xs) >= 0.5) == ys)
                    for Xs, ys in ((X_train, y_train), (X_test, y_test))]
        rows.append((name, *accuracy, float(np.median(times))))
    print(f"{'':16s} {'train acc':>9s} {'test acc':>9s} {'train time':>11s}")
    for name, acc_train, acc_test, seconds in rows:
        print(f"{name:16s} {acc_train:9.3f} {acc_test:9.3f} {seconds * 1e3:9.2f}ms")
    print(f"\nfastmlp trained {rows[1][3] / rows[0][3]:.0f}x faster than the NumPy reference "
          f"(median of {args.repeats} runs each), from the same weights and batch order.")
    return 0


# -- reading CSV files ------------------------------------------------------------------------

def read_csv(path):
    """Read a CSV file with a header row.

    Returns
    -------
    columns : dict of str -> list of str
        Each column's stripped fields, in file order.
    lines : list of int
        The line number in the file of each data row (for error messages).

    Raises
    ------
    FileNotFoundError, CLIError
        The file is missing, empty, not text, has no header or no data, or a row has the wrong
        number of fields.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows, lines = [], []
            for row in reader:
                if any(field.strip() for field in row):     # blank lines are skipped
                    rows.append([field.strip() for field in row])
                    lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CLIError(f"{path} is not a readable CSV text file ({exc})") from None
    if not rows:
        raise CLIError(f"{path} is empty: a CSV file needs a header row of column names and "
                       f"data rows")
    header, rows, header_line, lines = rows[0], rows[1:], lines[0], lines[1:]
    for i, name in enumerate(header):
        if not name:
            raise CLIError(f"{path}: column {i + 1} of the header (line {header_line}) has no "
                           f"name")
    if all(_is_number(name) for name in header):
        raise CLIError(f"the first line of {path} holds numbers, not column names: the CSV "
                       f"file needs a header row")
    seen = set()
    for name in header:
        if name in seen:
            raise CLIError(f"{path}: the header names column {name!r} twice")
        seen.add(name)
    if not rows:
        raise CLIError(f"{path} has a header but no data rows")
    for row, line in zip(rows, lines):
        if len(row) != len(header):
            raise CLIError(f"{path}, line {line}: {len(row)} fields, but the header has "
                           f"{len(header)} columns")
    columns = {name: [row[j] for row in rows] for j, name in enumerate(header)}
    return columns, lines


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_numbers(values):
    """The values as a float64 array, or the index of the first that is not a finite number."""
    array = np.empty(len(values))
    for i, text in enumerate(values):
        try:
            array[i] = float(text)
        except ValueError:
            return i
        if not math.isfinite(array[i]):
            return i
    return array


def numeric_column(path, name, values, lines, role="a feature column"):
    """A column as a float64 array; CLIError naming the column and line of a bad value."""
    array = _parse_numbers(values)
    if isinstance(array, int):
        text = values[array]
        found = "is empty" if text == "" else f"holds {text!r}"
        raise CLIError(f"column {name!r} of {path} is {role} and must hold finite numbers, but "
                       f"line {lines[array]} {found}")
    return array


def _require_columns(path, columns, names, what):
    missing = [name for name in names if name not in columns]
    if missing:
        raise CLIError(f"{path} has no column{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(map(repr, missing))} ({what}); its columns are "
                       f"{', '.join(map(repr, columns))}")


# -- model files ------------------------------------------------------------------------------

def _model_io():
    """The module that saves and loads models, ``fastmlp.io``."""
    if importlib.util.find_spec("fastmlp.io") is None:
        raise CLIError("this installation of fastmlp cannot save or load models (fastmlp.io is "
                       "missing); upgrade fastmlp")
    from . import io
    return io


def sidecar_path(model_path):
    """Where the preprocessing of the model at ``model_path`` is stored: ``<model_path>.json``."""
    return Path(str(model_path) + ".json")


def _save_model(model, path, extras):
    """Save the model to ``path`` and its preprocessing ``extras`` to ``<path>.json``."""
    _model_io().save(model, path)
    sidecar_path(path).write_text(json.dumps(extras, indent=2) + "\n", encoding="utf-8")


def _load_model(path):
    """Return the model saved at ``path`` and the preprocessing saved next to it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise CLIError(f"{sidecar} is missing: `python -m fastmlp train` writes it next to the "
                       f"model, with the column names and scaling the model needs")
    try:
        extras = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"{sidecar} is not a valid JSON file ({exc})") from None
    keys = ("format", "features", "target", "task", "classes", "feature_mean", "feature_std",
            "target_mean", "target_std")
    if not isinstance(extras, dict) or extras.get("format") != SIDECAR_FORMAT \
            or any(key not in extras for key in keys):
        raise CLIError(f"{sidecar} is not a fastmlp preprocessing file (written by "
                       f"`python -m fastmlp train`)")
    io = _model_io()
    try:
        model = io.load(path)
    except Exception as exc:    # whatever a corrupt file makes the loader raise
        raise CLIError(f"cannot load the model {path}: {exc}") from None
    return model, extras


# -- train ------------------------------------------------------------------------------------

def parse_hidden(text):
    """``"64,32"`` -> ``[64, 32]``; ``""`` or ``"none"`` -> ``[]`` (no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return []
    widths = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise CLIError(f"--hidden takes the hidden-layer widths as positive integers "
                           f"separated by commas, like 64,32; got {text!r}")
        widths.append(int(part))
    return widths


def _target(path, name, values, lines, task):
    """Decide the task and encode the target.

    Returns the task ("classification" or "regression"), the target array (class indices or
    values) and the classes (list of labels, or None for regression).
    """
    empty = next((line for text, line in zip(values, lines) if text == ""), None)
    if empty is not None:
        raise CLIError(f"the target column {name!r} of {path} is empty at line {empty}")
    numbers = _parse_numbers(values)
    if isinstance(numbers, int):
        numbers = None
    if task == "auto":
        few_integers = (numbers is not None and np.all(numbers == np.round(numbers))
                        and len(np.unique(numbers)) <= MAX_AUTO_CLASSES)
        task = "classification" if numbers is None or few_integers else "regression"
    if task == "regression":
        if numbers is None:
            numeric_column(path, name, values, lines, role="the target of a regression")
        return task, numbers, None
    if numbers is not None and np.all(numbers == np.round(numbers)):
        labels = numbers.astype(np.int64)
    elif numbers is not None:
        labels = numbers
    else:
        labels = np.array(values)
    classes, index = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise CLIError(f"the target column {name!r} of {path} holds a single class "
                       f"({classes[0].item()!r}); classification needs at least two")
    return task, index, [c.item() for c in classes]


def train(args):
    """Train an MLP on a CSV file and save it."""
    from . import MLP

    hidden = parse_hidden(args.hidden)
    out = Path(args.out)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    if not out.parent.is_dir():
        raise CLIError(f"cannot write {out}: the folder {out.parent} does not exist")
    columns, lines = read_csv(args.csv)
    _require_columns(args.csv, columns, [args.target], "the --target")
    features = [name for name in columns if name != args.target]
    if not features:
        raise CLIError(f"{args.csv} has no feature columns: every column but the target "
                       f"{args.target!r} is a feature")
    X = np.column_stack([numeric_column(args.csv, name, columns[name], lines)
                         for name in features])
    task, y, classes = _target(args.csv, args.target, columns[args.target], lines, args.task)
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    target_mean = target_std = None
    if task == "regression":
        target_mean, target_std = float(y.mean()), float(y.std()) or 1.0
        y = (y - target_mean) / target_std
        n_out, loss = 1, "squared_error"
    elif len(classes) == 2:
        n_out, loss = 1, "binary_crossentropy"
    else:
        n_out, loss = len(classes), "categorical_crossentropy"
    model = MLP([len(features), *hidden, n_out], lr=args.lr, seed=args.seed, loss=loss,
                optimizer=args.optimizer)
    model.fit((X - mean) / std, y, epochs=args.epochs, batch_size=args.batch_size,
              verbose=args.verbose)
    metric = model.score((X - mean) / std, y)
    extras = {"format": SIDECAR_FORMAT, "features": features, "target": args.target,
              "task": task, "classes": classes, "feature_mean": mean.tolist(),
              "feature_std": std.tolist(), "target_mean": target_mean, "target_std": target_std}
    _save_model(model, out, extras)
    kind = (f"classification ({len(classes)} classes)" if task == "classification"
            else "regression")
    print(f"trained {model.sizes} for {kind} of {args.target!r} on {X.shape[0]} rows, "
          f"{args.epochs} epochs: final loss {model.history['loss'][-1]:.5g}, training "
          f"{'accuracy' if task == 'classification' else 'R^2'} {metric:.4f}")
    print(f"saved {out} and {sidecar_path(out)}")
    return 0


# -- predict ----------------------------------------------------------------------------------

def predict(args):
    """Predict the target of each row of a CSV file with a model saved by ``train``."""
    model, extras = _load_model(args.model)
    columns, lines = read_csv(args.csv)
    features = extras["features"]
    _require_columns(args.csv, columns, features, "the model was trained on them")
    X = np.column_stack([numeric_column(args.csv, name, columns[name], lines)
                         for name in features])
    X = (X - np.asarray(extras["feature_mean"])) / np.asarray(extras["feature_std"])
    out = model.predict(X)
    if extras["task"] == "regression":
        values = [repr(float(v)) for v in out * extras["target_std"] + extras["target_mean"]]
    else:
        values = [str(extras["classes"][int(i)]) for i in out]
    if args.out is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([extras["target"]])
        writer.writerows([v] for v in values)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow([extras["target"]])
            writer.writerows([v] for v in values)
        print(f"wrote {len(values)} predictions of {extras['target']!r} to {args.out}")
    return 0


# -- bench ------------------------------------------------------------------------------------

def _source_checkout():
    """The root of the source checkout this fastmlp runs from, if it holds ``benchmarks/``."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "benchmarks" / "__main__.py").is_file() else None


def bench(args):
    """Run the benchmark suite, ``python -m benchmarks``, of the source checkout."""
    root = _source_checkout()
    if root is None:
        raise CLIError("the benchmark suite is not installed with fastmlp: it runs from a source "
                       "checkout, with `python -m benchmarks` in the repository")
    command = [sys.executable, "-m", "benchmarks"] + (["--quick"] if args.quick else [])
    return subprocess.call(command + args.bench_args, cwd=root)


# -- main -------------------------------------------------------------------------------------

def _parser():
    parser = _Parser(prog="python -m fastmlp",
                     description="fastmlp: fast multilayer perceptrons.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="train the lecture's circles MLP with fastmlp and NumPy",
                            description=demo.__doc__)
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    p.set_defaults(run=demo)

    p = commands.add_parser(
        "train", help="train an MLP on a CSV file",
        description="Train an MLP on a CSV file with a header row. Every column but the target "
                    "is a feature and must be numeric; features are standardized. Writes the "
                    "model to OUT and its preprocessing (column names, task, classes, scaling) "
                    "to OUT.json; `predict` needs both.")
    p.add_argument("csv", metavar="CSV", help="the training data, with a header row")
    p.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    p.add_argument("--hidden", default="64,32", metavar="W1,W2,...",
                   help="hidden-layer widths, comma-separated (default 64,32; 'none' for none)")
    p.add_argument("--epochs", type=int, default=50, help="passes over the data (default 50)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", default="adam",
                   help="sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw (default adam)")
    p.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help=f"auto (default): classification when the target holds text or at most "
                        f"{MAX_AUTO_CLASSES} distinct integers, else regression")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default="model.npz",
                   help="model file to write (default model.npz; .npz is appended if missing)")
    p.add_argument("--verbose", action="store_true", help="print the loss of every epoch")
    p.set_defaults(run=train)

    p = commands.add_parser(
        "predict", help="predict with a model saved by train",
        description="Predict the target of every row of a CSV file with a model saved by "
                    "`train` (and its MODEL.json). The CSV must have the model's feature "
                    "columns; other columns are ignored. Prints one prediction per line under "
                    "a header, or writes them to --out.")
    p.add_argument("model", metavar="MODEL", help="the model file written by train")
    p.add_argument("csv", metavar="CSV", help="the data, with a header row")
    p.add_argument("--out", default=None, help="write the predictions to this CSV file")
    p.set_defaults(run=predict)

    p = commands.add_parser(
        "bench", help="run the benchmark suite (from a source checkout)",
        description="Run the benchmark suite, `python -m benchmarks`, which lives in the "
                    "repository's benchmarks/ folder (not installed with the package). Other "
                    "options are passed on to it; see `python -m benchmarks --help`.")
    p.add_argument("--quick", action="store_true", help="a short run with fewer repeats")
    p.set_defaults(run=bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``), e.g. ``["train", "data.csv", "--target",
        "y"]``.

    Returns
    -------
    int
        0 on success, 2 on an error (reported as one line on stderr), 130 when interrupted,
        or the benchmark suite's own status for ``bench``.
    """
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.bench_args = rest
    try:
        return args.run(args)
    except FileNotFoundError as exc:
        message = f"no such file: {exc.filename}"
    except IsADirectoryError as exc:
        message = f"{exc.filename} is a directory, not a file"
    except OSError as exc:
        message = f"cannot access {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    except (ValueError, TypeError, csv.Error) as exc:
        message = str(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 2
