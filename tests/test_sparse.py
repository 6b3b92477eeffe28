"""Sparse input (``scipy.sparse``): the kernels in ``_sparse.pyx`` and ``MLP`` on CSR data.

A sparse X must give the dense computation's results: the same weights after training (float64
within 1e-10) for every optimizer, penalties, dropout, batch normalization of the first hidden
layer, sample weights and a ragged last batch; the same outputs, objective and gradient. And it
must never be densified: a fit on a matrix whose dense form would take gigabytes stays within
megabytes.
"""
import tracemalloc

import numpy as np
import pytest
import scipy.sparse

from fastmlp import MLP
from fastmlp._engine import EpochRunner
from fastmlp._kernels import _dense, _sparse, _train
from fastmlp.reference import ReferenceMLP

N, N_IN, BATCH, EPOCHS = 53, 40, 8, 6          # 53 = 6 * 8 + 5: every epoch ends short
ATOL = {np.float64: 1e-10, np.float32: 1e-4}


def random_csr(n=N, n_in=N_IN, density=0.12, seed=0, dtype=np.float64):
    """A CSR matrix with empty rows (5 and 11) and columns (0 and 7), values in [-2, 2]."""
    rng = np.random.default_rng(seed)
    dense = rng.uniform(-2, 2, size=(n, n_in)) * (rng.random((n, n_in)) < density)
    dense[[5, 11]] = 0
    dense[:, [0, 7]] = 0
    return scipy.sparse.csr_matrix(dense.astype(dtype))


def labels(n=N, k=3, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    return y


def train_pair(X, y, sizes=(N_IN, 6, 3), sample_weight=None, **kwargs):
    """Two twin models, one trained on sparse X and one on its dense copy."""
    sparse_model = MLP(list(sizes), lr=0.05, seed=3, **kwargs)
    dense_model = MLP(list(sizes), lr=0.05, seed=3, **kwargs)
    initial = sparse_model.params.copy()
    for model, data in ((sparse_model, X), (dense_model, X.toarray())):
        model.train(data, y, epochs=EPOCHS, batch_size=BATCH, verbose=False, shuffle_seed=7,
                    sample_weight=sample_weight)
    assert np.abs(sparse_model.params - initial).max() > 1e-3     # training happened
    return sparse_model, dense_model


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

def with_index_dtype(X, dtype):
    X = X.copy()
    X.indices, X.indptr = X.indices.astype(dtype), X.indptr.astype(dtype)
    return X


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", "elu"])
def test_sparse_forward_equals_dense(activation, dtype, index_dtype):
    X = with_index_dtype(random_csr(n=13, n_in=30, dtype=dtype), index_dtype)
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(30, 9)).astype(dtype), rng.normal(size=9).astype(dtype)
    act = _dense.ACTIVATION_IDS[activation]
    Z, D = np.empty((13, 9), dtype), np.empty((13, 9), dtype)
    Z_dense, D_dense = np.empty((13, 9), dtype), np.empty((13, 9), dtype)
    _sparse.sparse_forward_py(X, W, b, act, Z, D)
    _dense.dense_forward_py(X.toarray(), W, b, act, False, Z_dense, D_dense)
    rtol = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(Z, Z_dense, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(D, D_dense, rtol=rtol, atol=rtol)
    assert np.any(X.getnnz(axis=1) == 0)           # a row with no values gets f(b)


@pytest.mark.parametrize("alpha, beta_w, beta_b", [(1, 0, 0), (-0.1, 1, 1), (-0.1, 0.99, 1)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_backward_equals_dense(alpha, beta_w, beta_b, index_dtype):
    """Gradient (betas 0) and the fused SGD step (beta_w 1, or 1 - lr * l2): rows of gW_out
    that the batch does not touch are only scaled by beta_w."""
    X = with_index_dtype(random_csr(n=13, n_in=30), index_dtype)
    rng = np.random.default_rng(1)
    delta = rng.normal(size=(13, 5))
    gW, gb = rng.normal(size=(30, 5)), rng.normal(size=5)
    expected_W = alpha * X.toarray().T @ delta + beta_w * gW
    expected_b = alpha * delta.sum(axis=0) + beta_b * gb
    _sparse.sparse_backward_py(X, delta, gW, gb, alpha, beta_w, beta_b)
    np.testing.assert_allclose(gW, expected_W, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gb, expected_b, rtol=1e-13, atol=1e-14)
    untouched = X.getnnz(axis=0) == 0
    assert untouched.any()


def test_kernels_sum_duplicates_and_take_unsorted_indices():
    """The kernels need no canonical form: duplicates add up, any order of indices works."""
    data, indices, indptr = np.array([2.0, 1.0, 3.0, -1.0]), np.array([4, 1, 4, 0]), np.array([0, 3, 4])
    X = scipy.sparse.csr_matrix((data, indices, indptr), shape=(2, 6))
    assert not X.has_canonical_format
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(6, 3)), np.zeros(3)
    Z = np.empty((2, 3))
    _sparse.sparse_forward_py(X, W, b, _dense.ACTIVATION_IDS["identity"], Z)
    dense = np.zeros((2, 6))
    np.add.at(dense, (np.repeat([0, 1], [3, 1]), indices), data)
    np.testing.assert_allclose(Z, dense @ W, rtol=1e-14)


def test_csr_checks_types_and_structure():
    X = random_csr()
    assert _sparse.CSR(X).nnz == X.nnz and _sparse.CSR(X).shape == X.shape
    with pytest.raises(TypeError, match="tocsr"):
        _sparse.CSR(X.tocsc())
    with pytest.raises(TypeError, match="tocsr"):
        _sparse.CSR(X.toarray())
    with pytest.raises(TypeError, match="float32 or float64"):
        _sparse.CSR(X.astype(np.int64))
    bad = X.copy()
    bad.indices = bad.indices.copy()
    bad.indices[3] = N_IN                   # out of range: would write past W
    with pytest.raises(ValueError, match="every index"):
        _sparse.CSR(bad)
    bad = X.copy()
    bad.indptr = bad.indptr.copy()
    bad.indptr[5], bad.indptr[6] = bad.indptr[6] + 1, bad.indptr[5]
    with pytest.raises(ValueError, match="indptr"):
        _sparse.CSR(bad)
    mixed = X.copy()
    mixed.indices = mixed.indices.astype(np.int64)
    with pytest.raises(TypeError, match="both be int32 or both int64"):
        _sparse.CSR(mixed)


def test_sparse_network_refuses_dense_input():
    model = MLP([N_IN, 4, 3], seed=0)
    net = model._network(16, sparse_input=True)
    dense_net = model._network(16)
    assert net.workspace_size == dense_net.workspace_size - 16 * N_IN
    out = np.empty((5, 3))
    with pytest.raises(ValueError, match="sparse_input"):
        _train.predict(net, model.params, model.bn_state, np.zeros((5, N_IN)),
                       np.empty(net.workspace_size), out)
    with pytest.raises(TypeError, match="float32"):
        _train.predict(net, model.params, model.bn_state,
                       _sparse.CSR(random_csr(dtype=np.float32)[:5]), np.empty(net.workspace_size),
                       out)


# ---------------------------------------------------------------------------------------------
# Training: sparse equals dense
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                       "adam", "adamw"])
def test_training_equals_dense_every_optimizer(optimizer):
    X, y = random_csr(), labels()
    a, b = train_pair(X, y, optimizer=optimizer)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kwargs", [
    dict(l2=0.05),                                      # fused SGD scales every row of W1
    dict(l1=0.01, l2=0.01, optimizer="momentum"),
    dict(clip_norm=0.3),
    dict(dropout=0.3),
    dict(batch_norm=True),                              # on the first hidden layer
    dict(batch_norm=[True, False], dropout=[0.2, 0.1], optimizer="adam"),
    dict(hidden_activation="tanh", loss="categorical_crossentropy", label_smoothing=0.1),
], ids=str)
def test_training_equals_dense_toolkit(kwargs):
    X, y = random_csr(), labels()
    sizes = (N_IN, 6, 4, 3) if isinstance(kwargs.get("batch_norm"), list) else (N_IN, 6, 3)
    a, b = train_pair(X, y, sizes=sizes, **kwargs)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.bn_state, b.bn_state, rtol=0, atol=1e-10)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_training_equals_dense_sample_weight(task):
    X = random_csr(seed=4)
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.1, 3, size=N)
    if task == "binary":
        a, b = train_pair(X, labels(k=2), sizes=(N_IN, 5, 1), sample_weight=weights)
    else:
        a, b = train_pair(X, rng.normal(size=N), sizes=(N_IN, 5, 1), loss="squared_error",
                          sample_weight=weights, optimizer="adam")
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-10)


def test_training_equals_reference():
    """Against the NumPy oracle (which densifies X), from the same weights and batch orders."""
    X, y = random_csr(seed=6), labels()
    model = MLP([N_IN, 6, 3], lr=0.05, seed=3, optimizer="adam", batch_norm=True, l2=0.01)
    ref = ReferenceMLP(model.sizes, lr=0.05, l2=0.01, loss="categorical_crossentropy",
                       optimizer="adam", batch_norm=True, W=[W.copy() for W in model.W],
                       b=[b.copy() for b in model.b])
    model.train(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=False, shuffle_seed=7)
    rng = np.random.default_rng(7)
    ref.train(X, np.eye(3)[y], epochs=EPOCHS, batch_size=BATCH,
              orders=[rng.permutation(N) for _ in range(EPOCHS)])
    np.testing.assert_allclose(model.params, ref.flat(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.forward(X), ref.forward(X), rtol=1e-12, atol=1e-14)


def test_float32_sparse_training():
    X, y = random_csr(dtype=np.float32), labels()
    a, b = train_pair(X, y, optimizer="adam", dtype=np.float32)
    assert a.params.dtype == np.float32
    np.testing.assert_allclose(a.params, b.params, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("convert", [
    scipy.sparse.csr_matrix, scipy.sparse.csr_array, scipy.sparse.csc_matrix,
    scipy.sparse.csc_array, scipy.sparse.coo_matrix, scipy.sparse.coo_array,
    scipy.sparse.lil_matrix, lambda X: with_index_dtype(X, np.int64),
    lambda X: X.astype(np.float32), lambda X: (X != 0).astype(np.int64),
], ids=["csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix", "coo_array",
        "lil_matrix", "int64-indices", "float32-values", "int-values"])
def test_every_sparse_format_and_type(convert):
    X, y = random_csr(), labels()
    Xs = convert(X)
    a = MLP([N_IN, 6, 3], lr=0.05, seed=3).fit(Xs, y, epochs=3, batch_size=BATCH, verbose=False,
                                                 shuffle_seed=7)
    b = MLP([N_IN, 6, 3], lr=0.05, seed=3).fit(Xs.toarray(), y, epochs=3, batch_size=BATCH,
                                                 verbose=False, shuffle_seed=7)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.predict_proba(Xs), b.predict_proba(Xs.toarray()), rtol=1e-12,
                               atol=1e-14)


def test_rows_without_values_and_an_empty_matrix():
    """A matrix with no stored value at all trains as its dense zeros do (only biases move)."""
    X, y = scipy.sparse.csr_matrix((N, N_IN)), labels()
    a, b = train_pair(X, y)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(a.W[0], MLP([N_IN, 6, 3], lr=0.05, seed=3).W[0])


def test_every_method_takes_sparse_input():
    X, y = random_csr(seed=8), labels()
    dense = X.toarray()
    a, b = train_pair(X, y, batch_norm=True)
    np.testing.assert_allclose(a.forward(X), b.forward(dense), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(dense), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(a.predict(X), b.predict(dense))
    assert a.score(X, y) == b.score(dense, y)
    assert a.loss(X, y) == pytest.approx(b.loss(dense, y), rel=1e-13)
    loss_s, grad_s = a.loss_and_gradient(X, y)
    loss_d, grad_d = b.loss_and_gradient(dense, y)
    assert loss_s == pytest.approx(loss_d, rel=1e-13)
    np.testing.assert_allclose(grad_s, grad_d, rtol=1e-12, atol=1e-15)
    # Predicting more rows than one kernel chunk, and a single row.
    big = scipy.sparse.vstack([X] * 90, format="csr")
    np.testing.assert_allclose(a.forward(big), b.forward(big.toarray()), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.forward(X[3]), b.forward(dense[3:4]), rtol=1e-12, atol=1e-14)


def test_validation_data_and_early_stopping_take_sparse_input():
    X, y = random_csr(n=120, seed=9), labels(n=120)
    runs = []
    for data in (X, X.toarray()):
        model = MLP([N_IN, 6, 3], lr=0.05, seed=3, early_stopping=True, patience=3)
        model.train(data, y, epochs=8, batch_size=BATCH, verbose=False, shuffle_seed=1,
                    validation_data=None)
        runs.append(model)
    np.testing.assert_allclose(runs[0].params, runs[1].params, rtol=0, atol=1e-10)
    assert runs[0].history["val_loss"] == pytest.approx(runs[1].history["val_loss"], rel=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_engine_takes_csr_and_orders_over_a_subset(optimizer):
    """EpochRunner on a checked scipy CSR X, epochs visiting a subset of its rows by index (as
    the estimators' training split), equals the same on the dense array; the sparse runner's
    workspace has no dense batch input."""
    X, y = random_csr(seed=10), labels()
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(N, size=37, replace=False))
    orders = np.stack([rng.permutation(subset) for _ in range(4)])
    rates = np.full(4, 0.05)
    runs = []
    for data in (X, X.toarray()):
        model = MLP([N_IN, 6, 3], lr=0.05, seed=1, optimizer=optimizer)
        checked = model._check_X(data)
        Y, _, _ = model._encode_targets(y, N)
        losses = np.empty(4)
        with EpochRunner(model, checked, Y, None, BATCH, 0) as runner:
            assert runner.run(orders, rates, losses) == 4
            runs.append((model, losses, runner))
    (sparse_model, sparse_losses, sparse_runner), (dense_model, dense_losses, dense_runner) = runs
    assert isinstance(sparse_runner.X, _sparse.CSR) and sparse_runner.X.shape == (N, N_IN)
    assert sparse_runner.net.sparse_input and not dense_runner.net.sparse_input
    assert sparse_runner.workspace.size == dense_runner.workspace.size - BATCH * N_IN
    np.testing.assert_allclose(sparse_model.params, dense_model.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sparse_losses, dense_losses, rtol=1e-13)


def test_stack_takes_sparse_input():
    """MLPStack on a CSR X trains each model as on the dense array (the stack's kernel runs the
    sparse first layer too)."""
    from fastmlp.stack import MLPStack

    X, y = random_csr(seed=11), labels()
    configs = [dict(optimizer="sgd"), dict(optimizer="adam", dropout=0.2), dict(l2=0.01)]
    stacks = []
    for data in (X, X.toarray()):
        stack = MLPStack([MLP([N_IN, 6, 3], lr=0.05, seed=i, **c) for i, c in enumerate(configs)])
        stack.train(data, y, epochs=4, batch_size=BATCH, shuffle_seed=2)
        stacks.append(stack)
    for a, b in zip(stacks[0]._models, stacks[1]._models):
        np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(stacks[0].predict_proba(X), stacks[1].predict_proba(X.toarray()),
                               rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Checks at the boundary, copies and memory
# ---------------------------------------------------------------------------------------------

def test_canonical_csr_of_the_model_dtype_is_not_copied():
    X = random_csr()
    model = MLP([N_IN, 4, 3], seed=0)
    assert model._check_X(X) is X
    assert model._check_X(scipy.sparse.csr_array(X)).data is not None


def test_duplicates_are_summed_on_a_copy():
    data, indices, indptr = np.array([1.0, 2.0, 5.0]), np.array([3, 3, 0]), np.array([0, 2, 3])
    X = scipy.sparse.csr_matrix((data, indices, indptr), shape=(2, 5))
    before = (X.data.copy(), X.indices.copy())
    checked = MLP([5, 2, 1], seed=0)._check_X(X)
    assert checked is not X and checked.has_canonical_format
    np.testing.assert_array_equal(checked.toarray(), [[0, 0, 0, 3, 0], [5, 0, 0, 0, 0]])
    np.testing.assert_array_equal(X.data, before[0])           # the caller's matrix unchanged
    np.testing.assert_array_equal(X.indices, before[1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    X = random_csr()
    X.data[X.indptr[7]] = bad                       # the first value of row 7
    model = MLP([N_IN, 4, 3], seed=0)
    before = model.params.copy()
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 7\)"):
        model.train(X, labels(), epochs=1, verbose=False)
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.forward(X)
    np.testing.assert_array_equal(model.params, before)


def test_float32_overflow_is_refused():
    X = random_csr()
    X.data[0] = 1e300
    with pytest.raises(ValueError, match="after conversion to float32"):
        MLP([N_IN, 4, 3], seed=0, dtype=np.float32).forward(X)


def test_wrong_shape_and_type_are_refused():
    model = MLP([N_IN, 4, 3], seed=0)
    with pytest.raises(ValueError, match=f"X has {N_IN + 1} features"):
        model.forward(random_csr(n_in=N_IN + 1))
    with pytest.raises(ValueError, match="0 samples"):
        model.forward(scipy.sparse.csr_matrix((0, N_IN)))
    with pytest.raises(TypeError, match="real numbers"):
        model.forward(random_csr().astype(np.complex128))
    with pytest.raises(ValueError, match="2-D"):
        model.forward(scipy.sparse.coo_array(np.ones(N_IN)))


def test_sparse_training_never_densifies():
    """A fit on 2,000 x 200,000 with 5 values per row: dense X would take 3.2 GB and one dense
    batch input 160 MB; the whole fit stays within what the weights need."""
    n, n_in = 2000, 200_000
    rng = np.random.default_rng(0)
    columns = rng.integers(0, n_in, size=(n, 5))
    columns.sort(axis=1)
    X = scipy.sparse.csr_matrix((np.ones(5 * n), columns.ravel(), np.arange(0, 5 * n + 1, 5)),
                                shape=(n, n_in))
    X.sum_duplicates()
    y = (columns[:, 0] % 2).astype(int)
    model = MLP([n_in, 4, 1], seed=0)
    weights = model.params.nbytes                   # 6.4 MB
    tracemalloc.start()
    try:
        model.train(X, y, epochs=2, batch_size=100, verbose=False)
        model.predict(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The engine's workspace holds a gradient and a backup of the parameters; nothing of size
    # batch * n_in or n * n_in.
    assert peak < 4 * weights, f"peak {peak / 2**20:.1f} MiB for {weights / 2**20:.1f} MiB of weights"
