"""The command line, ``fastmlp`` (or ``python -m fastmlp``): demo, train, predict, bench.

``train`` reads a CSV file with a header row (with pandas when it is installed, else with a
NumPy reader; see ``fastmlp._tabular``), holds out a validation split (20% by default,
stratified for classification, drawn from ``--seed``), imputes missing values (median of a
numeric column, most frequent value of a text column), standardizes numeric columns, one-hot
encodes text columns, trains an MLP and prints the training score beside the held-out one. It
saves ONE file: the model, with the preprocessing stored inside it (``fastmlp.io.save(...,
extra=...)``, under the file's checksum): the feature columns and how each is imputed and
encoded, the task, the class labels, the target's name and scaling. ``predict`` reads that file
and applies the same preprocessing to a new CSV; a category it has not seen in training is
encoded as all zeros (and reported). ``--strict`` refuses text features, missing values and
unseen categories instead.

A model file saved by ``MLP.save`` or ``fastmlp.io.save`` has no such preprocessing: ``predict``
refuses it with a message (the columns it reads are unknown). The ``<model>.json`` sidecar of
earlier versions is not read: ``predict`` says to retrain.

Every expected failure (a missing file or column, a bad value, a bad option) ends the program
with one line ``error: <message>`` on stderr and exit status 2, never a traceback.
"""
import argparse
import csv
import io as io_module
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from . import _tabular
from ._validation import check_real
from .io import _write_atomically

__all__ = ["main"]

#: Upper bounds that keep a typo (``--epochs 1e20``) from exhausting memory or time.
MAX_EPOCHS = 1_000_000
MAX_WIDTH = 100_000
MAX_WEIGHTS = 100_000_000
MAX_REPEATS = 1000


class CLIError(ValueError):
    """An error in what the user asked for, reported as one line without a traceback."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other error of the CLI."""

    def error(self, message):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def demo(args):
    """The lecture's circles experiment with fastmlp and with plain NumPy."""
    from . import MLP
    from .datasets import make_circles, standardize, stratified_split
    from .reference import SimpleMLP

    X, y = make_circles(n_samples=200, factor=0.5, noise=0.08, random_state=1)
    X_train, X_test, y_train, y_test = stratified_split(X, y, test_size=0.3, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    config = dict(layer_sizes=[2, 4, 4, 1], lr=0.3, seed=42, hidden_activation="relu",
                  lr_decay=0.95)
    epochs, batch = 150, 32
    print("The lecture's experiment: two circles (200 points, noise 0.08), 70/30 stratified "
          "split, [2, 4, 4, 1] ReLU, lr 0.3 decaying 0.95 per epoch, 150 epochs of batch 32.")
    print(f"{len(X_train)} training and {len(X_test)} test samples.\n")
    initial = MLP(**config)
    W0, b0 = [w.copy() for w in initial.W], [v.copy() for v in initial.b]
    shuffles = np.random.default_rng(0)     # the orders MLP.train(shuffle_seed=0) draws
    orders = [shuffles.permutation(len(X_train)) for _ in range(epochs)]
    rates = [config["lr"] * config["lr_decay"] ** e for e in range(epochs)]
    targets = y_train.reshape(-1, 1)

    def fit_fast():
        model = MLP(**config).fit(X_train, y_train, epochs=epochs, batch_size=batch,
                                  verbose=False, shuffle_seed=0)
        return lambda Xs: model.predict(Xs)

    def fit_numpy():
        model = SimpleMLP(W0, b0).train(X_train, targets, orders, rates, batch)
        return model.predict

    rows = []
    for name, fit in (("fastmlp", fit_fast), ("plain NumPy", fit_numpy)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predict = fit()
            times.append(time.perf_counter() - start)
        accuracy = [np.mean(predict(Xs) == ys) for Xs, ys in ((X_train, y_train),
                                                               (X_test, y_test))]
        rows.append((name, *accuracy, float(np.median(times))))
    print(f"{'':16s} {'train acc':>9s} {'test acc':>9s} {'train time':>11s}")
    for name, acc_train, acc_test, seconds in rows:
        print(f"{name:16s} {acc_train:9.3f} {acc_test:9.3f} {seconds * 1e3:9.2f}ms")
    print(f"\nfastmlp trained {rows[1][3] / rows[0][3]:.0f}x faster than plain NumPy (the "
          f"lecture's SimpleMLP written for speed; median of {_plural(args.repeats, 'run')} "
          f"each, model construction included), from the same weights and batch order.")
    return 0


# -- option values ----------------------------------------------------------------------------

def _integer(option, low, high=None, hint=""):
    """An argparse type: an integer in [low, high], written as ``50`` or ``5e1``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{option} takes an integer; got {text!r}")
            if not number.is_integer():
                raise argparse.ArgumentTypeError(f"{option} takes an integer; got {text!r}")
            value = int(number)
        if value < low:
            raise argparse.ArgumentTypeError(f"{option} must be at least {low}; got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{option} {text} is too large: at most {high}{hint}")
        return value
    return parse


def _real(option, low, high=None, low_open=False, high_open=False):
    """An argparse type: a finite float in the interval."""
    if high is not None:
        where = (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                 f"{')' if high_open else ']'}")
    else:
        where = f"above {low:g}" if low_open else f"of at least {low:g}"

    def parse(text):
        if not _is_float(text):
            raise argparse.ArgumentTypeError(f"{option} takes a number; got {text!r}")
        try:
            return check_real(option, float(text), low, high, low_open, high_open)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a finite number {where}; got "
                                             f"{text.strip()}") from None
    return parse


def _separator(text):
    """An argparse type: one character; ``\\t`` or ``tab`` for a tab."""
    text = "\t" if text in ("\\t", "tab", "TAB") else text
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"--sep takes one character, like ';' or '\\t'; got "
                                         f"{text!r}")
    return text


def _out_file(text):
    """An argparse type: the path of a file to write, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"--out takes a file name; got {text!r}")
    return text


def _check_out_writable(out):
    """Raise CLIError (or ValueError) unless ``out`` can be written: its folder exists and may
    be written in, and nothing but a regular file is at the path. Checked before any work, so
    that a typo in --out does not cost a training run."""
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise CLIError(f"cannot write {out}: the folder {os.path.dirname(out) or folder} does "
                       f"not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"cannot write {out}: no permission to write in the folder "
                       f"{os.path.dirname(out) or folder}")
    _model_io()._check_save_target(out)


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_hidden(text):
    """``"64,32"`` -> ``[64, 32]``; ``""`` or ``"none"`` -> ``[]`` (no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return []
    widths = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_WIDTH:
            raise CLIError(f"--hidden takes the hidden-layer widths as integers from 1 to "
                           f"{MAX_WIDTH} separated by commas, like 64,32; got {text!r}")
        widths.append(int(part))
    return widths


def _quoted(names, limit=8):
    """``'a', 'b', 'c'`` or ``'a', 'b', ... (12 more)``."""
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _plural(n, word, words=None):
    return f"{n} {word if n == 1 else words or word + 's'}"


def _same_file(a, b):
    """Whether the paths ``a`` and ``b`` name one file (also through links or another
    spelling); False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def _check_out_is_not_an_input(out, inputs):
    """Raise CLIError when ``out`` names one of the ``inputs`` (what, path): the output
    would replace it."""
    for what, path in inputs:
        if _same_file(out, path):
            raise CLIError(f"--out {out} is {what} ({path}): writing there would replace it; "
                           f"choose another --out")


# -- model files ------------------------------------------------------------------------------

def _model_io():
    """The module that saves and loads models, ``fastmlp.io``."""
    from . import io
    return io


def _load_model(path):
    """Return the model saved by ``train`` at ``path`` and the preprocessing stored in it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    try:
        model, extra = _model_io().load(path, with_extra=True)
    except OSError as exc:
        raise CLIError(f"cannot load the model {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        # load's message begins "cannot load '<path>': "; say it once.
        detail = str(exc).removeprefix(f"cannot load {str(path)!r}: ")
        raise CLIError(f"cannot load the model {path}: {detail}") from None
    if extra is None or "format" not in extra:
        if Path(str(path) + ".json").is_file():
            raise CLIError(f"{path} comes from an older `fastmlp train` that kept its "
                           f"preprocessing in {path}.json; retrain it with this version, which "
                           f"stores the preprocessing in the model file")
        raise CLIError(f"{path} holds a model without the command line's preprocessing (saved "
                       f"by MLP.save or fastmlp.io.save, not `fastmlp train`), so the columns it "
                       f"reads are unknown: retrain it with `fastmlp train`, or use it from "
                       f"Python with fastmlp.load({str(path)!r}).predict(X)")
    if extra["format"] != _tabular.FORMAT:
        raise CLIError(f"{path} stores preprocessing in the format {extra['format']!r}, which "
                       f"this version of fastmlp does not read ({_tabular.FORMAT!r}): retrain "
                       f"it with this version")
    _check_spec(path, model, extra)
    return model, extra


def _check_spec(path, model, spec):
    """Raise CLIError unless the stored preprocessing describes this model's inputs and
    outputs."""
    try:
        n_inputs = len(_tabular.input_names(spec["columns"]))
        task, classes = spec["task"], spec["classes"]
        if task == "classification":
            n_outputs = 1 if len(classes) == 2 else len(classes)
        else:
            n_outputs = 1
            float(spec["target_mean"]), float(spec["target_std"])
        for c in spec["columns"]:
            if c["kind"] == "numeric":
                float(c["fill"]), float(c["mean"]), float(c["std"])
            elif c["kind"] != "text" or not isinstance(c["categories"], list):
                raise TypeError(c)
        ok = (task in ("classification", "regression") and isinstance(spec["target"], str)
              and [n_inputs, n_outputs] == [model.sizes[0], model.sizes[-1]])
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CLIError(f"the preprocessing stored in {path} does not match its model "
                       f"({model.sizes}): the file was not written by `fastmlp train`; retrain it")


# -- train ------------------------------------------------------------------------------------

def train(args):
    """Train an MLP on a CSV file and save it, with its preprocessing, to one file."""
    from . import MLP
    from .callbacks import EarlyStopping

    hidden = parse_hidden(args.hidden)
    if args.dropout > 0 and not hidden:
        raise CLIError("--dropout applies to hidden layers, and --hidden none has none")
    if args.early_stopping and args.validation_fraction == 0:
        raise CLIError("--early-stopping watches the loss on held-out rows: it needs "
                       "--validation-fraction above 0")
    out = Path(args.out)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    _check_out_writable(out)
    _check_out_is_not_an_input(out, [("the training CSV", args.csv)])

    categorical = _tabular._names(args.categorical)
    table = _tabular.read_table(args.csv, args.sep, args.index_col, categorical, args.reader)
    table.require(categorical, "given to --categorical")
    lines = [f"read {table.path} with {table.reader}: {_plural(table.n_rows, 'row')}, "
             f"{_plural(len(table.names), 'column')}"
             + (f" and the index column {table.index[0]!r}" if table.index else "")]
    features = _tabular.select_features(table, args.target, args.features, args.drop)
    task, y, classes, present = _tabular.encode_target(table, args.target, args.task)
    rows = np.flatnonzero(present)
    if len(rows) < len(y):
        if args.strict:
            raise CLIError(f"the target column {args.target!r} of {table.path} is missing in "
                           f"{_plural(len(y) - len(rows), 'row')} (the first is data row "
                           f"{int(np.flatnonzero(~present)[0]) + 1}) and --strict refuses them")
        lines.append(f"left out {_plural(len(y) - len(rows), 'row')} whose target "
                     f"{args.target!r} is missing")
    classification = task == "classification"
    train_at, held_at = _tabular.split_rows(y[rows], classification, args.validation_fraction,
                                            args.seed)
    train_rows, held_rows = rows[train_at], rows[held_at]
    with np.errstate(over="ignore", invalid="ignore"):   # an overflow is reported below
        columns = _tabular.fit_preprocessing(table, features, train_rows, args.strict)
    for c in columns:
        if c["kind"] == "numeric" and not (np.isfinite(c["mean"]) and np.isfinite(c["std"])):
            raise CLIError(f"column {c['name']!r} of {table.path} holds numbers too large to "
                           f"standardize (up to {_largest(table.columns[c['name']]):g}: their "
                           f"spread overflows 64-bit floats): rescale the column, e.g. to "
                           f"other units, or --drop it")
    X, report = _tabular.transform(table, columns)
    lines += _describe_features(table, features, columns, report, args)

    target_mean = target_std = None
    if classification:
        n_out = 1 if len(classes) == 2 else len(classes)
        loss = "binary_crossentropy" if n_out == 1 else "categorical_crossentropy"
        kind = f"classification ({len(classes)} classes: {_quoted(classes, 5)})"
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            target_mean = float(y[train_rows].mean())
            target_std = float(y[train_rows].std()) or 1.0
        if not (np.isfinite(target_mean) and np.isfinite(target_std)):
            raise CLIError(f"the target column {args.target!r} of {table.path} holds numbers "
                           f"too large to standardize (up to {_largest(y[rows]):g}: their "
                           f"spread overflows 64-bit floats): rescale it, e.g. to other units")
        y = (y - target_mean) / target_std
        n_out, loss, kind = 1, "squared_error", "regression (standardized for training)"
    split = (f"{len(train_rows)} training rows, {len(held_rows)} held out "
             f"(--validation-fraction {args.validation_fraction:g}"
             f"{', stratified' if classification else ''}, seed {args.seed})"
             if len(held_rows) else f"{len(train_rows)} training rows, none held out")
    lines.append(f"target {args.target!r}: {kind}; {split}")

    sizes = [X.shape[1], *hidden, n_out]
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_weights > MAX_WEIGHTS:
        raise CLIError(f"--hidden {args.hidden} makes a network {sizes} of {n_weights:,} "
                       f"weights, more than {MAX_WEIGHTS:,}: use smaller hidden layers")
    print("\n".join(lines))       # only now: a data error leaves stdout empty

    model = MLP(sizes, lr=args.lr, seed=args.seed, l2=args.l2,
                loss=loss, optimizer=args.optimizer, dropout=args.dropout)
    X_train, y_train = X[train_rows], y[train_rows]
    validation = (X[held_rows], y[held_rows]) if len(held_rows) else None
    stop = (EarlyStopping(monitor="val_loss", patience=args.patience)
            if args.early_stopping else None)
    model.train(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                verbose=args.verbose, validation_data=validation,
                callbacks=[stop] if stop else None)
    run = len(model.history["loss"])
    print(f"trained {model.sizes} with {args.optimizer} (lr {args.lr:g}, batch "
          f"{args.batch_size}, l2 {args.l2:g}, dropout {args.dropout:g}) for "
          f"{_plural(run, 'epoch')}: final training loss {model.history['loss'][-1]:.5g}")
    if stop is not None:
        if stop.stopped_epoch:
            what = (f"stopped after epoch {stop.stopped_epoch}: no improvement for "
                    f"{_plural(args.patience, 'epoch')}")
        else:
            what = f"ran all {args.epochs} epochs"
        print(f"early stopping: {what}; kept the weights of epoch {stop.best_epoch}, the best "
              f"held-out loss ({stop.best:.5g})")

    scores = {"training": float(model.score(X_train, y_train))}
    metric = "accuracy" if classification else "R^2"
    line = f"training {metric} {scores['training']:.4f}"
    if validation is not None:
        scores["held_out"] = float(model.score(*validation))
        line += f", held-out {metric} {scores['held_out']:.4f}"
        y_held = y[held_rows]
        if classification:
            majority = np.bincount(y_train).argmax()
            line += f" (always predicting the commonest class: {np.mean(y_held == majority):.4f})"
        else:
            errors = (model.predict(validation[0]) - y_held) * target_std
            scores["held_out_rmse"] = float(np.sqrt(np.mean(errors ** 2)))
            line += f" (RMSE {scores['held_out_rmse']:.5g} in the target's units)"
    print(line)

    spec = {"format": _tabular.FORMAT, "target": args.target, "task": task, "classes": classes,
            "target_mean": target_mean, "target_std": target_std, "columns": columns,
            "sep": args.sep, "scores": scores}
    _model_io().save(model, out, extra=spec)
    print(f"saved {out} (the model and its preprocessing, one file)")
    return 0


def _largest(values):
    """The largest magnitude among the numbers ``values`` (NaN for missing ones)."""
    return float(np.nanmax(np.abs(values)))


def _describe_features(table, features, columns, report, args):
    """Lines saying which columns are features and what was done to them."""
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"]
    n_inputs = len(_tabular.input_names(columns))
    lines = [f"features: {_plural(len(features), 'column')} -> {_plural(n_inputs, 'input')}; "
             f"{_plural(len(numeric), 'numeric column')} standardized"
             + (f": {_quoted(numeric)}" if numeric else "")]
    for c in columns:
        if c["kind"] == "text":
            n = _plural(len(c["categories"]), "category", "categories")
            lines.append(f"  one-hot encoded: {c['name']!r} ({n}: {_quoted(c['categories'], 5)}; "
                         f"a category unseen in training becomes all zeros)")
    by_name = {c["name"]: c for c in columns}
    for name, n_missing, unseen in report:
        c = by_name[name]
        how = (f"median {c['fill']:.6g}" if c["kind"] == "numeric"
               else f"most frequent {c['fill']!r}")
        if n_missing:
            lines.append(f"  imputed: {name!r}, {_plural(n_missing, 'missing value')} filled "
                         f"with the training rows' {how}")
        if unseen:          # categories that only held-out rows have
            lines.append(f"  note: {name!r}: {_plural(unseen, 'held-out value')} of "
                         f"categories not in the training rows, encoded as all zeros")
    left_out = [n for n in table.names if n not in features and n != args.target]
    if left_out:
        lines.append(f"  not used: {_quoted(left_out)}")
    for name in features:
        values = table.columns[name]
        if values.dtype != object and len(values) >= 20 and not np.isnan(values).any() \
                and np.all(values == np.round(values)) and len(np.unique(values)) == len(values):
            lines.append(f"  note: {name!r} holds a distinct integer in every row, like an "
                         f"identifier; if it is one, --drop it")
    return lines


# -- predict ----------------------------------------------------------------------------------

def predict(args):
    """Predict the target of each row of a CSV file with a model saved by ``train``."""
    if args.out is not None:
        _check_out_writable(args.out)
        _check_out_is_not_an_input(args.out, [("the model file", args.model),
                                              ("the input CSV", args.csv)])
    model, spec = _load_model(args.model)
    sep = spec.get("sep", ",") if args.sep is None else args.sep
    text_columns = [c["name"] for c in spec["columns"] if c["kind"] == "text"]
    if args.id is not None:     # passed through as written: "007", ids beyond 2**53
        text_columns.append(args.id)
    table = _tabular.read_table(args.csv, sep, args.index_col, text_columns, args.reader)
    target, classes = spec["target"], spec["classes"]
    if args.id is not None:
        table.require([args.id], "given to --id", index=True)
        if args.id == target:
            raise CLIError(f"--id {args.id!r} is the name of the predicted column: pass "
                           f"another column")
    if args.proba and spec["task"] != "classification":
        raise CLIError(f"--proba needs a classification model; {args.model} does regression "
                       f"of {target!r}")
    X, report = _tabular.transform(table, spec["columns"], args.strict)

    header = ([args.id] if args.id is not None else []) + [target]
    fields = []
    if args.id is not None:
        fields.append(table.values(args.id).tolist())
    if spec["task"] == "regression":
        fields.append([repr(v) for v in
                       (model.predict(X) * spec["target_std"] + spec["target_mean"]).tolist()])
    else:
        proba = model.predict_proba(X)
        if proba.ndim == 1:
            proba = np.column_stack([1 - proba, proba])
        fields.append([str(classes[i]) for i in proba.argmax(axis=1)])
        if args.proba:
            names = [str(c) for c in classes]
            if set(names) & set(header):
                names = [f"{target}={c}" for c in names]
            header += names
            fields += [[repr(v) for v in column] for column in proba.T.tolist()]
    rows = zip(*[[("" if v is None else v) for v in column] for column in fields])

    notes = [f"column {name!r}: "
             + "; ".join(filter(None, [
                 n_missing and f"{_plural(n_missing, 'missing value')} imputed as in training",
                 unseen and f"{_plural(unseen, 'value')} of categories unseen in training "
                            f"encoded as all zeros"]))
             for name, n_missing, unseen in report]
    if args.out is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        def write(f):
            text = io_module.TextIOWrapper(f, encoding="utf-8", newline="")
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            text.flush()
            text.detach()           # leave the binary file open for the atomic writer

        # As model files: a regular file (or none) replaced in one step once complete.
        try:
            _write_atomically(args.out, write, lambda f: None)
        except OSError as exc:      # named after the user's path, not the temporary file's
            raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {table.n_rows} predictions of {target!r} to {args.out} (columns "
              f"{_quoted(header)})")
        for note in notes:
            print(f"note: {note}")
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

def _optimizer_names():
    from .optimizers import OPTIMIZERS
    return OPTIMIZERS


def _parser():
    parser = _Parser(prog="fastmlp",
                     description="fastmlp: fast multilayer perceptrons.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="train the lecture's circles MLP with fastmlp and NumPy",
                            description=demo.__doc__)
    p.add_argument("--repeats", type=_integer("--repeats", 1, MAX_REPEATS), default=5,
                   metavar="N", help=f"timed runs of each (default 5, at most {MAX_REPEATS})")
    p.set_defaults(run=demo)

    p = commands.add_parser(
        "train", help="train an MLP on a CSV file",
        description="Train an MLP on a CSV file with a header row, holding out a validation "
                    "split to report the held-out score beside the training score. Every "
                    "column but the target is a feature (choose with --features and --drop). "
                    "Numeric columns are standardized; text columns are one-hot encoded; "
                    "missing values are imputed (median of a numeric column, most frequent "
                    "value of a text column), each reported in the output, or refused with "
                    "--strict. Writes one file, OUT: the model with its preprocessing, which "
                    "`predict` applies.")
    p.add_argument("csv", metavar="CSV", help="the training data, with a header row")
    p.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    data = p.add_argument_group("reading and preparing the data")
    data.add_argument("--features", action="append", metavar="COL,...",
                      help="use only these columns as features (comma-separated or repeated)")
    data.add_argument("--drop", action="append", metavar="COL,...",
                      help="leave out these columns, e.g. an id column (comma-separated or "
                           "repeated)")
    data.add_argument("--categorical", action="append", metavar="COL,...",
                      help="one-hot encode these columns even though they hold numbers "
                           "(category codes)")
    data.add_argument("--sep", default=",", metavar="CHAR", type=_separator,
                      help="the field delimiter, e.g. ';' or '\\t' (default ',')")
    data.add_argument("--index-col", metavar="COL",
                      help="a column of row labels, by name or position from 0, never used as "
                           "a feature (--index-col 0 for the unnamed first column that pandas' "
                           "DataFrame.to_csv writes)")
    data.add_argument("--strict", action="store_true",
                      help="refuse text feature columns and missing values instead of one-hot "
                           "encoding and imputing them")
    data.add_argument("--reader", choices=["auto", "pandas", "numpy"], default="auto",
                      help="CSV reader: auto (default) uses pandas when it is installed")
    data.add_argument("--task", choices=["auto", "classification", "regression"],
                      default="auto",
                      help=f"auto (default): classification when the target holds text or at "
                           f"most {_tabular.MAX_AUTO_CLASSES} distinct integers, else "
                           f"regression")
    data.add_argument("--validation-fraction", type=_real("--validation-fraction", 0, 1,
                                                          high_open=True),
                      default=0.2, metavar="F",
                      help="fraction of the rows held out to score the model (stratified for "
                           "classification; default 0.2; 0 holds out none)")
    net = p.add_argument_group("the network and its training")
    net.add_argument("--hidden", default="64,32", metavar="W1,W2,...",
                     help="hidden-layer widths, comma-separated (default 64,32; 'none' for none)")
    net.add_argument("--epochs", default=50, metavar="N",
                     type=_integer("--epochs", 1, MAX_EPOCHS,
                                   "; --early-stopping ends training when the held-out loss "
                                   "stops improving"),
                     help=f"passes over the training rows (default 50, at most {MAX_EPOCHS})")
    net.add_argument("--batch-size", type=_integer("--batch-size", 1), default=32, metavar="N",
                     help="rows per step (default 32)")
    net.add_argument("--lr", type=_real("--lr", 0, low_open=True), default=0.01, metavar="RATE",
                     help="learning rate (default 0.01)")
    net.add_argument("--optimizer", default="adam", choices=list(_optimizer_names()),
                     help="update rule (default adam)")
    net.add_argument("--l2", type=_real("--l2", 0), default=0.0, metavar="PENALTY",
                     help="L2 penalty on the weights (default 0)")
    net.add_argument("--dropout", type=_real("--dropout", 0, 1, high_open=True), default=0.0,
                     metavar="RATE",
                     help="dropout rate of the hidden layers, in [0, 1) (default 0)")
    net.add_argument("--early-stopping", action="store_true",
                     help="stop when the held-out loss has not improved for --patience epochs "
                          "and keep the best epoch's weights")
    net.add_argument("--patience", type=_integer("--patience", 1), default=10, metavar="N",
                     help="epochs without improvement before --early-stopping stops "
                          "(default 10)")
    net.add_argument("--seed", type=_integer("--seed", 0), default=0, metavar="N",
                     help="seed of the split, the initial weights and the shuffling (default 0)")
    p.add_argument("--out", default="model.npz", type=_out_file,
                   help="model file to write (default model.npz; .npz is appended if missing)")
    p.add_argument("--verbose", action="store_true", help="print the loss of every epoch")
    p.set_defaults(run=train)

    p = commands.add_parser(
        "predict", help="predict with a model saved by train",
        description="Predict the target of every row of a CSV file with a model saved by "
                    "`train`, applying the preprocessing stored in it. The CSV must have the "
                    "model's feature columns; other columns are ignored. Missing values are "
                    "imputed as in training; a category not seen in training is encoded as "
                    "all zeros (both reported on stderr, or refused with --strict). Prints a "
                    "CSV of predictions, or writes it to --out.")
    p.add_argument("model", metavar="MODEL", help="the model file written by train")
    p.add_argument("csv", metavar="CSV", help="the data, with a header row")
    p.add_argument("--out", default=None, type=_out_file,
                   help="write the predictions to this CSV file")
    p.add_argument("--id", metavar="COL",
                   help="copy this column (e.g. an id) into the output, as its first column")
    p.add_argument("--proba", action="store_true",
                   help="add the class probabilities, one column named after each class "
                        "(TARGET=class if a class name is taken by another output column)")
    p.add_argument("--sep", default=None, metavar="CHAR", type=_separator,
                   help="the field delimiter (default: the one the model was trained with)")
    p.add_argument("--index-col", metavar="COL",
                   help="a column of row labels, by name or position from 0 (see train)")
    p.add_argument("--strict", action="store_true",
                   help="refuse missing values and unseen categories")
    p.add_argument("--reader", choices=["auto", "pandas", "numpy"], default="auto",
                   help="CSV reader: auto (default) uses pandas when it is installed")
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
        141 when the reader of the output closed it early (``predict ... | head``), or the
        benchmark suite's own status for ``bench``.
    """
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.bench_args = rest
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader of our output went away (``predict ... | head``): stop quietly, as
        # command-line tools killed by SIGPIPE do, without a second error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except FileNotFoundError as exc:
        message = f"no such file: {exc.filename}"
    except IsADirectoryError as exc:
        message = f"{exc.filename} is a directory, not a file"
    except OSError as exc:
        # Without the "[Errno N]" prefix: the reason in words (a message that names its file,
        # as save's does, comes as the strerror).
        message = (f"cannot access {exc.filename}: {exc.strerror}" if exc.filename
                   else exc.strerror or str(exc))
    except (ValueError, TypeError, csv.Error) as exc:
        message = str(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 2
