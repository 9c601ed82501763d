"""Precision (``spec.PRECISION``): the dtype each runner really computes in, parity per dtype, loss
scaling that skips an overflowing step, and a mixed-precision training run through the CLI.

A runner that computes in float32 when asked for bfloat16 would sit inside the low-precision parity
gate's noise floor, so the dtype of its intermediates is checked here directly."""

import json
from dataclasses import replace

import numpy as np
import pytest

from snnbench.harness import parity
from snnbench.runners import get_runner_class, registry
from snnbench.spec import DTYPES, LOSS_SCALE_START, init_weights

from .conftest import built
from .test_adapters import make_case
from .test_cli import snnbench

LOW = [d for d in DTYPES if d != "float32"]
# the compiled twins run the same modules as their eager runners: the eager ones stand for them here
EAGER = [n for n in sorted(registry()) if not n.endswith("-compile")]


def at(case, dtype):
    return replace(case, spec=replace(case.spec, dtype=dtype))


def spiking_input(case, rate=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((case.spec.batch, case.spec.time_steps, case.network.inputs)) < rate).astype(np.float32)
    return x, rng.integers(0, case.network.outputs, case.spec.batch)


@pytest.mark.parametrize("name", EAGER)
@pytest.mark.parametrize("dtype", LOW)
def test_runners_compute_in_the_dtype_they_claim(name, dtype):
    """A runner listing a low dtype computes its spikes (so its membranes) in it, keeps float32
    weights; one that does not list it says why, and that reason is measured: forced to run, its
    framework's neurons come out float32."""
    cls = get_runner_class(name)
    if not cls.available().ok:
        pytest.skip(cls.available().reason)
    case = at(make_case(T=16), dtype)
    if not (expressed := cls().supports(make_case(T=16))).ok:  # a runner of other networks (long-sequence neurons)
        pytest.skip(f"{name} does not express the test network: {expressed.reason}")
    claims = dtype in cls.dtypes
    if not claims:
        assert not cls().supports(case).ok and cls.dtype_refusal, f"{name} refuses {dtype} without a reason"
        cls = type(f"Forced{cls.__name__}", (cls,), {"dtypes": frozenset(DTYPES)})
    runner = cls()
    runner.build(case, "cpu", 0)
    runner.set_weights(init_weights(case.network, 0))
    x, _ = spiking_input(case)
    out = runner.forward(x)
    if claims:
        assert out.dtype == dtype, f"{name} asked for {dtype} computed its spikes in {out.dtype}"
        assert runner.weight_dtypes() == ["float32"]  # mixed precision: float32 master weights
        assert out.spikes[0].dtype == np.float32 and out.spikes[0].any()  # handed over as float32 NumPy
    else:
        assert out.dtype == "float32", (f"{name}'s framework now computes in {out.dtype} at {dtype}: its refusal "
                                        f"({cls.dtype_refusal}) is stale, enable the dtype and test it")


# SpikingJelly at float16 is left out: its LIF decays by ``v - v / tau``, so its float16 decay is 1 - f16(1 / tau)
# = 0.900024 where the reference's is f16(0.9) = 0.899902, a systematic difference that the gate measured at 3-5x
# the reference's rounding floor (beyond the 4x bound on 2 of 6 inputs): a finding the gate reports, not a pass.
@pytest.mark.parametrize("name, expected, dtype", [(n, "pass", d) for n in ("torch", "norse") for d in LOW]
                         + [("spikingjelly", "deviates", "bfloat16")])
def test_parity_per_dtype_on_the_shd_network(name, expected, dtype):
    """Against the reference at the same dtype, within four times the dtype's own rounding floor; the
    flip rate is reported (spikingjelly's reset deviation is proven at that dtype too)."""
    if not get_runner_class(name).available().ok:
        pytest.skip(get_runner_class(name).available().reason)
    res = parity.compare(at(make_case(T=32), dtype), name, batch=8)
    assert res["status"] == expected, parity.summary(res)
    tol = res["tolerances"]
    assert tol["flips"] >= 8 * parity.EPS[dtype] and tol["grad_cosine"] < parity.FLOAT32.grad_cosine
    assert 0 <= res["flip_rate"] <= tol["flips"] or expected == "deviates"
    assert "%)" in parity.summary(res)  # the flip rate is in the one-line summary


@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_gate_still_fails_a_different_network(dtype):
    """The widened tolerances still catch a semantic difference: a zero reset against a subtract
    reset, both at ``dtype``, differ by far more than rounding."""
    case = at(make_case(T=32), dtype)
    zero = at(make_case(T=32, reset="zero"), dtype)
    ref = built("reference", case)
    chosen = parity.conclusive_input(ref, case, 8, 0)
    other = built("reference", zero)
    other.set_weights(chosen["weights"])
    floor = parity._noise_floor(ref, case, "reference", chosen, "cpu", 0)
    assert 0 < floor["flip_rate"] < 0.5  # rounding alone flips some spikes at a low dtype
    verdict = parity.agreement(ref, other, case, chosen["x"], chosen["y"], parity.tolerances(dtype, floor))
    assert not verdict["agrees"], parity.failed_checks(verdict)


def test_float32_tolerances_are_the_exact_ones():
    assert parity.tolerances("float32") == parity.FLOAT32
    # without a measured floor, the minimums: proportional to each dtype's epsilon
    bf16, f16 = parity.tolerances("bfloat16"), parity.tolerances("float16")
    assert bf16.flips == 8 * 2.0 ** -7 and f16.flips == 8 * 2.0 ** -10 and bf16.readout > f16.readout > 1e-4


def _overflowing(runner, case):
    """Weights 1e4x: the first layer's current passes float16's largest value (65504)."""
    weights = init_weights(case.network, 0)
    runner.set_weights({k: v * np.float32(1e4) if k == "layers.0.weight" else v for k, v in weights.items()})


def test_float16_loss_scaling_skips_an_overflowing_step_jax():
    import jax
    import jax.numpy as jnp

    from snnbench.data.staging import pack

    case = at(make_case(T=16), "float16")
    runner = built("reference", case)
    x, y = spiking_input(case)
    packed, labels = jnp.asarray(pack(x)), jnp.asarray(y, jnp.int32)
    step = jax.jit(runner._make_step())
    idx, key = jnp.arange(case.spec.batch), jax.random.PRNGKey(0)

    params, opt_state = runner.params, runner.opt_state  # a finite step: weights move, the scale stays
    new_params, (_, scale), loss, _ = step(params, opt_state, packed, labels, idx, key)
    assert np.isfinite(float(loss)) and float(scale["loss_scale"]) == LOSS_SCALE_START
    assert not np.array_equal(np.asarray(new_params["layer0"]["w"]), np.asarray(params["layer0"]["w"]))

    _overflowing(runner, case)
    params, opt_state = runner.params, runner.opt_state
    new_params, (_, scale), loss, _ = step(params, opt_state, packed, labels, idx, key)
    # the forward's currents overflow (the spikes, 0/1, keep the loss finite); the backward's do not survive
    assert float(scale["loss_scale"]) == LOSS_SCALE_START / 2  # the scale halved ...
    for a, b in zip(jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # ... and the step skipped


def test_float16_loss_scaling_skips_an_overflowing_step_torch():
    import torch

    case = at(make_case(T=16), "float16")
    runner = built("torch", case)
    x, y = spiking_input(case)
    batch = runner._to_device(x, y)
    before = {k: p.detach().clone() for k, p in runner.model.named_parameters()}
    runner.train_step(*batch)
    assert runner.scaler.get_scale() == LOSS_SCALE_START
    assert not torch.equal(before["layers.0.weight"], runner.model.layers[0].weight)

    _overflowing(runner, case)
    before = {k: p.detach().clone() for k, p in runner.model.named_parameters()}
    runner.train_step(*batch)
    assert runner.scaler.get_scale() == LOSS_SCALE_START / 2  # non-finite gradients: the scale halved ...
    for k, p in runner.model.named_parameters():
        assert torch.equal(before[k], p), f"{k} changed on an overflowing step"  # ... and the step skipped


def test_mixed_precision_quick_training_run(tmp_path, small_shd):
    """bfloat16 and float16 training through the CLI: every job ok, losses finite, the records say
    what the runner really computed in, and the report has its precision section."""
    import yaml

    from .conftest import tiny_network_yaml

    pytest.importorskip("torch")
    suite = tmp_path / "prec.yaml"
    suite.write_text(yaml.safe_dump({
        "suite": "prec", "runners": ["reference", "torch", "snntorch"],
        "defaults": {"time_steps": 32, "channels": 32, "batch": 32, "epochs": 2, "lr": 0.01},
        "timing": {"warmup": 1, "min_repeats": 2, "min_time_s": 0.0},  # what is timed is not checked here
        "network": tiny_network_yaml(surrogate="superspike"),
        "cases": [{"id": "p", "sweep": {"dtype": list(DTYPES)}}],
        "quick": {"epochs": 2, "train_samples": 128, "test_samples": 64}}))
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(suite), "--quick", "--data-dir", str(small_shd), "--out", str(out))
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    epochs = {(r["runner"], r["dtype"]): r for r in records if r["metric"] == "epoch_s"}
    for runner in ("reference", "torch"):
        for dtype in DTYPES:
            r = epochs[(runner, dtype)]
            assert r["status"] == "ok", r
            assert r["precision"]["compute_dtype"] == dtype and r["precision"]["weight_dtypes"] == ["float32"]
            assert all(np.isfinite(c["train_loss"]) for c in r["extra"]["curve"])
        assert epochs[(runner, "float16")]["precision"]["loss_scaling"].startswith("dynamic")
    skipped = [r for r in records if r["runner"] == "snntorch" and r.get("dtype") == "bfloat16"]
    assert skipped and skipped[0]["status"] == "skipped" and "float32" in skipped[0]["reason"]
    gates = {(r["runner"], r["dtype"]): r for r in records if r["metric"] == "parity"}
    assert gates[("torch", "bfloat16")]["value"] == "pass"
    html = (tmp_path / "reports" / f"{run_dir.name}.html").read_text()
    assert "<h3>Precision</h3>" in html and "bfloat16" in html
    assert 'alt="precision speed-up and accuracy"' in html  # the plot beside the table
