"""Reference neuron math against a plain NumPy step-by-step implementation, and the surrogates
against their formulas."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from snnbench.runners.reference import neurons  # noqa: E402
from snnbench.runners.reference.surrogates import spike, surrogate_grad  # noqa: E402


def numpy_lif(current, beta, threshold, reset):
    """The canonical equations of snnbench.spec, one step at a time."""
    T, B, N = current.shape
    v = np.zeros((B, N), np.float32)
    s = np.zeros((B, N), np.float32)
    spikes, mems = [], []
    for t in range(T):
        r = s
        if reset == "subtract":
            v = beta * v + current[t] - threshold * r
        elif reset == "subtract_decayed":
            v = beta * (v - threshold * r) + current[t]
        elif reset == "zero":
            v = beta * (1 - r) * v + current[t]
        else:
            v = beta * v + current[t]
        s = (v > threshold).astype(np.float32)
        spikes.append(s)
        mems.append(v.copy())
    return np.stack(spikes), np.stack(mems)


@pytest.fixture
def current():
    rng = np.random.default_rng(0)
    return rng.normal(0.3, 0.8, (50, 4, 16)).astype(np.float32)


@pytest.mark.parametrize("reset", ["subtract", "subtract_decayed", "zero", "none"])
@pytest.mark.parametrize("unroll", [1, 8])
def test_lif_matches_numpy(current, reset, unroll):
    want_s, want_v = numpy_lif(current, 0.9, 1.0, reset)
    got = neurons.lif(jnp.asarray(current), 0.9, threshold=1.0, reset=reset, unroll=unroll)
    np.testing.assert_array_equal(np.asarray(got.spikes), want_s)
    # 1e-6 relative: without reset v grows to ~5, where one float32 ulp is ~5e-7 (XLA may fuse to FMA)
    np.testing.assert_allclose(np.asarray(got.membrane), want_v, atol=1e-6, rtol=1e-6)
    assert want_s.sum() > 0 and want_s.sum() < want_s.size  # the test exercises both branches


def test_if_is_lif_without_leak(current):
    want_s, want_v = numpy_lif(current, 1.0, 1.0, "subtract")
    got = neurons.integrate_and_fire(jnp.asarray(current))
    np.testing.assert_array_equal(np.asarray(got.spikes), want_s)
    np.testing.assert_allclose(np.asarray(got.membrane), want_v, atol=1e-5)


def test_per_neuron_beta(current):
    beta = np.linspace(0.5, 1.0, current.shape[-1]).astype(np.float32)
    want_s, want_v = numpy_lif(current, beta, 1.0, "subtract")
    got = neurons.lif(jnp.asarray(current), jnp.asarray(beta))
    np.testing.assert_array_equal(np.asarray(got.spikes), want_s)
    np.testing.assert_allclose(np.asarray(got.membrane), want_v, atol=1e-6)


def test_leaky_integrator_and_cuba(current):
    v = np.zeros(current.shape[1:], np.float32)
    want = []
    for t in range(current.shape[0]):
        v = 0.8 * v + current[t]
        want.append(v.copy())
    want = np.stack(want)
    np.testing.assert_allclose(np.asarray(neurons.leaky_integrator(jnp.asarray(current), 0.8)), want, atol=1e-6)
    want_s, want_v = numpy_lif(want, 0.9, 1.0, "subtract")
    got = neurons.cuba_lif(jnp.asarray(current), 0.8, 0.9)
    np.testing.assert_array_equal(np.asarray(got.spikes), want_s)
    np.testing.assert_allclose(np.asarray(got.membrane), want_v, atol=1e-5)


def test_detached_reset_changes_gradient_only(current):
    def total(c, detach):
        return neurons.lif(c, 0.9, detach_reset=detach).membrane.sum()

    c = jnp.asarray(current)
    np.testing.assert_allclose(total(c, True), total(c, False))
    g_detached = jax.grad(total)(c, True)
    g_attached = jax.grad(lambda x: total(x, False))(c)
    assert not np.allclose(g_detached, g_attached)


SURROGATE_FORMULAS = {
    "arctan": lambda x, k: (k / 2) / (1 + (np.pi / 2 * k * x) ** 2),
    "superspike": lambda x, k: 1 / (1 + k * np.abs(x)) ** 2,
    "sigmoid": lambda x, k: k * (1 / (1 + np.exp(-k * x))) * (1 - 1 / (1 + np.exp(-k * x))),
    "triangular": lambda x, k: np.maximum(0, 1 - k * np.abs(x)),
    "boxcar": lambda x, k: (np.abs(x) < 1 / k).astype(float),
    "straight_through": lambda x, k: np.ones_like(x),
}
PEAKS = {"arctan": lambda k: k / 2, "superspike": lambda k: 1.0, "sigmoid": lambda k: k / 4,
         "triangular": lambda k: 1.0, "boxcar": lambda k: 1.0, "straight_through": lambda k: 1.0}


@pytest.mark.parametrize("name", sorted(SURROGATE_FORMULAS))
@pytest.mark.parametrize("slope", [2.0, 5.0])
def test_surrogate_gradient_matches_formula(name, slope):
    x = np.linspace(-2, 2, 401).astype(np.float32)
    grad = jax.vmap(jax.grad(lambda v: spike(v, name, slope)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(grad), SURROGATE_FORMULAS[name](x, slope), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(surrogate_grad(name, jnp.float32(0.0), slope)), PEAKS[name](slope), rtol=1e-6)
    # forward is the exact step, H(0) = 0
    np.testing.assert_array_equal(np.asarray(spike(jnp.asarray(x), name, slope)), (x > 0).astype(np.float32))


@pytest.mark.parametrize("reset", ["subtract", "subtract_decayed", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("per_neuron_beta", [False, True])
def test_handwritten_vjp_matches_autodiff(current, reset, detach, per_neuron_beta):
    """lif's hand-written backward pass equals JAX's derivative of the plain scan."""
    beta = jnp.linspace(0.6, 0.95, current.shape[-1]) if per_neuron_beta else jnp.float32(0.85)
    rng = np.random.default_rng(5)
    w_s = jnp.asarray(rng.normal(size=current.shape).astype(np.float32))
    w_v = jnp.asarray(rng.normal(size=current.shape).astype(np.float32))

    def objective(fn):
        def f(c, b):
            out = fn(c, b, threshold=1.0, reset=reset, detach_reset=detach, surrogate="superspike", slope=2.0)
            return (out.spikes * w_s).sum() + 0.1 * (out.membrane * w_v).sum()
        return f

    got = jax.grad(objective(neurons.lif), argnums=(0, 1))(jnp.asarray(current), beta)
    want = jax.grad(objective(neurons.lif_autodiff), argnums=(0, 1))(jnp.asarray(current), beta)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=2e-4, atol=1e-4)
