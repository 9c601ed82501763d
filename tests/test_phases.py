"""Every second of a job accounted: the phase clock, a job's breakdown, the run's time budget, its report
section, and the parity gate's reference in a child process."""

import time

import numpy as np
import pytest

from snnbench.harness.phases import PHASES, PhaseClock, job_phases
from snnbench.results.timebudget import budget_lines, grouped, time_budget, timed_samples_s


def test_nested_phases_are_exclusive_and_add_up_to_the_clock():
    clock = PhaseClock()
    t0 = time.perf_counter()
    with clock.phase("training"):
        time.sleep(0.02)
        with clock.phase("evaluation"):
            time.sleep(0.03)
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    assert clock.seconds["evaluation"] == pytest.approx(0.03, abs=0.02)
    assert clock.seconds["training"] == pytest.approx(0.03, abs=0.02)
    assert clock.total() == pytest.approx(wall, abs=1e-3)


def test_an_unknown_phase_name_is_refused():
    with pytest.raises(ValueError, match="unknown phase 'trainig'"):
        with PhaseClock().phase("trainig"):
            pass


def test_job_phases_adds_start_up_other_workers_and_the_rest():
    out = job_phases({"import": 2.0, "training": 5.0}, worker_wall_s=8.0, extra={"parity": 3.0, "memory phases": 0.0},
                     job_wall_s=11.5)
    assert out == {"parity": 3.0, "start-up": 1.0, "import": 2.0, "training": 5.0, "other": 0.5}
    assert list(out) == [p for p in PHASES if p in out]  # in the fixed order


def _step_record(runner, samples_ms, per_call_ms, k, floor_ms):
    return {"runner": runner, "case": "c", "metric": "fwd_ms", "status": "ok", "samples": samples_ms,
            "extra": {"steps_per_sample": k, "per_call": {"samples": per_call_ms}, "floor": {"samples_ms": floor_ms}}}


def test_time_budget_sums_jobs_per_runner_and_counts_what_lies_between_them():
    records = [
        {"runner": "a", "case": "c", "metric": "job", "job_wall_s": 10.0,
         "phases": {"start-up": 1.0, "compile": 2.0, "training": 4.0, "evaluation": 1.0, "fwd timing": 2.0}},
        _step_record("a", [100.0, 100.0], [150.0], 4, [50.0]),  # 0.8 s per-step + 0.15 + 0.05
        {"runner": "b", "case": "c", "metric": "job", "job_wall_s": 6.0,
         "phases": {"parity": 2.0, "training": 3.0, "other": 1.0}},
    ]
    budget = time_budget(records, {"timeline": [{"before_jobs_s": 0.5, "jobs_s": 17.0}]})
    assert timed_samples_s(records) == pytest.approx(1.0)
    a, b = budget["runners"]
    assert (a["runner"], a["wall_s"], a["measured_s"]) == ("a", 10.0, pytest.approx(8.0))
    assert b["measured_s"] == 3.0 and b["overhead"] == 2.0
    run = budget["run"]
    assert run["phases"]["between jobs"] == pytest.approx(1.0) and run["phases"]["before jobs"] == 0.5
    assert run["wall_s"] == pytest.approx(17.5) and run["measured_s"] == pytest.approx(11.0)
    assert sum(grouped(run["phases"]).values()) == pytest.approx(run["wall_s"])
    lines = budget_lines(budget)
    assert lines[0].startswith("where the time went: 0.3 min") and lines[2].startswith("  a: 10 s = training 4 s")


def test_a_run_without_phases_has_no_budget_and_no_section(tmp_path):
    from snnbench.report.load import Run
    from snnbench.report.timespent import time_section

    records = [{"runner": "a", "case": "c", "metric": "job", "value": 3.0}]
    assert time_budget(records) is None
    assert time_section(Run(tmp_path, {}, records), "x") == ""


def test_the_report_draws_a_stacked_bar_per_runner(tmp_path):
    from snnbench.report.load import Run
    from snnbench.report.timespent import time_section

    records = [{"runner": r, "case": "c", "metric": "job", "job_wall_s": w, "phases": {"training": w / 2, "parity": w / 2}}
               for r, w in (("a", 10.0), ("b", 4.0))]
    html = time_section(Run(tmp_path, {"timeline": [{"before_jobs_s": 0, "jobs_s": 14.0}]}, records), "run1")
    assert "Where the time went" in html and html.count('data-group="training"') == 3  # the run, a, b
    assert "wall / measurement 2.00x" in html


def test_the_gate_with_its_reference_in_a_child_process_equals_the_gate_in_one_process():
    pytest.importorskip("torch")
    from snnbench.harness.parity import compare
    from snnbench.harness.parity_remote import ReferenceProcess
    from snnbench.spec import parse_suite
    from tests.conftest import built, tiny_network_yaml

    case = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 16, "batch": 4},
                        "network": tiny_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    local = compare(case, "torch", batch=4)
    runner = built("torch", case)
    with ReferenceProcess() as reference:
        remote = compare(case, "torch", batch=4, other=runner, build_reference=reference.build)
        child = reference.proc
    assert not child.is_alive()
    assert remote["status"] == local["status"] == "pass"
    assert remote["loss_ref"] == local["loss_ref"] and remote["grads"].keys() == local["grads"].keys()
    for k in local["grads"]:
        assert remote["grads"][k]["cosine"] == pytest.approx(local["grads"][k]["cosine"], abs=1e-12)
    assert np.isfinite(remote["readout_max_rel_err"])


def test_the_prefetched_reference_gives_the_gate_the_same_input_and_verdict():
    """The child builds the reference and chooses the input while the worker imports; the gate then takes
    them, and its verdict and figures are those of the gate that does everything itself."""
    pytest.importorskip("torch")
    from snnbench.harness.parity import compare
    from snnbench.harness.parity_remote import ReferenceProcess
    from snnbench.spec import parse_suite
    from tests.conftest import built, tiny_network_yaml

    case = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 16, "batch": 4},
                        "network": tiny_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    local = compare(case, "torch", batch=4)
    with ReferenceProcess() as reference:
        reference.prefetch("reference", case, "cpu", 0, 4)
        runner = built("torch", case)
        reference.ready()
        remote = compare(case, "torch", batch=4, other=runner, build_reference=reference.build,
                         choose=reference.conclusive_input)
        assert reference.request("build", "reference", case, "cpu", 0) == 1  # the prefetched one was taken
    assert remote["status"] == local["status"] == "pass"
    assert remote["input"] == local["input"] and remote["loss_ref"] == local["loss_ref"]
    for k in local["grads"]:
        assert remote["grads"][k]["cosine"] == pytest.approx(local["grads"][k]["cosine"], abs=1e-12)


def test_a_reference_process_still_working_on_a_prefetch_is_killed_at_once_on_close():
    from snnbench.harness.parity_remote import ReferenceProcess
    from snnbench.spec import parse_suite
    from tests.conftest import tiny_network_yaml

    case = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 16, "batch": 4},
                        "network": tiny_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    reference = ReferenceProcess()
    reference.prefetch("reference", case, "cpu", 0, 4)  # the child is still importing JAX
    t0 = time.perf_counter()
    reference.close()
    assert not reference.proc.is_alive() and time.perf_counter() - t0 < 5.0
    reference.close()  # twice is harmless


def test_the_consistency_probes_count_as_timed_samples():
    records = [{**_step_record("a", [10.0], [], 4, []), "metric": "fwdbwd_ms"},  # K = 4 steps per sample
               {"runner": "a", "case": "c", "metric": "epoch_s", "status": "ok",
                "step_consistency": {"fwdbwd_samples_ms": [100.0, 150.0]}}]
    assert timed_samples_s(records) == pytest.approx(0.04 + 4 * 0.25)


def test_a_reference_process_that_died_during_its_prefetch_fails_the_gate_not_the_job():
    from snnbench.harness.parity_remote import ReferenceProcess, RemoteError
    from snnbench.spec import parse_suite
    from tests.conftest import tiny_network_yaml

    case = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 16, "batch": 4},
                        "network": tiny_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    with ReferenceProcess() as reference:
        reference.prefetch("reference", case, "cpu", 0, 4)
        reference.proc.kill()
        reference.ready()  # returns: what is measured next must not fail with it
        with pytest.raises((RemoteError, OSError)):
            reference.build("reference", case, "cpu", 0)


def _tiny_case(**defaults):
    from snnbench.spec import parse_suite
    from tests.conftest import tiny_network_yaml

    return parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 16, "batch": 4, **defaults},
                        "network": tiny_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def test_a_remembered_runner_computes_each_result_once_per_weights_and_input():
    from snnbench.harness.parity import Remembered

    calls = []

    class Stub:
        def set_weights(self, w):
            calls.append("set")

        def forward(self, x):
            calls.append("fwd")
            return float(x.sum())

        def forward_backward(self, x, y):
            calls.append("fb")
            return float(x.sum() + y.sum())

    r = Remembered(Stub())
    x, y, w = np.ones((2, 3), np.float32), np.arange(2), {"a": np.zeros(3, np.float32)}
    r.set_weights(w)
    assert r.forward(x) == r.forward(x.copy()) == 6.0 and r.forward_backward(x, y) == r.forward_backward(x, y)
    r.set_weights({"a": np.zeros(3, np.float32)})  # the same weights again: the results stand
    r.forward(x)
    assert calls == ["set", "fwd", "fb"]
    r.set_weights({"a": np.ones(3, np.float32)})  # other weights: computed again
    r.forward(x)
    r.forward(2 * x)  # another input
    assert calls == ["set", "fwd", "fb", "set", "fwd", "fwd"]


def test_the_prefetched_deviated_reference_is_the_one_the_gate_proves_a_deviation_against():
    """A runner declaring deviations: the child builds the deviated reference and runs it on the chosen
    input during the prefetch; the gate takes it, and its verdict and proof are those of the gate alone."""
    pytest.importorskip("torch")
    from snnbench.harness.parity import compare, with_deviations
    from snnbench.harness.parity_remote import ReferenceProcess
    from tests.conftest import built

    case = _tiny_case()
    runner = built("spikingjelly", case)
    declared = runner.deviations(case)
    assert declared  # SpikingJelly's soft reset: the case below proves it
    local = compare(case, "spikingjelly", batch=4)
    with ReferenceProcess() as reference:
        reference.prefetch("reference", case, "cpu", 0, 4, with_deviations(case, declared))
        reference.ready()
        remote = compare(case, "spikingjelly", batch=4, other=runner, build_reference=reference.build,
                         choose=reference.conclusive_input)
        assert reference.request("build", "reference", case, "cpu", 0) == 2  # both prefetched builds were taken
    assert remote["status"] == local["status"] == "deviates"
    assert remote["proof"]["loss_ref"] == local["proof"]["loss_ref"]
    for k in local["proof"]["grads"]:
        assert remote["proof"]["grads"][k]["cosine"] == pytest.approx(local["proof"]["grads"][k]["cosine"], abs=1e-12)


def test_a_jax_runner_compiles_its_k_step_programs_ahead_and_is_timed_without_a_warm_up_call():
    from snnbench.harness import measure
    from snnbench.harness.timing import RepeatPolicy
    from tests.conftest import built

    case = _tiny_case(dataset="random", epochs=0)
    runner = built("reference", case)
    xs, ys = measure.timing_batches(case, None, 3)
    batches = runner.prepare_batches(xs, ys)
    jitted = runner.fwdbwd_steps(batches)
    assert runner.precompile_steps(batches, "fwdbwd") and runner.precompile_steps(batches, "fwd")
    ahead = runner.fwdbwd_steps(batches)
    import jax

    for a, b in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(ahead), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))  # the same program
    steps = measure.time_steps(runner, case, xs, ys, RepeatPolicy(warmup=1, min_repeats=2, min_time_s=0.0))
    for metric in ("fwd_ms", "fwdbwd_ms"):
        assert steps[metric]["per_step"].warmup_seconds == [] and len(steps[metric]["per_step"].seconds) == 2
        assert len(steps[metric]["per_call"].warmup_seconds) == 1  # the per-call step still warms up


def test_a_case_a_runner_cannot_express_is_skipped_before_its_framework_is_imported(monkeypatch):
    from snnbench.harness import execute
    from snnbench.runners import get_runner_class

    cls = get_runner_class("snntorch-parallel")  # linear + lif_noreset pairs only; the case has lif and li

    def imports(_cls):
        raise AssertionError("available() imports the framework; it must not be asked")

    monkeypatch.setattr(cls, "available", classmethod(imports))
    case = _tiny_case()
    records = []
    job = {"suite": "t", "runner": "snntorch-parallel", "device": "cpu", "case": {}}
    out = execute._prepare(job, case, execute.base_record(job, case),
                           lambda metric, status, reason: records.append((metric, status, reason)), ["import"])
    assert out is None and records[0][:2] == ("run", "skipped") and "not expressed" in records[0][2]
