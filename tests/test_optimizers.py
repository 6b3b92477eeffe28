"""Update rules (kernel twins and NumPy reference), clipping, and the optimizer config classes."""
import numpy as np
import pytest

from fastmlp import reference
from fastmlp._kernels import _optim
from fastmlp.optimizers import (OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov,
                                RMSProp, get_optimizer)

NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
RTOL = {np.float32: 1e-6, np.float64: 1e-13}

# ---------------------------------------------------------------------------------------------
# Two steps worked by hand from the textbook formulas.
# theta0 = [1, -2], g1 = [0.5, -1], g2 = [0.25, 0.5], lr = 0.1, t = 1 then 2.
# eps is large (0.25) so that where it enters the formula matters; the betas differ so that
# swapping them shows. s5 = sqrt(5), s2 = sqrt(2).
THETA0, G1, G2, LR = [1.0, -2.0], [0.5, -1.0], [0.25, 0.5], 0.1
HAND = {  # name: (hyper, theta after step 1, theta after step 2)
    # theta1 = [1 - 0.1*0.5, -2 + 0.1*1] = [0.95, -1.9]
    # theta2 = [0.95 - 0.1*0.25, -1.9 - 0.1*0.5] = [0.925, -1.95]
    "sgd": ([], [0.95, -1.9], [0.925, -1.95]),
    # mu = 0.9.  v1 = -0.1*g1 = [-0.05, 0.1];  theta1 = theta0 + v1 = [0.95, -1.9]
    # v2 = 0.9*v1 - 0.1*g2 = [-0.045 - 0.025, 0.09 - 0.05] = [-0.07, 0.04]
    # theta2 = [0.95 - 0.07, -1.9 + 0.04] = [0.88, -1.86]
    "momentum": ([0.9], [0.95, -1.9], [0.88, -1.86]),
    # mu = 0.9.  v1 = [-0.05, 0.1];  theta1 = theta0 + 0.9*v1 - 0.1*g1
    #   = [1 - 0.045 - 0.05, -2 + 0.09 + 0.1] = [0.905, -1.81]
    # v2 = [-0.07, 0.04];  theta2 = theta1 + 0.9*v2 - 0.1*g2
    #   = [0.905 - 0.063 - 0.025, -1.81 + 0.036 - 0.05] = [0.817, -1.824]
    "nesterov": ([0.9], [0.905, -1.81], [0.817, -1.824]),
    # eps = 0.25.  G1 = [0.25, 1], sqrt = [0.5, 1]
    # theta1 = [1 - 0.1*0.5/0.75, -2 + 0.1*1/1.25] = [14/15, -1.92]
    # G2 = [0.3125, 1.25], sqrt = [s5/4, s5/2]
    # theta2[0] = 14/15 - 0.025/(s5/4 + 1/4) = 14/15 - 0.025*(s5 - 1) = 0.90243163389583859
    # theta2[1] = -1.92 - 0.05/(s5/2 + 1/4) = -1.92 - 0.2*(2*s5 - 1)/19 = -1.9565487995263114
    "adagrad": ([0.25], [14 / 15, -1.92], [0.90243163389583859, -1.9565487995263114]),
    # rho = 0.75, eps = 0.25.  s1 = 0.25*g1**2 = [0.0625, 0.25], sqrt = [0.25, 0.5]
    # theta1 = [1 - 0.1*0.5/0.5, -2 + 0.1*1/0.75] = [0.9, -28/15]
    # s2 = 0.75*s1 + 0.25*g2**2 = 0.75*[0.0625, 0.25] + 0.25*[0.0625, 0.25] = [0.0625, 0.25]
    # theta2 = [0.9 - 0.1*0.25/0.5, -28/15 - 0.1*0.5/0.75] = [0.85, -29/15]
    "rmsprop": ([0.75, 0.25], [0.9, -28 / 15], [0.85, -29 / 15]),
    # beta1 = 0.75, beta2 = 0.5, eps = 0.25.
    # t=1: m1 = 0.25*g1 = [0.125, -0.25], v1 = 0.5*g1**2 = [0.125, 0.5]
    #      m_hat = m1/0.25 = [0.5, -1], v_hat = v1/0.5 = [0.25, 1], sqrt = [0.5, 1]
    #      theta1 = [1 - 0.1*0.5/0.75, -2 + 0.1*1/1.25] = [14/15, -1.92]
    # t=2: m2 = 0.75*m1 + 0.25*g2 = [0.15625, -0.0625], m_hat = m2/0.4375 = [5/14, -1/7]
    #      v2 = 0.5*v1 + 0.5*g2**2 = [0.09375, 0.375], v_hat = v2/0.75 = [1/8, 1/2]
    #      theta2[0] = 14/15 - 0.1*(5/14)/(s2/4 + 1/4) = 14/15 - (s2 - 1)/7 = 0.87415996728003404
    #      theta2[1] = -1.92 + 0.1*(1/7)/(s2/2 + 1/4) = -1.92 + 2*(2*s2 - 1)/245
    #                = -1.9050740642877862
    "adam": ([0.75, 0.5, 0.25], [14 / 15, -1.92], [0.87415996728003404, -1.9050740642877862]),
    # Adam's hyper plus weight_decay = 0.5: theta *= 1 - 0.1*0.5 = 0.95 before each Adam step,
    # whose increments do not depend on theta, so they are Adam's above.
    # theta1 = 0.95*[1, -2] + [-1/15, 0.08] = [0.95 - 1/15, -1.82] = [0.88333333333333333, -1.82]
    # theta2 = 0.95*theta1 + [-(s2 - 1)/7, 2*(2*s2 - 1)/245]
    #        = [0.83916666666666667 - 0.059173366053299307, -1.729 + 0.014925935712213798]
    #        = [0.77999330061336737, -1.7140740642877862]
    "adamw": ([0.75, 0.5, 0.25, 0.5], [0.95 - 1 / 15, -1.82],
              [0.77999330061336737, -1.7140740642877862]),
}


def kernel_step(name, hyper, theta, g, state, lr, t):
    """One update through the kernel twins, with AdamW's decay done by the caller as documented."""
    if name == "adamw":
        _optim.decay_weights_py(theta, 1 - lr * hyper[3])
    _optim.optimizer_step_py(_optim.OPTIMIZER_IDS[name], hyper, theta, g, state, lr, t)


def run_two_steps(step, name, dtype):
    hyper, _, _ = HAND[name]
    hyper = np.array(hyper, dtype=np.float64)
    theta = np.array(THETA0, dtype=dtype)
    state = np.zeros(reference.OPTIMIZER_STATE_SIZES[name] * theta.size, dtype=dtype)
    thetas = []
    for t, g in enumerate([G1, G2], start=1):
        step(name, hyper, theta, np.array(g, dtype=dtype), state, LR, t)
        thetas.append(theta.copy())
    return thetas


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_kernel_matches_hand_computed_steps(name, dtype):
    theta1, theta2 = run_two_steps(kernel_step, name, dtype)
    assert theta1.dtype == dtype
    np.testing.assert_allclose(theta1, HAND[name][1], rtol=RTOL[dtype])
    np.testing.assert_allclose(theta2, HAND[name][2], rtol=RTOL[dtype])


@pytest.mark.parametrize("step", [kernel_step, reference.optimizer_step])
@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_momentum_one_never_damps_the_velocity(name, step):
    """scikit-learn takes momentum in [0, 1]. mu = 1: v1 = -0.1*g1 = [-0.05, 0.1], v2 = v1 -
    0.1*g2 = [-0.075, 0.05]; momentum: theta1 = [0.95, -1.9], theta2 = [0.875, -1.85];
    nesterov: theta1 = theta0 + v1 - 0.1*g1 = [0.9, -1.8], theta2 = theta1 + v2 - 0.1*g2 =
    [0.8, -1.8]."""
    theta = np.array(THETA0)
    state = np.zeros(theta.size)
    thetas = []
    for t, g in enumerate([G1, G2], start=1):
        step(name, np.array([1.0]), theta, np.array(g), state, LR, t)
        thetas.append(theta.copy())
    expected = {"momentum": ([0.95, -1.9], [0.875, -1.85]), "nesterov": ([0.9, -1.8], [0.8, -1.8])}
    np.testing.assert_allclose(thetas, expected[name], rtol=1e-15)
    assert type(get_optimizer(name, momentum=1.0)).__name__.lower() == name


@pytest.mark.parametrize("name", NAMES)
def test_reference_matches_hand_computed_steps(name):
    theta1, theta2 = run_two_steps(reference.optimizer_step, name, np.float64)
    np.testing.assert_allclose(theta1, HAND[name][1], rtol=RTOL[np.float64])
    np.testing.assert_allclose(theta2, HAND[name][2], rtol=RTOL[np.float64])


# ---------------------------------------------------------------------------------------------
# Kernel against reference on random vectors.

@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("name", NAMES)
def test_kernel_matches_reference_over_20_steps(name, dtype, tol):
    rng = np.random.default_rng(7)
    hyper = get_optimizer(name).hyper                  # the documented defaults
    if name == "adamw":
        hyper[3] = 0.3                                 # large enough to matter in 20 steps
    n = 37
    theta_k = rng.standard_normal(n).astype(dtype)
    theta_r = theta_k.copy()
    n_state = _optim.OPTIMIZER_STATE_SIZES[_optim.OPTIMIZER_IDS[name]]
    state_k = np.zeros(n_state * n, dtype=dtype)
    state_r = state_k.copy()
    for t in range(1, 21):
        lr = 0.05 * 0.9 ** t                           # changing rate, as under a schedule
        g = (rng.standard_normal(n) * rng.uniform(0.1, 3.0)).astype(dtype)
        kernel_step(name, hyper, theta_k, g, state_k, lr, t)
        reference.optimizer_step(name, hyper, theta_r, g, state_r, lr, t)
    assert not np.array_equal(theta_k, theta_r * 0)    # the run went somewhere
    np.testing.assert_allclose(theta_k, theta_r, rtol=tol, atol=tol)
    np.testing.assert_allclose(state_k, state_r, rtol=tol, atol=tol)


def test_reference_accepts_matrix_parameters_with_blocked_state():
    rng = np.random.default_rng(1)
    hyper = Adam().hyper
    W = rng.standard_normal((3, 4))
    g = rng.standard_normal((3, 4))
    W_flat, state_flat = W.ravel().copy(), np.zeros(2 * 12)
    state = np.zeros((2, 3, 4))
    for t in (1, 2, 3):
        reference.optimizer_step("adam", hyper, W, g, state, 0.01, t)
        reference.optimizer_step("adam", hyper, W_flat, g.ravel(), state_flat, 0.01, t)
    np.testing.assert_array_equal(W.ravel(), W_flat)
    np.testing.assert_array_equal(state.ravel(), state_flat)
    with pytest.raises(ValueError, match="C-contiguous state of 2 \\* 12"):
        reference.optimizer_step("adam", hyper, W, g, np.zeros((2, 4, 6))[:, :, ::2], 0.01, 1)


# ---------------------------------------------------------------------------------------------
# AdamW: decoupled decay on the weights, by the caller, then Adam.

def test_adamw_is_decay_then_adam():
    rng = np.random.default_rng(3)
    opt = AdamW(weight_decay=0.2)
    hyper, lr = opt.hyper, 0.05
    W, b = rng.standard_normal(20), rng.standard_normal(5)
    W_ref, b_ref = W.copy(), b.copy()
    state_W, state_b = np.zeros(40), np.zeros(10)
    state_W_ref, state_b_ref = state_W.copy(), state_b.copy()
    for t in range(1, 6):
        gW, gb = rng.standard_normal(20), rng.standard_normal(5)
        _optim.decay_weights_py(W, 1 - lr * opt.weight_decay)        # weights only
        _optim.optimizer_step_py(opt.kernel_id, hyper, W, gW, state_W, lr, t)
        _optim.optimizer_step_py(opt.kernel_id, hyper, b, gb, state_b, lr, t)
        reference.optimizer_step("adamw", hyper, W_ref, gW, state_W_ref, lr, t)
        reference.optimizer_step("adam", hyper, b_ref, gb, state_b_ref, lr, t)
    np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b, b_ref, rtol=1e-12, atol=1e-12)


def test_adamw_kernel_step_is_exactly_adam():
    rng = np.random.default_rng(4)
    theta, g = rng.standard_normal(9), rng.standard_normal(9)
    hyper = AdamW(weight_decay=0.5).hyper
    thetas, states = [], []
    for name in ("adam", "adamw"):
        th, st = theta.copy(), np.zeros(18)
        _optim.optimizer_step_py(_optim.OPTIMIZER_IDS[name], hyper, th, g, st, 0.1, 3)
        thetas.append(th)
        states.append(st)
    np.testing.assert_array_equal(thetas[0], thetas[1])
    np.testing.assert_array_equal(states[0], states[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decay_and_scale(dtype):
    w = np.array([1.0, -2.0, 4.0], dtype=dtype)
    _optim.decay_weights_py(w, 0.5)
    np.testing.assert_array_equal(w, np.array([0.5, -1.0, 2.0], dtype=dtype))
    _optim.scale_vector_py(w, -2.0)
    np.testing.assert_array_equal(w, np.array([-1.0, 2.0, -4.0], dtype=dtype))


# ---------------------------------------------------------------------------------------------
# Twin argument checks.

def test_twin_rejects_bad_arguments():
    step = _optim.optimizer_step_py
    adam = _optim.OPTIMIZER_IDS["adam"]
    hyper, theta, g = Adam().hyper, np.zeros(4), np.ones(4)
    with pytest.raises(ValueError, match=r"adam needs a state of at least 2 \* 4 = 8 entries; got 7"):
        step(adam, hyper, theta, g, np.zeros(7), 0.1, 1)
    with pytest.raises(ValueError, match="adam needs 3 hyperparameters; got 2"):
        step(adam, hyper[:2].copy(), theta, g, np.zeros(8), 0.1, 1)
    with pytest.raises(ValueError, match="must have one shape"):
        step(adam, hyper, theta, np.ones(3), np.zeros(8), 0.1, 1)
    with pytest.raises(ValueError, match="t counts updates from 1"):
        step(adam, hyper, theta, g, np.zeros(8), 0.1, 0)
    with pytest.raises(ValueError, match="unknown optimizer id 42; valid ids"):
        step(42, hyper, theta, g, np.zeros(8), 0.1, 1)
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'; choose one of"):
        reference.optimizer_step("adamax", hyper, theta, g, np.zeros(8), 0.1, 1)


def test_twin_sgd_needs_no_state():
    theta = np.array([1.0, 2.0])
    _optim.optimizer_step_py(_optim.OPTIMIZER_IDS["sgd"], None, theta, np.array([1.0, -1.0]),
                             None, 0.5, 1)
    np.testing.assert_array_equal(theta, [0.5, 2.5])


# ---------------------------------------------------------------------------------------------
# Clipping.

def test_clip_by_global_norm_scales_to_max_norm_when_above():
    gW, gb = np.array([[3.0, 0.0], [0.0, 0.0]]), np.array([4.0, 0.0])   # joint norm 5
    norm = reference.clip_by_global_norm([gW, gb], 2.0)
    assert norm == 5.0
    np.testing.assert_allclose(np.sqrt((gW ** 2).sum() + (gb ** 2).sum()), 2.0, rtol=1e-15)
    np.testing.assert_allclose(gW, [[1.2, 0.0], [0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(gb, [1.6, 0.0], rtol=1e-15)


def test_clip_by_global_norm_leaves_small_gradients_alone():
    rng = np.random.default_rng(5)
    g = rng.standard_normal(10)
    before = g.copy()
    norm = reference.clip_by_global_norm(g, np.linalg.norm(g) * 1.001)
    np.testing.assert_allclose(norm, np.linalg.norm(before), rtol=1e-15)
    np.testing.assert_array_equal(g, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_global_norm_clipping_agrees_with_reference(dtype):
    rng = np.random.default_rng(6)
    g = (rng.standard_normal(50) * 3).astype(dtype)
    expected = g.copy()
    reference.clip_by_global_norm(expected, 1.5)
    norm = np.sqrt(_optim.squared_norm_py(g))
    np.testing.assert_allclose(norm, np.linalg.norm(g.astype(np.float64)), rtol=1e-14)
    _optim.scale_vector_py(g, 1.5 / norm)               # what the engine does when norm > 1.5
    np.testing.assert_allclose(g, expected, rtol=RTOL[dtype])
    np.testing.assert_allclose(np.linalg.norm(g.astype(np.float64)), 1.5, rtol=10 * RTOL[dtype])


def test_squared_norm_accumulates_float32_in_double():
    g = np.array([4096.0, 1.0], dtype=np.float32)       # 2**24 + 1: not a float32
    assert _optim.squared_norm_py(g) == 16777217.0
    assert _optim.squared_norm_py(np.zeros(0)) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_values_clamps(dtype):
    g = np.array([-3.0, -0.5, 0.0, 0.5, 3.0, np.nan], dtype=dtype)
    expected = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan], dtype=dtype)
    ref = g.copy()
    _optim.clip_values_py(g, 1.0)
    reference.clip_by_value([ref], 1.0)
    np.testing.assert_array_equal(g, expected)
    np.testing.assert_array_equal(ref, expected)
    with pytest.raises(ValueError, match="limit must be a number >= 0"):
        _optim.clip_values_py(g, -1.0)


# ---------------------------------------------------------------------------------------------
# The configuration classes.

@pytest.mark.parametrize("name", NAMES)
def test_every_name_resolves(name):
    for spelling in (name, name.upper(), name.capitalize()):
        opt = get_optimizer(spelling)
        assert type(opt) is OPTIMIZERS[name]
        assert opt.name == name
    assert opt.kernel_id == _optim.OPTIMIZER_IDS[name]
    assert opt.n_state == _optim.OPTIMIZER_STATE_SIZES[opt.kernel_id] \
        == reference.OPTIMIZER_STATE_SIZES[name]
    assert opt.hyper.dtype == np.float64
    assert opt.hyper.shape == (_optim.OPTIMIZER_HYPER_SIZES[opt.kernel_id],)
    assert eval(repr(opt)) == opt
    assert get_optimizer(opt) is opt
    assert get_optimizer(type(opt)) == opt


@pytest.mark.parametrize("opt, hyper, weight_decay", [
    (SGD(), [], 0.0),
    (Momentum(momentum=0.3), [0.3], 0.0),
    (Nesterov(momentum=0.4), [0.4], 0.0),
    (AdaGrad(eps=0.5), [0.5], 0.0),
    (RMSProp(rho=0.6, eps=0.7), [0.6, 0.7], 0.0),
    (Adam(beta1=0.1, beta2=0.2, eps=0.3), [0.1, 0.2, 0.3], 0.0),
    (AdamW(beta1=0.1, beta2=0.2, eps=0.3, weight_decay=0.4), [0.1, 0.2, 0.3, 0.4], 0.4),
])
def test_hyper_is_in_the_kernel_order(opt, hyper, weight_decay):
    np.testing.assert_array_equal(opt.hyper, hyper)
    assert opt.weight_decay == weight_decay


def test_defaults():
    assert repr(Momentum()) == "Momentum(momentum=0.9)"
    np.testing.assert_array_equal(Nesterov().hyper, [0.9])
    np.testing.assert_array_equal(AdaGrad().hyper, [1e-10])
    np.testing.assert_array_equal(RMSProp().hyper, [0.9, 1e-8])
    np.testing.assert_array_equal(Adam().hyper, [0.9, 0.999, 1e-8])
    np.testing.assert_array_equal(AdamW().hyper, [0.9, 0.999, 1e-8, 0.01])


@pytest.mark.parametrize("cls, params, error, message", [
    (Momentum, {"momentum": 1.5}, ValueError,
     r"Momentum: momentum must be a finite number in \[0, 1\]; got 1.5"),
    (Nesterov, {"momentum": -0.1}, ValueError, r"momentum must be a finite number in \[0, 1\]"),
    (Momentum, {"momentum": "0.9"}, TypeError, "momentum must be a real number; got '0.9'"),
    (Momentum, {"momentum": True}, TypeError, "momentum must be a real number"),
    (AdaGrad, {"eps": 0.0}, ValueError, r"eps must be a finite number in \(0, inf\); got 0.0"),
    (RMSProp, {"eps": float("inf")}, ValueError, r"eps must be a finite number in \(0, inf\)"),
    (RMSProp, {"rho": float("nan")}, ValueError, r"rho must be a finite number in \[0, 1\)"),
    (Adam, {"beta1": 1.0}, ValueError, r"beta1 must be a finite number in \[0, 1\)"),
    (Adam, {"beta2": None}, TypeError, "beta2 must be a real number; got None"),
    (AdamW, {"weight_decay": -0.01}, ValueError,
     r"weight_decay must be a finite number in \[0, inf\)"),
])
def test_bad_parameters_raise_informative_errors(cls, params, error, message):
    with pytest.raises(error, match=message):
        cls(**params)


def test_parameters_changed_later_are_checked_again():
    opt = Adam()
    opt.beta2 = 1.5
    with pytest.raises(ValueError, match=r"Adam: beta2 must be a finite number in \[0, 1\)"):
        opt.hyper


def test_get_optimizer_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'; choose one of 'sgd', "
                                         "'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', "
                                         "'adamw'"):
        get_optimizer("adamax")
    with pytest.raises(TypeError, match="optimizer must be a name"):
        get_optimizer(3)
    with pytest.raises(TypeError, match="Adam has no parameter 'momentum'; its parameters are: "
                                        "beta1, beta2, eps"):
        get_optimizer("adam", momentum=0.9)
    with pytest.raises(TypeError, match="can only be given with a name"):
        get_optimizer(Adam(), beta1=0.5)
    assert get_optimizer("rmsprop", rho=0.5) == RMSProp(rho=0.5)
