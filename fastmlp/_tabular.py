"""Tables for the command line: read a CSV file, choose its columns, impute and encode them.

``read_table`` reads a CSV file with a header row into a ``Table`` of named columns, each either
numeric (float64, NaN where a value is missing) or text (an object array of stripped strings,
None where a value is missing). It uses pandas when pandas is installed and otherwise a NumPy
reader: ``numpy.loadtxt`` for an all-numeric file, the ``csv`` module with one vectorized
conversion per column for the rest. Both readers treat the same fields as missing (pandas'
default list: empty, ``NA``, ``nan``, ``NULL``, ...) and give the same columns.

``fit_preprocessing`` learns, from the training rows only, what ``transform`` applies to any
table: the median of each numeric column (fills its missing values) and its mean and standard
deviation (standardization); the most frequent value of each text column (fills its missing
values) and its categories (one-hot encoding, one input per category). A category not seen in
training is encoded as all zeros. The result is a plain JSON-able dict, stored in the model
file by the command line, so that a model carries everything it needs to predict.

This module is what the command line needs, not a general data-frame library: no dates, no
ordinal encodings, no feature engineering.
"""
import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["TableError", "Table", "read_table", "have_pandas", "select_features",
           "fit_preprocessing", "transform", "input_names", "encode_target", "split_rows",
           "FORMAT"]

FORMAT = "fastmlp-cli-preprocessing/2"
#: The fields read as missing values: pandas' default ``na_values``, given to both readers.
MISSING = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
           "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
#: A text column with more distinct values than this is refused (one input per category).
MAX_CATEGORIES = 100
#: A numeric target with at most this many distinct integers is taken as class labels.
MAX_AUTO_CLASSES = 20


class TableError(ValueError):
    """Something wrong with the data or with the columns asked for, said in one line."""


@dataclass
class Table:
    """The columns of a CSV file.

    Attributes
    ----------
    path : str
    names : list of str
        The column names in file order, without the index column.
    columns : dict of str -> ndarray
        Numeric columns as float64 arrays (NaN = missing), text columns as object arrays of
        str (None = missing).
    index : (str, ndarray) or None
        The index column's name and its values as text, when ``index_col`` was given.
    reader : str
        "pandas" or "numpy".
    mixed : dict of str -> (int, str)
        Text columns that also hold numbers: the first data row (from 1) that is not a number
        and its value (a likely typo in a numeric column).
    """
    path: str
    names: list
    columns: dict
    index: Optional[tuple]
    reader: str
    mixed: dict = field(default_factory=dict)

    @property
    def n_rows(self):
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def is_text(self, name):
        return self.columns[name].dtype == object

    def require(self, names, what, index=False):
        """Raise TableError naming the columns of ``names`` that the table lacks (the index
        column counts only with ``index``)."""
        missing = [n for n in names if n not in self.columns
                   and not (index and self.index is not None and n == self.index[0])]
        if missing:
            raise TableError(f"{self.path} has no column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(map(repr, missing))} ({what}); its columns are "
                             f"{', '.join(map(repr, self.names))}")

    def values(self, name):
        """A column, or the index column, by name."""
        if self.index is not None and name == self.index[0]:
            return self.index[1]
        return self.columns[name]


def have_pandas():
    """Whether pandas can be imported."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _read_header(path, sep):
    """The header's fields and how many lines precede the first data line."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                return [name.strip() for name in next(csv.reader([line], delimiter=sep))], number
    raise TableError(f"{path} is empty: a CSV file needs a header row of column names and "
                     f"data rows")


def _resolve_index(path, header, index_col):
    """The position of the index column in the header (None for none), naming it if unnamed."""
    if index_col is None:
        if header and header[0] == "" and len(header) > 1:
            raise TableError(f"{path}: the first column of the header has no name; if it is the "
                             f"row index that pandas' DataFrame.to_csv writes, pass --index-col 0")
        return None
    if index_col in header:
        position = header.index(index_col)
    elif index_col.isdigit() and int(index_col) < len(header):
        position = int(index_col)
    else:
        raise TableError(f"--index-col {index_col!r} is neither a column of {path} nor a "
                         f"position from 0 to {len(header) - 1}; its columns are "
                         f"{', '.join(map(repr, header))}")
    if header[position] == "":
        header[position] = "index"
    return position


def _check_header(path, header, sep):
    if len(header) == 1:
        other = next((c for c in ",;\t|" if c != sep and c in header[0]), None)
        if other is not None:
            raise TableError(f"{path} has a single column {header[0]!r} when its fields are "
                             f"separated by {sep!r}: if they are separated by {other!r}, pass "
                             f"--sep {other!r}")
    for i, name in enumerate(header):
        if not name:
            raise TableError(f"{path}: column {i + 1} of the header has no name")
    if all(_is_number(name) for name in header):
        raise TableError(f"the first line of {path} holds numbers, not column names: the CSV "
                         f"file needs a header row")
    seen = set()
    for name in header:
        if name in seen:
            raise TableError(f"{path}: the header names column {name!r} twice")
        seen.add(name)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path, sep=",", index_col=None, text_columns=(), reader="auto"):
    """Read a CSV file with a header row into a ``Table``.

    Parameters
    ----------
    path : str or os.PathLike
    sep : str, default ","
        The field delimiter, one character (``";"``, ``"\\t"``, ...).
    index_col : str or None
        A column name, or its position from 0, that holds row labels rather than data (pandas'
        ``DataFrame.to_csv`` writes an unnamed one first; it is then named "index").
    text_columns : iterable of str
        Columns read as text even where they hold numbers (category codes, ids). The index
        column is always read as text.
    reader : {"auto", "pandas", "numpy"}
        "auto" uses pandas when it is installed.

    Returns
    -------
    Table

    Raises
    ------
    FileNotFoundError, TableError
        The file is missing, not text, has no header or no data, a bad header (unnamed,
        duplicate or numeric names), a row with too many fields (with either reader) or too few
        (NumPy reader; pandas reads the absent fields as missing), or an infinite number.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(path, "w").write("x;colour\\n1.5;red\\n;blue\\n")
    >>> t = read_table(path, sep=";", reader="numpy")
    >>> t.columns["x"].tolist(), t.columns["colour"].tolist()
    ([1.5, nan], ['red', 'blue'])
    """
    path = Path(path)
    if len(sep) != 1:
        raise TableError(f"--sep must be one character; got {sep!r}")
    if reader == "auto":
        reader = "pandas" if have_pandas() else "numpy"
    elif reader == "pandas" and not have_pandas():
        raise TableError('--reader pandas needs pandas, the `cli` extra: pip install "fastmlp[cli]" '
                         '(from a source checkout: pip install ".[cli]"), or pip install pandas')
    try:
        header, skip = _read_header(path, sep)
        position = _resolve_index(path, header, index_col)
        _check_header(path, header, sep)
        text_columns = set(text_columns)
        if position is not None:        # labels kept as written: "007", ids beyond 2**53
            text_columns.add(header[position])
        if reader == "pandas":
            columns, mixed = _read_pandas(path, sep, header, skip, text_columns)
        else:
            columns, mixed = _read_numpy(path, sep, header, skip, text_columns)
    except UnicodeDecodeError as exc:
        raise TableError(f"{path} is not a readable CSV text file ({exc})") from None
    if not len(columns[header[0]]):
        raise TableError(f"{path} has a header but no data rows")
    index = None
    if position is not None:
        name = header[position]
        mixed.pop(name, None)
        index = (name, columns.pop(name))
        header = header[:position] + header[position + 1:]
    for name in header:
        values = columns[name]
        if values.dtype != object and np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0]) + 1
            raise TableError(f"column {name!r} of {path} holds an infinite value at data row "
                             f"{row}: give finite numbers, or leave the field empty if it is "
                             f"missing")
    return Table(str(path), header, columns, index, reader, mixed)


def _number_text(value):
    """A number read from a file, written back as text (integers without ``.0``)."""
    if math.isnan(value):
        return None
    return str(int(value)) if value == int(value) else repr(float(value))


def _read_pandas(path, sep, header, skip, text_columns):
    import pandas as pd
    try:
        frame = pd.read_csv(path, sep=sep, header=None, names=header, skiprows=skip,
                            encoding="utf-8-sig", keep_default_na=False, na_values=list(MISSING),
                            skipinitialspace=True, skip_blank_lines=True, low_memory=False,
                            dtype={name: str for name in text_columns if name in header})
    except pd.errors.ParserError as exc:
        raise TableError(f"{path}: {' '.join(str(exc).split())}") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({name: [] for name in header})
    columns, mixed = {}, {}
    for name in header:
        series = frame[name]
        kind = series.dtype.kind
        if name not in text_columns and kind in "fiu":
            columns[name] = series.to_numpy(dtype=np.float64)
            continue
        values = series.to_numpy(dtype=object, copy=True)
        present = ~series.isna().to_numpy()
        values[~present] = None
        values[present] = [str(v).strip() for v in values[present]]
        columns[name], first = _text_or_numbers(values, present, name in text_columns)
        if first is not None:
            mixed[name] = first
    return columns, mixed


def _read_numpy(path, sep, header, skip, text_columns):
    if not text_columns:
        try:
            with warnings.catch_warnings():     # a header without data is reported below
                warnings.simplefilter("ignore", UserWarning)
                data = np.loadtxt(path, delimiter=sep, skiprows=skip, dtype=np.float64,
                                  ndmin=2, comments=None, encoding="utf-8-sig", quotechar='"')
        except ValueError:
            data = None         # text, missing or malformed fields: the general reader says which
        if data is not None and data.shape[1] == len(header):
            return {name: np.ascontiguousarray(data[:, j]) for j, name in enumerate(header)}, {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for _ in range(skip):
            f.readline()
        try:
            rows = list(csv.reader(f, delimiter=sep))
        except csv.Error as exc:
            raise TableError(f"{path} is not a readable CSV text file ({exc})") from None
    width = len(header)
    if set(map(len, rows)) - {width}:
        rows = [row for row in rows if len(row) == width or any(f.strip() for f in row)]
        if set(map(len, rows)) - {width}:
            _raise_bad_row(path, sep, skip, width)
    columns, mixed = {}, {}
    for name, fields in zip(header, zip(*rows) if rows else [()] * len(header)):
        if name not in text_columns:
            try:        # the common case: every field a number (float() ignores blanks)
                columns[name] = np.fromiter(map(float, fields), np.float64, len(fields))
                continue
            except ValueError:
                pass
        values = np.array(list(map(str.strip, fields)), dtype=object)
        present = ~np.isin(values.astype(str), MISSING)
        values[~present] = None
        columns[name], first = _text_or_numbers(values, present, name in text_columns)
        if first is not None:
            mixed[name] = first
    return columns, mixed


def _raise_bad_row(path, sep, skip, width):
    """Raise TableError naming the first non-blank line whose field count is not ``width``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for _ in range(skip):
            f.readline()
        reader = csv.reader(f, delimiter=sep)
        for row in reader:
            if len(row) != width and any(field.strip() for field in row):
                raise TableError(f"{path}, line {reader.line_num + skip}: {len(row)} "
                                 f"field{'s' if len(row) != 1 else ''}, but the header has "
                                 f"{width} columns")


def _text_or_numbers(values, present, force_text):
    """A column of stripped strings (None where missing) as numbers when every present value is
    one, else as text; and, for text that also holds numbers, (row, value) of its first
    non-number."""
    if force_text:
        return values, None
    try:
        return _as_float(values, present), None
    except ValueError:
        pass
    # Numbers among text: test each distinct value once (a text column has few of them).
    distinct, inverse = np.unique(values[present].astype(str), return_inverse=True)
    numeric = np.array([_is_number(v) for v in distinct], dtype=bool)[inverse.ravel()]
    if numeric.any():
        first = int(np.flatnonzero(present)[np.flatnonzero(~numeric)[0]])
        return values, (first + 1, values[first])
    return values, None


def _as_float(values, present):
    out = np.full(len(values), np.nan)
    if present.any():
        out[present] = np.array(values[present].tolist(), dtype=str).astype(np.float64)
    return out


# -- choosing columns -------------------------------------------------------------------------

def _names(options):
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: repeated or comma-separated column names."""
    return [n.strip() for option in options or [] for n in option.split(",") if n.strip()]


def select_features(table, target, features=None, drop=None):
    """The feature columns: ``features`` if given, else every column but the target; minus
    ``drop``. Both are lists of options, each a name or comma-separated names.

    Raises TableError for a name that is not a column, or for the target among the features.
    """
    index = table.index[0] if table.index is not None else None
    if target == index:
        raise TableError(f"--target {target!r} is the index column (--index-col), which holds "
                         f"row labels, not data")
    table.require([target], "the --target")
    chosen, dropped = _names(features), _names(drop)
    table.require(chosen, "given to --features")
    table.require(dropped, "given to --drop")
    if target in chosen:
        raise TableError(f"--features names the target {target!r}: a column cannot be both")
    names = chosen or [n for n in table.names if n != target]
    names = [n for n in names if n not in dropped]
    if not names:
        raise TableError(f"{table.path} leaves no feature column: every column but the target "
                         f"{target!r}, the index and the --drop columns is a feature")
    return names


# -- the target -------------------------------------------------------------------------------

def encode_target(table, target, task):
    """Decide the task and encode the target column.

    Parameters
    ----------
    table : Table
    target : str
    task : {"auto", "classification", "regression"}
        "auto": classification when the target holds text or at most ``MAX_AUTO_CLASSES``
        distinct integers, else regression.

    Returns
    -------
    task : str
    y : ndarray
        Class indices (int64) or values (float64); -1 or NaN where the target is missing.
    classes : list or None
        The class labels (ints or strings, sorted) for classification.
    present : ndarray of bool
        Rows whose target is not missing.
    """
    values = table.columns[target]
    if values.dtype == object:
        present = np.array([v is not None for v in values], dtype=bool)
        numbers = None
        if target not in table.mixed:
            try:
                numbers = _as_float(values, present)
            except ValueError:
                numbers = None
    else:
        present, numbers = ~np.isnan(values), values
    if not present.any():
        raise TableError(f"the target column {target!r} of {table.path} has no values")
    known = numbers[present] if numbers is not None else None
    if task == "auto":
        few_integers = (known is not None and np.all(known == np.round(known))
                        and len(np.unique(known)) <= MAX_AUTO_CLASSES)
        task = "classification" if known is None or few_integers else "regression"
    if task == "regression":
        if numbers is None:
            row = next(i for i, v in enumerate(values) if v is not None and not _is_number(v))
            raise TableError(f"the target column {target!r} of {table.path} must hold numbers "
                             f"for a regression, but data row {row + 1} holds {values[row]!r}")
        return task, numbers, None, present
    if known is not None and np.all(known == np.round(known)):
        labels = known.astype(np.int64)
    elif known is not None:
        labels = known
    else:
        labels = values[present].astype(str)
    classes, index = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise TableError(f"the target column {target!r} of {table.path} holds a single class "
                         f"({classes[0].item()!r}); classification needs at least two")
    y = np.full(len(values), -1, dtype=np.int64)
    y[present] = index.ravel()
    return task, y, [c.item() for c in classes], present


def split_rows(y, classification, fraction, seed):
    """Hold out ``fraction`` of the rows, stratified by class for classification.

    Each class keeps at least one training row; the split is drawn from
    ``numpy.random.default_rng(seed)``. Returns the sorted training and held-out row indices.

    Examples
    --------
    >>> train, held = split_rows(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), True, 0.5, seed=0)
    >>> len(train), len(held)
    (5, 5)
    """
    n = len(y)
    rng = np.random.default_rng(seed)
    if fraction == 0:
        return np.arange(n), np.arange(0)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if classification else [np.arange(n)]
    counts = _held_out_counts([len(g) for g in groups], fraction)
    held = np.concatenate([rng.permutation(g)[:k] for g, k in zip(groups, counts)]).astype(np.intp)
    if held.size == 0:
        raise TableError(f"--validation-fraction {fraction:g} of {n} rows holds out no row: use "
                         f"more data, a larger fraction, or --validation-fraction 0")
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _held_out_counts(sizes, fraction):
    """Rows to hold out per group: ``round(fraction * sum(sizes))`` in all, shared by largest remainder.

    Each group keeps at least one row. Rounding each group on its own held out far more than
    asked when the groups are small (10 classes of 3 rows at 0.2: 10 rows, a third, not 6).

    >>> _held_out_counts([3] * 10, 0.2)
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    """
    quotas = [fraction * m for m in sizes]
    counts = [min(m - 1, int(q)) for m, q in zip(sizes, quotas)]
    left = min(round(fraction * sum(sizes)), sum(m - 1 for m in sizes)) - sum(counts)
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - int(quotas[i])), i))
    while left > 0:
        took = False
        for i in order:
            if left > 0 and counts[i] < sizes[i] - 1:
                counts[i] += 1
                left -= 1
                took = True
        if not took:
            break
    return counts


# -- features ---------------------------------------------------------------------------------

def fit_preprocessing(table, features, rows, strict=False):
    """Learn each feature column's imputation and encoding from the given rows.

    Parameters
    ----------
    table : Table
    features : list of str
    rows : ndarray of int
        The training rows (the held-out rows must not inform the preprocessing).
    strict : bool, default False
        Refuse text columns and missing values instead of encoding and imputing them.

    Returns
    -------
    columns : list of dict
        Per feature, JSON-able: ``{"name", "kind": "numeric", "fill", "mean", "std"}`` or
        ``{"name", "kind": "text", "fill", "categories"}``.

    Raises
    ------
    TableError
        Under ``strict``, for a text column or a missing value; for a column that mixes numbers
        and text (a likely typo), has no value in the training rows, or holds more than
        ``MAX_CATEGORIES`` categories.
    """
    specs = []
    for name in features:
        values = table.columns[name]
        if name in table.mixed:
            row, value = table.mixed[name]
            raise TableError(f"column {name!r} of {table.path} mixes numbers and text (data row "
                             f"{row} holds {value!r}): fix the value, leave the field empty if it "
                             f"is missing, pass --categorical {name} to encode the column as "
                             f"categories, or --drop it")
        text = values.dtype == object
        missing = (np.array([v is None for v in values], dtype=bool) if text
                   else np.isnan(values))
        if strict and text:
            row = int(np.flatnonzero(~missing)[0]) + 1 if (~missing).any() else 1
            raise TableError(f"column {name!r} of {table.path} holds text ({values[row - 1]!r} "
                             f"at data row {row}) and --strict refuses text features: --drop "
                             f"the column, or leave out --strict to one-hot encode it")
        if strict and missing.any():
            row = int(np.flatnonzero(missing)[0]) + 1
            raise TableError(f"column {name!r} of {table.path} has {int(missing.sum())} missing "
                             f"value{'s' if missing.sum() > 1 else ''} (the first at data row "
                             f"{row}) and --strict refuses them: fill them in, --drop the "
                             f"column, or leave out --strict to impute them")
        known = values[rows][~missing[rows]]
        if known.size == 0:
            raise TableError(f"column {name!r} of {table.path} has no value in the training "
                             f"rows: --drop it")
        if text:
            categories, counts = np.unique(known.astype(str), return_counts=True)
            if len(categories) > MAX_CATEGORIES:
                raise TableError(f"column {name!r} of {table.path} holds text with "
                                 f"{len(categories)} distinct values, too many to one-hot encode "
                                 f"(at most {MAX_CATEGORIES}): --drop it")
            specs.append({"name": name, "kind": "text",
                          "fill": categories[np.argmax(counts)].item(),
                          "categories": categories.tolist()})
        else:
            fill = float(np.median(known))
            filled = np.where(missing[rows], fill, values[rows])
            std = float(filled.std())
            specs.append({"name": name, "kind": "numeric", "fill": fill,
                          "mean": float(filled.mean()), "std": std if std > 0 else 1.0})
    return specs


def input_names(columns):
    """The names of the network's inputs: a numeric column's name, ``name=category`` per
    category of a text column."""
    return [n for c in columns for n in ([c["name"]] if c["kind"] == "numeric"
                                         else [f"{c['name']}={k}" for k in c["categories"]])]


def transform(table, columns, strict=False):
    """Apply the preprocessing ``columns`` (from ``fit_preprocessing``) to a table.

    Returns
    -------
    X : ndarray of float64, shape (n_rows, n_inputs)
    report : list of (str, int, int)
        Per column with anything to report: its name, the missing values filled, the values of
        categories unseen in training (encoded as all zeros).

    Raises
    ------
    TableError
        For a column the table lacks, text in a numeric column, or (``strict``) a missing value
        or an unseen category.
    """
    table.require([c["name"] for c in columns], "the model was trained on them")
    n = table.n_rows
    blocks, report = [], []
    for c in columns:
        name, values = c["name"], table.columns[c["name"]]
        if c["kind"] == "numeric":
            if values.dtype == object:
                present = np.array([v is not None for v in values], dtype=bool)
                try:
                    values = _as_float(values, present)
                except ValueError:
                    row = next(i for i, v in enumerate(values)
                               if v is not None and not _is_number(v))
                    raise TableError(f"column {name!r} of {table.path} must hold numbers (the "
                                     f"model was trained on numbers), but data row {row + 1} "
                                     f"holds {values[row]!r}") from None
            missing = np.isnan(values)
            unseen = 0
            column = (np.where(missing, c["fill"], values) - c["mean"]) / c["std"]
            blocks.append(column[:, None])
        else:
            if values.dtype != object:
                values = np.array([_number_text(v) for v in values], dtype=object)
            missing = np.array([v is None for v in values], dtype=bool)
            text = np.where(missing, c["fill"], values).astype(str)
            categories = np.array(c["categories"], dtype=str)
            position = np.searchsorted(categories, text)
            position[position == len(categories)] = 0
            known = categories[position] == text
            unseen = int((~known).sum())
            onehot = np.zeros((n, len(categories)))
            onehot[np.flatnonzero(known), position[known]] = 1.0
            blocks.append(onehot)
        if strict and missing.any():
            raise TableError(f"column {name!r} of {table.path} has {int(missing.sum())} missing "
                             f"value(s) (the first at data row {int(np.flatnonzero(missing)[0]) + 1}) "
                             f"and --strict refuses them")
        if strict and unseen:
            raise TableError(f"column {name!r} of {table.path} holds {unseen} value(s) not seen "
                             f"in training and --strict refuses them")
        if missing.any() or unseen:
            report.append((name, int(missing.sum()), unseen))
    return np.hstack(blocks), report
