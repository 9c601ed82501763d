"""Measurement integrity: what each figure means, checked where it can go wrong. A compiled runner
compiles to one graph per mode; memory is per phase; the parity gate proves declared deviations and
refuses vacuous inputs; every runner trains on the same batches in the same order."""

from dataclasses import replace

import numpy as np
import pytest

from snnbench.harness import parity
from snnbench.runners import get_runner_class, registry
from snnbench.runners.base import Deviation
from snnbench.spec import init_weights, with_spiking_layers

from . import fake_runners
from .test_adapters import make_case, need
from .test_harness import records_of, run_cli, write_suite


# ------------------------------------------------------------------------------ torch.compile
def test_torch_compile_is_one_graph_per_mode():
    need("torch-compile")
    case = make_case(T=24)  # a shape no other test compiles: dynamo's cache is per process
    r = get_runner_class("torch-compile")()
    r.build(case, "cpu", 0)
    x, y = parity.parity_input(case, 4, 0)
    r.prepare_batch(x, y)  # compiles the training step and the evaluation forward
    extra = r.info().extra
    assert extra["graph_breaks"] == 0 and extra["graphs"] == 2 and extra["recompiles"] == 0, extra


def test_a_graph_break_fails_the_compiled_runner(monkeypatch):
    need("torch-compile")
    import torch

    from snnbench.runners.torch_runner import TorchCompileRunner

    class Breaking(TorchCompileRunner):
        name = "breaking"

        def make_model(self, case):
            model = super().make_model(case)
            inner = model.forward

            def forward(x):
                torch._dynamo.graph_break()  # what a class defined in the forward pass used to cause
                return inner(x)

            model.forward = forward
            return model

    monkeypatch.setitem(registry(), "breaking", Breaking)
    r = Breaking()
    r.build(make_case(T=8), "cpu", 0)
    x, y = parity.parity_input(make_case(T=8), 4, 0)
    with pytest.raises(Exception, match="(?i)graph break"):
        r.prepare_batch(x, y)


# --------------------------------------------------------------------------------- memory
def test_memory_is_measured_per_phase(tmp_path, small_shd):
    suite = write_suite(tmp_path / "s.yaml", ["hog"], ["fake-phase-hog"])
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr + p.stdout
    _, recs = records_of(tmp_path / "r")
    by = {r["metric"]: r for r in recs}
    fwd, fwdbwd, train = by["fwd_ms"]["memory"], by["fwdbwd_ms"]["memory"], by["epoch_s"]["memory"]
    assert (fwd["phase"], fwdbwd["phase"], train["phase"]) == ("fwd", "fwdbwd", "train")
    assert fwd["host_delta_bytes"] >= 0.9 * fake_runners.HOG_BYTES, fwd
    # each phase starts from a reset peak: the 200 MiB of the forward do not show in the phases after it
    for later in (fwdbwd, train):
        assert later["host_delta_bytes"] < 0.25 * fake_runners.HOG_BYTES, later
        assert later["host_peak_bytes"] < fwd["host_peak_bytes"] - 0.5 * fake_runners.HOG_BYTES, later
    assert "clear_refs" in fwd["host_source"] and fwd["device_peak_bytes"] is None


def test_a_peak_that_cannot_be_reset_is_measured_in_a_worker_per_phase(tmp_path, small_shd):
    suite = write_suite(tmp_path / "s.yaml", ["dev"], ["fake-no-reset"])
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr + p.stdout
    run_dir, recs = records_of(tmp_path / "r")
    by = {r["metric"]: r for r in recs if r["metric"] != "memory"}
    assert by["fwd_ms"]["memory"]["device_pending"] and by["fwd_ms"]["memory"]["device_peak_bytes"] is None
    probes = {r["extra"]["phase"]: r for r in recs if r["metric"] == "memory"}
    assert set(probes) == {"fwd", "fwdbwd", "train"}
    assert all(r["status"] == "ok" and r["value"] == fake_runners.DEVICE_PEAK for r in probes.values())
    assert "ran only the train phase" in probes["train"]["extra"]["source"]
    assert (run_dir / "logs" / "dev--fake-no-reset--memory-train.log").exists()
    from snnbench.results.summary import summary_rows

    (row,) = summary_rows(recs)
    assert row["memory"]["fwdbwd"]["device_peak_bytes"] == fake_runners.DEVICE_PEAK
    assert by["job"]["status"] == "ok"


# ----------------------------------------------------------------------------- parity gate
def _register(monkeypatch, cls):
    monkeypatch.setitem(registry(), cls.name, cls)
    return cls.name


def test_a_false_declared_deviation_fails(monkeypatch):
    """Declaring a deviation is not enough: the reference configured with it must then match."""
    need("torch")
    from snnbench.runners.torch_runner import TorchRunner

    class Liar(TorchRunner):
        name = "liar"

        def make_model(self, case):  # really: another threshold
            layers = tuple(replace(la, threshold=0.9) if la.spiking else la for la in case.network.layers)
            return super().make_model(replace(case, network=replace(case.network, layers=layers)))

        def deviations(self, case):
            return [Deviation("reset not detached", lambda c: with_spiking_layers(c, detach_reset=False))]

    res = parity.compare(make_case(T=32), _register(monkeypatch, Liar), batch=8)
    assert res["status"] == "fail" and "do not account for the difference" in res["reason"], parity.summary(res)
    assert not res["proof"]["agrees"] and sum(s["flips"] for s in res["proof"]["spikes"]) > 0


def test_a_true_declared_deviation_is_proven(monkeypatch):
    """A runner that really fires on v_{t-1} with an attached reset, and says so: ``deviates``, with
    the proof (the reference configured that way) inside every tolerance."""
    need("torch")
    from snnbench.runners.torch_runner import TorchRunner

    class Late(TorchRunner):
        name = "late"

        def make_model(self, case):
            return super().make_model(with_spiking_layers(case, spike_from="previous", detach_reset=False))

        def deviations(self, case):
            return [Deviation("fires on v_{t-1}", lambda c: with_spiking_layers(c, spike_from="previous")),
                    Deviation("reset attached", lambda c: with_spiking_layers(c, detach_reset=False))]

    res = parity.compare(make_case(T=32), _register(monkeypatch, Late), batch=8)
    assert res["status"] == "deviates", parity.summary(res)
    assert not res["agrees"] and res["min_grad_cosine"] < 0.99  # it is far from the canonical network
    proof = res["proof"]
    assert proof["agrees"] and proof["min_grad_cosine"] >= 0.999 and sum(s["flips"] for s in proof["spikes"]) == 0
    assert "proven" in parity.summary(res)


def test_spyx_is_proven_against_the_reference_with_its_deviations():
    """Spyx's gradients included: against the reference firing on v_{t-1} with an attached reset."""
    need("spyx")
    res = parity.compare(make_case(T=32), "spyx", batch=8)
    assert res["status"] == "deviates", parity.summary(res)
    assert res["min_grad_cosine"] < 0.99  # far from canonical ...
    proof = res["proof"]  # ... and exact against the reference configured its way
    assert proof["min_grad_cosine"] >= 0.999 and proof["max_grad_norm_rel_err"] <= 1e-3
    assert proof["loss_rel_err"] <= 1e-5 and sum(s["flips"] for s in proof["spikes"]) == 0


def test_a_silent_network_is_inconclusive():
    need("torch")
    case = make_case(T=16, threshold=1e6)  # no input and no weight gain makes it fire
    res = parity.compare(case, "torch", batch=4)
    assert res["status"] == "inconclusive" and "silent" in res["reason"], parity.summary(res)


def test_all_zero_gradients_are_inconclusive():
    need("torch")
    case = make_case(T=16, surrogate="boxcar", slope=1e9)  # a surrogate window nothing falls into
    res = parity.compare(case, "torch", batch=4)
    assert res["status"] == "inconclusive" and "all-zero gradients" in res["reason"], parity.summary(res)


def test_the_gate_picks_an_input_that_makes_every_layer_fire():
    need("torch")
    case = make_case(T=16, threshold=4.0)  # silent at the default input and weights
    res = parity.compare(case, "torch", batch=8)
    assert res["status"] == "pass", parity.summary(res)
    assert res["input"]["gain"] > 1 or res["input"]["rate"] > 0.15
    assert all(0 < r < 1 for r in res["input"]["layer_rates"])


# --------------------------------------------------------------------------- same training
@pytest.mark.parametrize("name", ["torch", "snntorch", "norse", "spyx"])
def test_one_epoch_trains_identically_to_the_reference(name):
    """Same batches in the same order (one permutation per epoch from the seed), same Adam: after
    an epoch the weights agree. Spyx against the reference configured with its deviations."""
    need(name)
    from snnbench.data.staging import SpikeDataset, pack

    case = make_case(T=16)
    rng = np.random.default_rng(0)
    n = 4 * case.spec.batch
    dense = (rng.random((n, 16, case.network.inputs)) < 0.15).astype(np.uint8)
    data = SpikeDataset(pack(dense), rng.integers(0, 20, n).astype(np.int32), 16)
    result = {}
    for runner, c in ((name, case), ("reference", parity.deviated_case(case, name))):
        r = get_runner_class(runner)()
        r.build(c, "cpu", 0)
        r.set_weights(init_weights(c.network, 0))
        r.stage(data, data)
        r.compile()
        loss = r.train_epoch(2).loss
        result[runner] = (loss, r.get_weights())
    assert result[name][0] == pytest.approx(result["reference"][0], rel=1e-5)
    for k, v in result["reference"][1].items():
        np.testing.assert_allclose(result[name][1][k], v, atol=2e-6, err_msg=k)
    assert any(np.abs(v - init_weights(case.network, 0)[k]).max() > 1e-3 for k, v in result["reference"][1].items())
