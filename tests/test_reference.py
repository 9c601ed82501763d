"""The reference runner: weight exchange, shapes, compiled epoch, learning."""

import numpy as np
import pytest

pytest.importorskip("haiku")

from snnbench.data import shd  # noqa: E402
from snnbench.runners.reference import ReferenceRunner  # noqa: E402
from snnbench.spec import init_weights, parse_suite  # noqa: E402

from .conftest import tiny_network_yaml  # noqa: E402


def make_case(**over):
    defaults = {"time_steps": 64, "channels": 32, "batch": 32, "epochs": 1, "lr": 0.01, **over}
    return parse_suite({"suite": "t", "defaults": defaults, "network": tiny_network_yaml(), "cases": [{"id": "c"}]},
                       "t.yaml").cases[0]


def test_weights_roundtrip_and_shapes():
    case = make_case()
    r = ReferenceRunner()
    r.build(case, "cpu", 0)
    w = init_weights(case.network, 5)
    r.set_weights(w)
    got = r.get_weights()
    assert set(got) == set(w)
    for k in w:
        np.testing.assert_array_equal(got[k], w[k])
    x = (np.random.default_rng(0).random((3, 64, 32)) < 0.2).astype(np.float32)
    out = r.forward(x)
    assert [s.shape for s in out.spikes] == [(3, 64, 32)]
    assert out.readout.shape == (3, 64, 20)
    g = r.forward_backward(x, np.array([1, 2, 3]))
    assert set(g.grads) == set(w) and np.isfinite(g.loss)
    assert all(g.grads[k].shape == w[k].shape for k in w)


def test_forward_matches_numpy_network():
    """Layer-wise GEMM + scan equals a step-by-step NumPy simulation of the whole network."""
    case = make_case()
    r = ReferenceRunner()
    r.build(case, "cpu", 0)
    w = init_weights(case.network, 2)
    w["layers.0.weight"] *= 4  # make the hidden layer spike
    r.set_weights(w)
    x = (np.random.default_rng(1).random((2, 64, 32)) < 0.3).astype(np.float32)
    out = r.forward(x)
    v1 = np.zeros((2, 32), np.float32)
    s1 = np.zeros((2, 32), np.float32)
    v2 = np.zeros((2, 20), np.float32)
    spikes, readout = [], []
    for t in range(64):
        i1 = x[:, t] @ w["layers.0.weight"].T + w["layers.0.bias"]
        v1 = 0.9 * v1 + i1 - 1.0 * s1
        s1 = (v1 > 1.0).astype(np.float32)
        v2 = 0.9 * v2 + s1 @ w["layers.2.weight"].T + w["layers.2.bias"]
        spikes.append(s1)
        readout.append(v2)
    want_s = np.stack(spikes, 1)
    assert 0 < want_s.sum() < want_s.size
    flips = (out.spikes[0] != want_s).sum()
    assert flips <= 2, f"{flips} spike flips"  # GEMM summation order may flip a spike on the threshold
    if flips == 0:
        np.testing.assert_allclose(out.readout, np.stack(readout, 1), rtol=1e-4, atol=1e-4)


def test_compiled_epoch_learns(small_shd):
    case = make_case(epochs=30, augment_shift=2, channels=64, lr=0.005)
    kw = dict(time_steps=64, channels=64, duration_s=1.0)
    train, test = shd.load_split(small_shd, "train", **kw), shd.load_split(small_shd, "test", **kw)
    r = ReferenceRunner()
    r.build(case, "cpu", 0)
    facts = r.stage(train, test)
    assert facts["staged_bytes_dense_float32"] == 32 * facts["staged_bytes_packed"]
    assert r.compile() > 0
    before = r.evaluate()
    losses = [r.train_epoch(e).loss for e in range(30)]
    after = r.evaluate()
    assert after.samples == 128
    assert losses[-1] < losses[0]
    assert after.accuracy > max(0.3, before.accuracy + 0.2)  # chance is 5%; 256 samples only


def test_unrolled_time_scan_computes_the_same():
    """The GPU default unrolls the time scans; the network must not change with it."""
    case = make_case()
    x = (np.random.default_rng(1).random((4, 64, 32)) < 0.2).astype(np.float32)
    y = np.array([0, 5, 9, 19])
    outs = []
    for unroll in (None, 8):
        r = ReferenceRunner(unroll=unroll)
        r.build(case, "cpu", 0)
        outs.append((r.unroll, r.forward(x), r.forward_backward(x, y)))
    (u1, f1, g1), (u8, f8, g8) = outs
    assert (u1, u8) == (1, 8) and ReferenceRunner.default_unroll("gpu") > 1
    for a, b in zip(f1.spikes, f8.spikes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(f1.readout, f8.readout, rtol=1e-6, atol=1e-6)
    for k in g1.grads:
        np.testing.assert_allclose(g1.grads[k], g8.grads[k], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [16, 2048])  # 2048: wide enough for the copied x^T (dense.TRANSPOSE_COPY_MIN_N)
def test_dense_layer_gradients_match_autodiff(n):
    """The linear layer's hand-laid GEMMs: forward and both gradients those of ``x @ w``, copied transpose
    or not; the copy happens only from TRANSPOSE_COPY_MIN_N outputs on."""
    import jax
    import jax.numpy as jnp

    from snnbench.runners.reference import dense

    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.random((24, 12)) < 0.3).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(12, n)).astype(np.float32))
    g = jnp.asarray(rng.normal(size=(24, n)).astype(np.float32))
    want = jax.vjp(lambda x, w: x @ w, x, w)[1](g)
    for copy in (False, True):
        y, vjp = jax.vjp(lambda x, w: dense.dense(x, w, copy), x, w)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x @ w))
        for got, ref in zip(vjp(g), want):
            np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-5)
    hlo = jax.jit(lambda x, g: dense.weight_grad(x, g, True)).lower(x, g).as_text()
    assert ("opt-barrier" in hlo or "optimization_barrier" in hlo) == (n >= dense.TRANSPOSE_COPY_MIN_N)
