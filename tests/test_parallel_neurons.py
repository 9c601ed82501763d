"""Parallel-in-time neurons: the three no-reset LIF methods agree, PSN variants match their
definitions, DSN's parallel scan equals its step-by-step inference (also past 16k steps, where a
cumulative product of decays underflows float32), and JAX and PyTorch compute the same thing."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from snnbench.runners.reference import parallel as P  # noqa: E402


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(0.2, 1.0, (300, 3, 5)).astype(np.float32)


def reference_lif_noreset(x, beta):
    v, out = np.zeros(x.shape[1:], np.float64), []
    for x_t in x:
        v = beta * v + x_t
        out.append(v.copy())
    return np.stack(out)


@pytest.mark.parametrize("method", [P.lif_noreset_scan, P.lif_noreset_assoc, P.lif_noreset_fft])
def test_lif_noreset_methods_agree(x, method):
    want = reference_lif_noreset(x, 0.95)
    np.testing.assert_allclose(np.asarray(method(jnp.asarray(x), 0.95)), want, rtol=1e-4, atol=1e-4)


def test_psn_matches_definition(x):
    rng = np.random.default_rng(1)
    T = 40
    xs = x[:T]
    W = rng.normal(0, 0.3, (T, T)).astype(np.float32)
    b = rng.normal(0, 0.1, T).astype(np.float32)
    s, h = P.psn(jnp.asarray(xs), jnp.asarray(W), jnp.asarray(b))
    want = np.einsum("ts,sbn->tbn", np.tril(W), xs) + b[:, None, None]
    np.testing.assert_allclose(np.asarray(h), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(s), (want > 0).astype(np.float32))
    _, hm = P.masked_psn(jnp.asarray(xs), jnp.asarray(W), jnp.asarray(b), k=4)
    lag = np.arange(T)[:, None] - np.arange(T)[None, :]
    want_m = np.einsum("ts,sbn->tbn", W * ((lag >= 0) & (lag < 4)), xs) + b[:, None, None]
    np.testing.assert_allclose(np.asarray(hm), want_m, rtol=1e-4, atol=1e-4)


def test_sliding_psn_is_a_causal_filter(x):
    taps = np.array([0.5, -0.25, 0.125], np.float32)
    _, h = P.sliding_psn(jnp.asarray(x), jnp.asarray(taps), 0.1)
    want = 0.1 + sum(taps[j] * np.concatenate([np.zeros((j,) + x.shape[1:]), x[:len(x) - j]]) for j in range(3))
    np.testing.assert_allclose(np.asarray(h), want, rtol=1e-5, atol=1e-5)


def dsn_params(n=5, seed=2):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(0, 0.5, (4, n)).astype(np.float32)), jnp.asarray(rng.normal(1.5, 0.5, n).astype(np.float32))


@pytest.mark.parametrize("levels", [1, 4])
def test_dsn_parallel_equals_serial(x, levels):
    w, b = dsn_params()
    xs = jnp.asarray(x * 2)
    out_p, h_p = P.dsn_parallel(xs, w, b, tau=0.25, levels=levels)
    out_s, h_s = P.dsn_serial(xs, w, b, tau=0.25, levels=levels)
    np.testing.assert_allclose(np.asarray(h_p), np.asarray(h_s), rtol=1e-4, atol=1e-5)
    assert (np.asarray(out_p) != np.asarray(out_s)).mean() < 1e-3  # only values within rounding of a level
    assert 0 < np.asarray(out_p).mean() < levels
    if levels == 4:
        assert set(np.unique(np.asarray(out_p))) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_dsn_long_sequence_stays_finite_and_exact():
    """At T = 20k the product of all decays is far below float32's range; the log-space scan must
    neither underflow into NaN nor drift from the serial recurrence."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(0.5, 1.0, (20_000, 1, 4)).astype(np.float32))
    w, b = dsn_params(4)
    _, h_p = P.dsn_parallel(x, w, b)
    _, h_s = P.dsn_serial(x, w, b)
    log_a = P.dsn_decay_log(x, w, b, 0.25)
    assert float(log_a.sum(0).max()) < -200  # the cumulative product would be < 1e-87
    assert np.isfinite(np.asarray(h_p)).all()
    np.testing.assert_allclose(np.asarray(h_p), np.asarray(h_s), rtol=1e-3, atol=1e-4)


def test_dsn_gradients_flow(x):
    w, b = dsn_params()

    def loss(w, b):
        out, _ = P.dsn_parallel(jnp.asarray(x), w, b, levels=1)
        return out.mean()

    gw, gb = jax.grad(loss, argnums=(0, 1))(w, b)
    assert np.isfinite(np.asarray(gw)).all() and np.abs(np.asarray(gw)).sum() > 0


# ------------------------------------------------------------------------- PyTorch, same math
torch = pytest.importorskip("torch")


def test_torch_matches_jax(x):
    from snnbench.runners.torchmath import parallel as TP

    xt = torch.from_numpy(x)
    want = reference_lif_noreset(x, 0.95)
    for fn in (TP.lif_noreset_loop, TP.lif_noreset_fft, TP.lif_noreset_chunked):
        np.testing.assert_allclose(fn(xt, 0.95).numpy(), want, rtol=1e-4, atol=1e-4)
    w, b = dsn_params()
    wt, bt = torch.from_numpy(np.array(w)), torch.from_numpy(np.array(b))
    for levels in (1, 4):
        _, h_j = P.dsn_parallel(jnp.asarray(x), w, b, levels=levels)
        _, h_tp = TP.dsn_parallel(xt, wt, bt, levels=levels, chunk=32)
        _, h_ts = TP.dsn_serial(xt, wt, bt, levels=levels)
        np.testing.assert_allclose(h_tp.numpy(), np.asarray(h_j), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(h_ts.numpy(), np.asarray(h_j), rtol=1e-4, atol=1e-5)
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.3, (40, 40)).astype(np.float32)
    bias = rng.normal(0, 0.1, 40).astype(np.float32)
    _, h_j = P.masked_psn(jnp.asarray(x[:40]), jnp.asarray(W), jnp.asarray(bias), 5)
    _, h_t = TP.masked_psn(torch.from_numpy(x[:40]), torch.from_numpy(W), torch.from_numpy(bias), 5)
    np.testing.assert_allclose(h_t.numpy(), np.asarray(h_j), rtol=1e-4, atol=1e-4)
    taps = np.array([0.5, -0.25, 0.125], np.float32)
    _, h_j = P.sliding_psn(jnp.asarray(x), jnp.asarray(taps), 0.1)
    _, h_t = TP.sliding_psn(xt, torch.from_numpy(taps), 0.1)
    np.testing.assert_allclose(h_t.numpy(), np.asarray(h_j), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- in the runners and the harness
from snnbench.spec import parse_suite  # noqa: E402

NEURONS = [("lif_noreset", {"method": "assoc"}), ("lif_noreset", {"method": "fft"}), ("psn", {}),
           ("masked_psn", {"k": 8}), ("sliding_psn", {"k": 8}), ("dsn", {"levels": 1}), ("dsn", {"levels": 4})]


def parallel_case(kind, extra, T=48):
    net = {"neuron": {"beta": 0.9, **extra}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": 16}, {"type": kind}, {"type": "linear", "out": 16}, {"type": kind}]}
    return parse_suite({"suite": "p", "defaults": {"dataset": "random", "epochs": 0, "time_steps": T,
                                                   "channels": 12, "batch": 4}, "network": net,
                        "cases": [{"id": kind}]}, "p.yaml").cases[0]


@pytest.mark.parametrize("kind, extra", NEURONS)
def test_torch_parallel_neurons_pass_parity(kind, extra):
    from snnbench.harness import parity

    res = parity.compare(parallel_case(kind, extra), "torch", batch=4)
    assert res["status"] == "pass", parity.summary(res)


def test_adapters_without_parallel_neurons_refuse_them():
    from snnbench.runners import get_runner_class

    for name in ("snntorch", "norse", "spyx"):
        cls = get_runner_class(name)
        if cls.available().ok:
            ok = cls().supports(parallel_case("dsn", {}))
            assert not ok.ok and "dsn" in ok.reason


def test_activity_and_parallel_error_records():
    from snnbench.harness.measure import activity
    from snnbench.runners import get_runner_class
    from snnbench.spec import init_weights

    case = parallel_case("dsn", {"levels": 4}, T=64)
    recs = {}
    for name in ("reference", "torch"):
        r = get_runner_class(name)()
        r.build(case, "cpu", 0)
        r.set_weights(init_weights(case.network, 0))
        x = (np.random.default_rng(0).random((4, 64, 12)) < 0.3).astype(np.float32)
        activity(r, x, lambda metric, **kw: recs.__setitem__((name, metric), kw), r.forward(x))
        assert recs[(name, "parallel_error")]["value"] < 1e-3  # fraction of outputs that differ
        spikes = r.forward(x).spikes
        rate = recs[(name, "firing_rate")]
        assert rate["value"] == pytest.approx(float(np.mean([np.mean(s != 0) for s in spikes])))
        assert [la["events"] for la in rate["extra"]["layers"]] == pytest.approx([float(s.sum()) for s in spikes])
        assert 0 < rate["value"] < 1  # the layer fired, and not at every step


def test_cue_task_generator():
    from snnbench.data.cue import CLASSES, CUE_STEPS, make_cue_split

    d = make_cue_split(64, 128, 16, seed=1)
    x = d.dense()
    assert x.shape == (64, 128, 16) and set(np.unique(d.labels)) <= set(range(CLASSES))
    group = 16 // (2 * CLASSES)
    for i in range(8):  # during the cue, the labelled group is far busier than the others
        k = d.labels[i]
        cue = x[i, :CUE_STEPS, :CLASSES * group].reshape(CUE_STEPS, CLASSES, group).mean(axis=(0, 2))
        assert cue.argmax() == k
    longer = make_cue_split(64, 512, 16, seed=1)
    np.testing.assert_array_equal(longer.labels, d.labels)  # same seed: same classes at any length


def test_extrapolation_records_through_the_cli(tmp_path):
    import json
    import os
    import subprocess
    import sys

    import yaml

    suite = tmp_path / "x.yaml"
    suite.write_text(yaml.safe_dump({
        "suite": "x", "runners": ["reference", "torch"],
        "defaults": {"dataset": "cue", "time_steps": 64, "eval_time_steps": [128, 256], "epochs": 1, "batch": 16,
                     "channels": 16, "loss": "last", "train_samples": 64, "test_samples": 32},
        "timing": {"warmup": 1, "min_repeats": 2, "min_time_s": 0.0},
        "network": {"neuron": {"k": 4}, "surrogate": {"name": "superspike", "slope": 1.0},
                    "layers": [{"type": "linear", "out": 8}, {"type": "dsn"}, {"type": "linear", "out": 4},
                               {"type": "li"}]},
        "cases": [{"id": "dsn"}, {"id": "psn", "network": {"layers": [{"type": "linear", "out": 8}, {"type": "psn"},
                                                                   {"type": "linear", "out": 4}, {"type": "li"}]}}],
    }))
    p = subprocess.run([sys.executable, "-m", "snnbench", "run", "--suite", str(suite), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = (tmp_path / "r").iterdir()
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    ext = [r for r in recs if r["metric"] == "extrap_acc"]
    dsn = {(r["runner"], r["extra"]["T"]): r for r in ext if r["case"] == "dsn"}
    assert set(dsn) == {(rn, t) for rn in ("reference", "torch") for t in (64, 128, 256)}
    assert all(r["status"] == "ok" for r in dsn.values())
    for runner in ("reference", "torch"):  # at the training length, step by step = the parallel evaluation
        (acc,) = [r for r in recs if r["metric"] == "test_acc" and r["case"] == "dsn" and r["runner"] == runner]
        assert abs(dsn[(runner, 64)]["value"] - acc["value"]) <= 1 / 32, (runner, dsn[(runner, 64)], acc)
    psn = [r for r in ext if r["case"] == "psn" and r["extra"]["T"] != 64]
    assert psn and all(r["status"] == "skipped" and "T, T" in r["reason"] for r in psn)
    out = tmp_path / "x.html"
    assert subprocess.run([sys.executable, "-m", "snnbench", "report", str(run_dir), "-o", str(out)],
                          capture_output=True, timeout=300).returncode == 0
    assert "Accuracy against length" in out.read_text()
