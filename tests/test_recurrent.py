"""The recurrent LIF (``recurrent: true``): spec validation and initialisation, the reference's neuron
math and gradients against a NumPy oracle, and its network against a step-by-step simulation."""

import copy

import numpy as np
import pytest

from snnbench.errors import SnnbenchError
from snnbench.spec import init_weights, param_shapes, parse_network, parse_suite

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from snnbench.runners.reference import neurons  # noqa: E402


def rec_layers(neuron: str = "lif", reset: str = "subtract", hidden: int = 12, out: int = 5, **over) -> list[dict]:
    return [{"type": "linear", "out": hidden}, {"type": neuron, "reset": reset, "recurrent": True, **over},
            {"type": "linear", "out": out}, {"type": "li"}]


def numpy_rlif(current, V, beta, threshold, reset, alpha=None):
    """The canonical recurrent equations of snnbench.spec, one step at a time (float64)."""
    T, B, N = current.shape
    v, syn, s = np.zeros((B, N)), np.zeros((B, N)), np.zeros((B, N))
    spikes, mems = [], []
    for t in range(T):
        i_t = current[t] + s @ V.T
        if alpha is not None:
            syn = alpha * syn + i_t
            i_t = syn
        r = s
        if reset == "subtract":
            v = beta * v + i_t - threshold * r
        elif reset == "subtract_decayed":
            v = beta * (v - threshold * r) + i_t
        elif reset == "zero":
            v = beta * (1 - r) * v + i_t
        else:
            v = beta * v + i_t
        s = (v > threshold).astype(np.float64)
        spikes.append(s)
        mems.append(v.copy())
    return np.stack(spikes), np.stack(mems)


def numpy_rlif_grads(current, V, beta, threshold, detach, g_s, slope):
    """Hand-written BPTT of the recurrent subtract-reset LIF (float64), arctan surrogate: returns
    ``dL/dcurrent`` and ``dL/dV`` for ``L = sum(g_s * spikes)``."""
    s_all, v_all = numpy_rlif(current, V, beta, threshold, "subtract")
    T = current.shape[0]
    d_cur, d_V = np.zeros_like(current), np.zeros_like(V)
    dv_next = np.zeros_like(v_all[0])  # dL/dv_{t+1}
    for t in reversed(range(T)):
        # s_t reaches the loss directly, and step t+1 through its recurrent term (and reset, if attached)
        ds = g_s[t] + (dv_next @ V if t + 1 < T else 0.0)
        if not detach:
            ds = ds - threshold * dv_next
        sg = (slope / 2) / (1 + (np.pi / 2 * slope * (v_all[t] - threshold)) ** 2)
        dv = beta * dv_next + ds * sg
        d_cur[t] = dv
        s_prev = s_all[t - 1] if t else np.zeros_like(s_all[0])
        d_V += dv.T @ s_prev
        dv_next = dv
    return d_cur, d_V


@pytest.fixture
def drive():
    rng = np.random.default_rng(0)
    current = rng.normal(0.3, 0.8, (40, 3, 10)).astype(np.float32)
    V = rng.normal(0.0, 0.4, (10, 10)).astype(np.float32)
    return current, V


@pytest.mark.parametrize("reset", ["subtract", "subtract_decayed", "zero", "none"])
@pytest.mark.parametrize("kind", ["lif", "if", "cuba_lif"])
def test_recurrent_lif_matches_numpy(drive, reset, kind):
    current, V = drive
    beta = 1.0 if kind == "if" else 0.9
    alpha = 0.8 if kind == "cuba_lif" else None
    want_s, want_v = numpy_rlif(current.astype(np.float64), V.astype(np.float64), beta, 1.0, reset, alpha)
    got = neurons.lif_recurrent(jnp.asarray(current), jnp.asarray(V), beta, reset=reset, alpha=alpha)
    s, v = np.asarray(got.spikes), np.asarray(got.membrane)
    assert 0 < want_s.sum() < want_s.size
    flips = int((s != want_s).sum())
    assert flips <= 1, f"{flips} spike flips"  # float32 vs float64: a tie on the threshold at most
    if flips == 0:
        np.testing.assert_allclose(v, want_v, atol=2e-4, rtol=1e-4)


def test_recurrence_changes_the_spikes(drive):
    """V really enters: with V = 0 the recurrent neuron is the plain LIF, bit for bit; with V it is not."""
    current, V = drive
    plain = neurons.lif(jnp.asarray(current), 0.9)
    zero_v = neurons.lif_recurrent(jnp.asarray(current), jnp.zeros_like(jnp.asarray(V)), 0.9)
    np.testing.assert_array_equal(np.asarray(zero_v.spikes), np.asarray(plain.spikes))
    np.testing.assert_allclose(np.asarray(zero_v.membrane), np.asarray(plain.membrane), atol=1e-6)
    with_v = neurons.lif_recurrent(jnp.asarray(current), jnp.asarray(V), 0.9)
    assert (np.asarray(with_v.spikes) != np.asarray(plain.spikes)).sum() > 10


@pytest.mark.parametrize("detach", [True, False])
def test_recurrent_gradients_match_numpy_bptt(drive, detach):
    """The gradient flows through s_{t-1} in the recurrent term (not detached) and through the reset
    term only when attached; both against a float64 hand-written BPTT."""
    current, V = drive
    g_s = np.random.default_rng(3).normal(size=current.shape)

    def loss(c, w):
        out = neurons.lif_recurrent(c, w, 0.9, detach_reset=detach, surrogate="arctan", slope=2.0)
        return (out.spikes * g_s.astype(np.float32)).sum()

    d_cur, d_V = jax.grad(loss, argnums=(0, 1))(jnp.asarray(current), jnp.asarray(V))
    want_cur, want_V = numpy_rlif_grads(current.astype(np.float64), V.astype(np.float64), 0.9, 1.0, detach, g_s, 2.0)
    np.testing.assert_allclose(np.asarray(d_cur), want_cur, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(d_V), want_V, rtol=1e-4, atol=1e-4)
    assert np.abs(want_V).max() > 0.1  # V receives a real gradient


def autodiff_rlif(current, V, beta, threshold, reset, detach):
    """The recurrent LIF as JAX differentiates a plain scan (what the hand-written backward replaced)."""
    from snnbench.runners.reference.surrogates import spike

    def step(carry, i_t):
        v, s = carry
        i_t = i_t + s @ V.T
        r = jax.lax.stop_gradient(s) if detach else s
        v = neurons.membrane_update(v, i_t, r, beta, threshold, reset)
        s = spike(v - threshold, "superspike", 1.0)
        return (v, s), (s, v)

    zeros = jnp.zeros(current.shape[1:], current.dtype)
    return jax.lax.scan(step, (zeros, zeros), current)[1]


@pytest.mark.parametrize("reset", ["subtract", "subtract_decayed", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False])
def test_recurrent_backward_matches_autodiff(drive, reset, detach):
    """The hand-written backward against JAX's own differentiation of the scan, every reset, the reset
    attached or not, with a per-neuron (learnable) decay: gradients of the input, V and beta."""
    current, V = (jnp.asarray(a) for a in drive)
    beta = jnp.asarray(np.linspace(0.7, 0.95, current.shape[-1]).astype(np.float32))
    rng = np.random.default_rng(4)
    g_s, g_v = (jnp.asarray(rng.normal(size=current.shape).astype(np.float32)) for _ in range(2))

    def loss(fn):
        def f(c, w, b):
            spikes, membrane = fn(c, w, b)
            return (spikes * g_s).sum() + (membrane * g_v).sum()
        return f

    fast = loss(lambda c, w, b: tuple(neurons.lif_recurrent(c, w, b, reset=reset, detach_reset=detach,
                                                             surrogate="superspike", slope=1.0)))
    plain = loss(lambda c, w, b: autodiff_rlif(c, w, b, 1.0, reset, detach))
    np.testing.assert_allclose(fast(current, V, beta), plain(current, V, beta), rtol=1e-6)
    for got, want in zip(jax.grad(fast, (0, 1, 2))(current, V, beta), jax.grad(plain, (0, 1, 2))(current, V, beta)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
        assert np.abs(np.asarray(want)).max() > 1e-3


# ------------------------------------------------------------------------------------------- spec


def test_recurrent_weight_is_named_shaped_and_drawn_in_layer_order():
    rec = parse_network({"layers": rec_layers()}, "n", 8, 16)
    plain = parse_network({"layers": rec_layers(recurrent=False)}, "n", 8, 16)
    w_rec, w_plain = init_weights(rec, 3), init_weights(plain, 3)
    assert param_shapes(rec)["layers.1.recurrent"] == (12, 12) and w_rec["layers.1.recurrent"].shape == (12, 12)
    assert "layers.1.recurrent" not in w_plain
    for key in ("layers.0.weight", "layers.0.bias"):  # drawn before V: unchanged
        np.testing.assert_array_equal(w_rec[key], w_plain[key])
    # V is drawn as a linear of fan-in 12 from the same stream, right after layer 0
    rng = np.random.default_rng(3)
    rng.uniform(size=12 * 8 + 12)
    want = rng.uniform(-1 / np.sqrt(12), 1 / np.sqrt(12), (12, 12)).astype(np.float32)
    np.testing.assert_array_equal(w_rec["layers.1.recurrent"], want)
    assert rec.describe() == "8-12-RLIF-5-LI"


@pytest.mark.parametrize("layers, message", [
    ([{"type": "linear", "out": 4, "recurrent": True}, {"type": "li"}], r"layers\[0\].recurrent: only a neuron"),
    ([{"type": "linear", "out": 4}, {"type": "li", "recurrent": True}], r"a li layer cannot be recurrent"),
    (rec_layers("lif_noreset"), r"a lif_noreset layer cannot be recurrent"),
    (rec_layers(method="fixed_point"), r"recurrent layer is evaluated step by step"),
    (rec_layers(recurrent="yes"), r"recurrent: expected true or false"),
])
def test_recurrent_refused_where_meaningless(layers, message):
    with pytest.raises(SnnbenchError, match=message):
        parse_network({"layers": copy.deepcopy(layers)}, "n", 8, 16)


def test_recurrent_case_roundtrips_through_dict():
    from snnbench.spec import case_from_dict, case_to_dict

    suite = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 8, "batch": 4, "epochs": 1},
                         "network": {"layers": rec_layers()}, "cases": [{"id": "a"}]}, "t.yaml")
    case = suite.cases[0]
    assert case.network.layers[1].recurrent and case_from_dict(case_to_dict(case)) == case


# -------------------------------------------------------------------------------------- reference


def rec_case(neuron="lif", T=16, **over):
    return parse_suite({"suite": "t", "defaults": {"time_steps": T, "channels": 8, "batch": 4, "epochs": 1},
                        "network": {"layers": rec_layers(neuron, **over)}, "cases": [{"id": "a"}]}, "t.yaml").cases[0]


@pytest.mark.parametrize("neuron", ["lif", "cuba_lif"])
def test_reference_network_matches_step_by_step_numpy(neuron):
    """The layer-at-a-time reference (one GEMM for W x, V s_{t-1} inside the scan) equals a whole-network
    step-by-step simulation; its weights round-trip by their canonical names, gradients included."""
    pytest.importorskip("haiku")
    from snnbench.runners.reference import ReferenceRunner

    case = rec_case(neuron)
    r = ReferenceRunner()
    r.build(case, "cpu", 0)
    w = init_weights(case.network, 2)
    w["layers.0.weight"] *= 3
    w["layers.1.recurrent"] *= 2
    r.set_weights(w)
    assert {k: v.shape for k, v in r.get_weights().items()} == {k: v.shape for k, v in w.items()}
    np.testing.assert_array_equal(r.get_weights()["layers.1.recurrent"], w["layers.1.recurrent"])
    x = (np.random.default_rng(1).random((4, 16, 8)) < 0.3).astype(np.float32)
    out = r.forward(x)
    cur = np.einsum("btc,hc->tbh", x, w["layers.0.weight"]) + w["layers.0.bias"]
    s, _ = numpy_rlif(cur.astype(np.float64), w["layers.1.recurrent"].astype(np.float64), 0.9, 1.0, "subtract",
                      0.8 if neuron == "cuba_lif" else None)
    assert 0 < s.sum() < s.size
    assert (out.spikes[0] != s.swapaxes(0, 1)).sum() <= 1
    g = r.forward_backward(x, np.array([0, 1, 2, 3]))
    assert set(g.grads) == set(w) and np.abs(g.grads["layers.1.recurrent"]).max() > 0
