"""N-MNIST and convolutional networks: the spec's conv layers, the data path through tonic, the
reference's pooling and augmentation, and every adapter against the reference on the conv net."""

import numpy as np
import pytest

from snnbench.errors import SnnbenchError
from snnbench.harness import parity
from snnbench.runners import get_runner_class
from snnbench.spec import gemm_shapes, init_weights, parse_suite

from .conftest import assert_spyx_is_the_reference_delayed, conv_network_yaml

jax = pytest.importorskip("jax")


def conv_case(T=8, batch=8, m=1, learn_beta=False, **case_over):
    return parse_suite({"suite": "t", "defaults": {"dataset": "nmnist", "time_steps": T, "batch": batch, "lr": 0.002,
                                                   **case_over},
                        "network": conv_network_yaml(m, learn_beta), "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def need(name):
    for n in (name, "reference"):
        ok = get_runner_class(n).available()
        if not ok.ok:
            pytest.skip(ok.reason)
    return get_runner_class(name)


# ------------------------------------------------------------------------------------------- spec


def test_conv_network_shapes_and_weights():
    case = conv_case(m=2)
    net = case.network
    assert case.spec.channels == 2 * 34 * 34 and net.input_shape == (2, 34, 34)
    assert net.shapes()[:3] == [(24, 30, 30), (24, 30, 30), (24, 15, 15)]
    assert net.shapes()[5:7] == [(64, 5, 5), (1600,)] and net.outputs == 10
    w = init_weights(net, 0)
    assert w["layers.0.weight"].shape == (24, 2, 5, 5) and w["layers.3.weight"].shape == (64, 24, 5, 5)
    assert w["layers.7.weight"].shape == (10, 1600)
    bound = 1 / np.sqrt(2 * 25)  # nn.Conv2d's default fan-in bound
    assert np.abs(w["layers.0.weight"]).max() <= bound
    assert gemm_shapes(case)[0] == (8 * 8 * 30 * 30, 50, 24)
    assert net.describe() == "2x34x34-C24k5-LIF-P2-C64k5-LIF-P2-F-10-LI"


@pytest.mark.parametrize("mutate, message", [
    (lambda ls: ls.pop(6), "add a 'flatten' layer"),
    (lambda ls: ls.insert(1, {"type": "maxpool"}), "must follow a neuron layer"),
    (lambda ls: ls.__setitem__(0, {"type": "conv2d", "out": 4, "kernel": 40}), "does not fit"),
    (lambda ls: ls.__setitem__(0, {"type": "conv2d"}), "needs a positive 'out'"),
])
def test_bad_conv_networks_name_the_problem(mutate, message):
    net = conv_network_yaml()
    mutate(net["layers"])
    with pytest.raises(SnnbenchError, match=message):
        parse_suite({"suite": "t", "defaults": {"dataset": "nmnist"}, "network": net, "cases": [{"id": "c"}]}, "t.yaml")


def test_conv_on_a_flat_input_and_channels_for_nmnist_are_refused():
    with pytest.raises(SnnbenchError, match="needs an image input"):
        parse_suite({"suite": "t", "defaults": {"dataset": "shd"}, "network": conv_network_yaml(),
                     "cases": [{"id": "c"}]}, "t.yaml")
    with pytest.raises(SnnbenchError, match="set by the sensor"):
        parse_suite({"suite": "t", "defaults": {"dataset": "nmnist", "channels": 128},
                     "network": conv_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml")


# ------------------------------------------------------------------------------------------- data


def test_synthetic_events_roundtrip_through_tonics_parser(tmp_path):
    import tonic

    from snnbench.data import synthetic_nmnist as S

    ev = S.make_sample(7, np.random.default_rng(1))
    assert 500 < len(ev) < 8000 and set(np.unique(ev[:, 3])) == {0, 1}
    path = tmp_path / "s.bin"
    path.write_bytes(S.encode_events(ev))
    assert path.stat().st_size == 5 * len(ev)
    got = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    for col, name in enumerate("xytp"):
        np.testing.assert_array_equal(got[name], ev[:, col])
    assert got["t"].max() < 310_000 and got["x"].max() <= 33 and got["y"].max() <= 33


def test_loader_reads_the_real_layout_through_tonic(small_nmnist):
    from snnbench.data import nmnist

    assert nmnist.has_nmnist(small_nmnist)
    assert sum(1 for _ in (small_nmnist / "NMNIST" / "Train").glob("*/*.bin")) == 200
    train = nmnist.load_split(small_nmnist, "train", time_steps=16)
    test = nmnist.load_split(small_nmnist, "test", time_steps=16, limit=40)
    assert train.packed.shape == (200, 2, 2312) and len(test) == 40
    assert np.bincount(train.labels).tolist() == [20] * 10
    assert train.meta["synthetic"] and train.meta["input_shape"] == [2, 34, 34]
    dense = train.dense(slice(0, 20)).reshape(20, 16, 2, 34, 34)
    assert 0.002 < dense.mean() < 0.2  # sparse events, both polarities, spread over time
    assert dense[:, :, 0].sum() > 0 and dense[:, :, 1].sum() > 0
    assert (dense.sum((0, 2, 3, 4)) > 0).all()
    again = nmnist.load_split(small_nmnist, "train", time_steps=16)  # from the cache
    np.testing.assert_array_equal(again.packed, train.packed)


def test_frames_match_tonics_own_toframe(small_nmnist):
    import tonic

    from snnbench.data import nmnist

    data = nmnist.load_split(small_nmnist, "test", time_steps=16)
    raw = tonic.datasets.NMNIST.__new__(tonic.datasets.NMNIST)  # only for its dtype and file list order
    files = sorted((small_nmnist / "NMNIST" / "Test").glob("*/*.bin"), key=lambda p: (p.parent.name, p.name))
    events = tonic.io.read_mnist_file(str(files[3]), dtype=raw.dtype)
    frames = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=16)(events)
    np.testing.assert_array_equal(data.dense(3), (frames > 0).reshape(16, -1))
    assert data.labels[3] == int(files[3].parent.name)


def test_named_data_dir_without_nmnist_is_a_clear_error(tmp_path):
    from snnbench.data import resolve_source

    with pytest.raises(SnnbenchError, match="has no N-MNIST"):
        resolve_source("nmnist", tmp_path, None, None)


# --------------------------------------------------------------------------------- reference parts


def _nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


def test_max_pool_routes_gradient_to_the_first_maximum_like_torch():
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    from snnbench.runners.reference.conv import max_pool

    rng = np.random.default_rng(0)
    x = (rng.random((3, 4, 11, 11)) < 0.3).astype(np.float32)  # binary: ties everywhere, odd size
    xt = torch.tensor(x, requires_grad=True)
    for kernel, stride in ((2, 2), (3, 2)):  # non-overlapping, then overlapping windows
        xt.grad = None
        ref = torch.nn.functional.max_pool2d(xt, kernel, stride)
        g = rng.normal(size=ref.shape).astype(np.float32)
        ref.backward(torch.tensor(g))
        out, vjp = jax.vjp(lambda v: max_pool(v, kernel, stride), jnp.asarray(_nhwc(x)))
        np.testing.assert_array_equal(np.asarray(out), _nhwc(ref.detach().numpy()))
        np.testing.assert_array_equal(np.asarray(vjp(jnp.asarray(_nhwc(g)))[0]), _nhwc(xt.grad.numpy()))


@pytest.mark.parametrize("block", [1, 2, 3])  # output columns per row of patches (the width, 6, divides)
@pytest.mark.parametrize("budget", [None, 1])  # one chunk; one frame per chunk (lax.map and the scan)
def test_patch_convolution_matches_torch_conv2d_and_its_gradients(monkeypatch, budget, block):
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    from snnbench.runners.reference import conv

    if budget is not None:
        monkeypatch.setattr(conv, "PATCH_CHUNK_BYTES", budget)
        monkeypatch.setattr(conv, "COL2IM_CHUNK_BYTES", budget)
        assert conv._chunks_for(jnp.zeros((6, 9, 8, 3)), 3, block) == 6
    rng = np.random.default_rng(1)
    x = (rng.random((6, 3, 9, 8)) < 0.4).astype(np.float32)
    w = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
    g = rng.normal(size=(6, 5, 7, 6)).astype(np.float32)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt)
    ref.backward(torch.tensor(g))
    out, vjp = jax.vjp(lambda x, w: conv.conv2d_blocked(x, w, block),
                       jnp.asarray(_nhwc(x)), jnp.asarray(w.transpose(2, 3, 1, 0)))
    dx, dw = vjp(jnp.asarray(_nhwc(g)))
    np.testing.assert_allclose(np.asarray(out), _nhwc(ref.detach().numpy()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dx), _nhwc(xt.grad.numpy()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dw), wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-5, atol=1e-5)


def test_column_blocks_only_for_narrow_windows_of_even_width():
    from snnbench.runners.reference.conv import column_block

    assert column_block(5, 2, 30) == 2  # N-MNIST's first layer: a 50-value window
    assert column_block(5, 2, 29) == 1  # odd output width
    assert column_block(5, 12, 10) == 1  # its second layer: 300 values, patches as they are


def test_chunk_count_keeps_each_chunk_under_the_budget():
    from snnbench.runners.reference.conv import chunk_count

    assert chunk_count(1024, 100, budget=10**6) == 1
    assert chunk_count(1024, 1000, budget=16_000) == 64  # 16 frames of 1000 bytes each
    assert chunk_count(12, 1000, budget=5000) == 3  # 4 frames: the largest divisor of 12 under 5 frames
    assert chunk_count(7, 1000, budget=10) == 7  # one frame is already over: one per chunk


def test_pixel_shift_moves_whole_images_with_zero_fill():
    import jax.numpy as jnp

    from snnbench.runners.jax_common import shift_pixels

    T, B, C, H, W = 3, 16, 2, 6, 7
    x = np.random.default_rng(0).random((T, B, C * H * W)).astype(np.float32) + 1.0  # no zeros inside
    out = np.asarray(shift_pixels(jnp.asarray(x), jax.random.PRNGKey(3), 2, (C, H, W))).reshape(T, B, C, H, W)
    src = x.reshape(T, B, C, H, W)
    seen = set()
    for b in range(B):
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(out[:, b], _shift(src[:, b], dy, dx))]
        assert match, f"sample {b} is not a whole-image shift"
        seen.add(match[0])
    assert len(seen) > 3  # offsets differ between samples


def _shift(img, dy, dx):
    out = np.zeros_like(img)
    H, W = img.shape[-2:]
    ys, xs = slice(max(dy, 0), H + min(dy, 0)), slice(max(dx, 0), W + min(dx, 0))
    yd, xd = slice(max(-dy, 0), H + min(-dy, 0)), slice(max(-dx, 0), W + min(-dx, 0))
    out[..., yd, xd] = img[..., ys, xs]
    return out


def test_loop_epoch_equals_scan_epoch(small_nmnist):
    """The per-batch compiled step (XLA:CPU conv nets) and the one-program epoch give the same result."""
    need("reference")
    from snnbench.data import nmnist
    from snnbench.runners.reference.runner import ReferenceRunner

    case = conv_case(T=8, batch=16, augment_shift=2)
    train = nmnist.load_split(small_nmnist, "train", time_steps=8, limit=64)
    test = nmnist.load_split(small_nmnist, "test", time_steps=8, limit=32)
    params = {}
    for mode in ("scan", "loop"):
        r = ReferenceRunner()
        r._epoch_mode = lambda mode=mode: mode
        r.build(case, "cpu", 0)
        r.stage(train, test)
        r.compile()
        res = r.train_epoch(0)
        params[mode] = (r.get_weights(), res.loss)
    assert params["scan"][1] == pytest.approx(params["loop"][1], rel=1e-5)
    for k, v in params["scan"][0].items():
        np.testing.assert_allclose(params["loop"][0][k], v, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------- adapters


@pytest.mark.parametrize("name", ["torch", "snntorch", "norse"])
def test_exact_adapters_pass_parity_on_the_conv_net(name):
    need(name)
    res = parity.compare(conv_case(T=16), name, batch=4)
    assert res["status"] == "pass", parity.summary(res)
    assert all(s["spikes_ref"] > 0 for s in res["spikes"])  # both conv layers spiked
    assert {"layers.0.weight", "layers.3.weight", "layers.7.weight"} <= set(res["grads"])


def test_sinabs_passes_parity_on_the_conv_net():
    need("sinabs")
    res = parity.compare(conv_case(T=16), "sinabs", batch=4)
    assert res["status"] == "pass", parity.summary(res)
    assert all(s["spikes_ref"] > 0 for s in res["spikes"])


def test_spikingjelly_conv_net_deviates_only_by_its_reset():
    """SpikingJelly's soft reset is the spec's subtract_decayed: proven on the conv net (its
    multi-step Conv2d / MaxPool2d / Flatten keep PyTorch's layouts)."""
    need("spikingjelly")
    res = parity.compare(conv_case(T=16), "spikingjelly", batch=4)
    assert res["status"] == "deviates", parity.summary(res)
    assert res["proof"]["agrees"] and sum(s["flips"] for s in res["proof"]["spikes"]) == 0


def test_brainpy_conv_net_deviates_only_by_its_attached_reset():
    """brainstate's channel-first Conv2d / MaxPool2d / Flatten keep the canonical layout: with the
    reset gradient attached (BrainPy's declared deviation) the conv net is exact."""
    need("brainpy")
    res = parity.compare(conv_case(T=16), "brainpy", batch=4)
    assert res["status"] == "deviates", parity.summary(res)
    assert res["checks"]["readout"] and res["proof"]["agrees"]
    assert sum(s["flips"] for s in res["spikes"]) == 0 and all(s["spikes_ref"] > 0 for s in res["spikes"])


@pytest.mark.parametrize("name", ["rockpool", "rockpool-jax"])
def test_rockpool_skips_the_conv_net(name):
    cls = need(name)
    ok = cls().supports(conv_case(T=8))
    assert not ok.ok and "conv2d is not mapped to Rockpool" in ok.reason


def test_norse_compile_passes_parity_on_the_conv_net():
    need("norse-compile")
    res = parity.compare(conv_case(T=8), "norse-compile", batch=2)
    assert res["status"] == "pass", parity.summary(res)


def test_snntorch_compile_skips_max_pooling_with_the_measured_reason():
    cls = need("snntorch-compile")
    ok = cls().supports(conv_case(T=8))
    assert not ok.ok and "tied maxima" in ok.reason


def test_torch_compile_passes_parity_on_the_conv_net():
    need("torch-compile")
    res = parity.compare(conv_case(T=8), "torch-compile", batch=2)
    assert res["status"] == "pass", parity.summary(res)


def test_spyx_conv_net_is_the_reference_delayed():
    """Spyx keeps images as [B, H, W, C]: with its declared one-step delay per spiking layer taken
    out, its conv net computes exactly the reference's (layouts and permutations are right)."""
    need("spyx")
    assert_spyx_is_the_reference_delayed(conv_case(T=16), batch=4)


@pytest.mark.parametrize("name", ["reference", "torch", "snntorch", "norse", "spyx", "brainpy"])
def test_conv_weights_roundtrip(name):
    cls = need(name)
    fixed = name in ("norse", "brainpy")  # trainable decays are not mapped there
    case = conv_case(learn_beta=not fixed)
    r = cls()
    r.build(case, "cpu", 0)
    w = init_weights(case.network, 7)
    if not fixed:
        w["layers.1.beta"] = np.random.default_rng(0).uniform(0.5, 0.95, w["layers.1.beta"].shape).astype(np.float32)
    r.set_weights(w)
    got = r.get_weights()
    assert set(got) == set(w)
    for k in w:
        np.testing.assert_array_equal(got[k], w[k], err_msg=k)


@pytest.mark.parametrize("name", ["reference", "torch", "snntorch", "norse", "spyx", "brainpy"])
def test_adapter_trains_on_nmnist(name, small_nmnist):
    cls = need(name)
    from snnbench.data import nmnist

    case = conv_case(T=8, batch=20)
    train = nmnist.load_split(small_nmnist, "train", time_steps=8)
    test = nmnist.load_split(small_nmnist, "test", time_steps=8)
    r = cls()
    r.build(case, "cpu", 0)
    r.set_weights(init_weights(case.network, 0))
    r.stage(train, test)
    r.compile()
    losses = [r.train_epoch(e).loss for e in range(3)]
    ev = r.evaluate()
    assert ev.samples == 100
    assert losses[-1] < losses[0], losses
    assert ev.accuracy > 0.3  # chance is 0.1


def test_truncated_bin_file_is_named_before_the_run(tmp_path):
    from snnbench.data import resolve_source
    from snnbench.data.synthetic_nmnist import write_synthetic_nmnist

    write_synthetic_nmnist(tmp_path, n_train=20, n_test=10, workers=1)
    victim = tmp_path / "NMNIST" / "Test" / "3" / "00000.bin"
    victim.write_bytes(victim.read_bytes()[:7])
    with pytest.raises(SnnbenchError, match=r"00000.bin: 7 bytes is not a whole number of 5-byte"):
        resolve_source("nmnist", tmp_path, None, None)
