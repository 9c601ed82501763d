"""The ``on`` suite (Open Neuromorphic's chart): it loads and expands to the chart's workload and its
swapped-axes twin, quick and full; a case's ``runners:`` restricts its jobs; the publish profiles run it."""

import pytest

from snnbench.errors import SnnbenchError
from snnbench.spec import load_suite, parse_suite


def by_id(suite):
    return {c.id: c for c in suite.cases}


def test_full_suite_is_the_chart_workload_and_its_swapped_axes():
    suite = load_suite("on")
    assert suite.name == "on"  # quoted in the file: a bare `on` is YAML 1.1's true
    cases = by_id(suite)
    assert set(cases) == {f"on-n{n}" for n in (4096, 8192, 16384)} | {f"on-n{n}-chart-axes" for n in (4096, 8192, 16384)}
    for n in (4096, 8192, 16384):
        chart, swapped = cases[f"on-n{n}"], cases[f"on-n{n}-chart-axes"]
        assert (chart.spec.batch, chart.spec.time_steps) == (16, 500)
        assert (swapped.spec.batch, swapped.spec.time_steps) == (500, 16)  # what Spyx really ran in the chart
        assert chart.spec.batch * chart.spec.time_steps == swapped.spec.batch * swapped.spec.time_steps
        for case in (chart, swapped):
            assert case.network.inputs == n and case.network.sizes() == [n, n]  # Linear(n, n) + LIF
            assert case.spec.dataset == "random" and case.spec.epochs == 0
        assert chart.spec.runners == () and set(swapped.spec.runners) == {"spyx", "reference"}
        assert (chart.spec.group, swapped.spec.group) == ("on", "on-chart-axes")


def test_one_neuron_for_every_case_and_runner():
    for quick in (False, True):
        neurons = {c.network.layers[1] for c in load_suite("on", quick=quick).cases}
        assert len(neurons) == 1  # the neuron stated once, the same everywhere
        (lif,) = neurons
        assert (lif.type, lif.beta, lif.threshold, lif.reset, lif.detach_reset) == ("lif", 0.9, 1.0, "subtract", True)
        assert {c.network.surrogate for c in load_suite("on", quick=quick).cases} == {
            load_suite("on").cases[0].network.surrogate}


def test_quick_is_a_cpu_subset_with_its_swapped_twin():
    cases = by_id(load_suite("on", quick=True))
    assert set(cases) == {"on-n512-T100", "on-n1024-T100", "on-n512-T100-chart-axes", "on-n1024-T100-chart-axes"}
    for n in (512, 1024):
        assert (cases[f"on-n{n}-T100"].spec.batch, cases[f"on-n{n}-T100"].spec.time_steps) == (16, 100)
        assert (cases[f"on-n{n}-T100-chart-axes"].spec.batch, cases[f"on-n{n}-T100-chart-axes"].spec.time_steps) == (100, 16)


def test_a_case_with_runners_runs_only_those():
    from snnbench.harness.run import plan

    suite = load_suite("on", quick=True)
    jobs = plan(suite, ["reference", "spyx", "snntorch"], None, None, auto_device="cpu")
    swapped = {r for c, r in jobs if c.id.endswith("chart-axes")}
    assert swapped == {"reference", "spyx"}
    assert {r for c, r in jobs if c.id == "on-n512-T100"} == {"reference", "spyx", "snntorch"}


@pytest.mark.parametrize("runners, error", [(["spyx", "spyx"], "named twice"), ("spyx", "a list of names"),
                                            ([""], "a list of names")])
def test_case_runners_are_validated(runners, error):
    raw = {"suite": "s", "network": {"layers": [{"type": "linear", "out": 4}, {"type": "lif"}]},
           "defaults": {"dataset": "random", "epochs": 0}, "cases": [{"id": "c", "runners": runners}]}
    with pytest.raises(SnnbenchError, match=error):
        parse_suite(raw, "s.yaml")


def test_publish_profiles_run_the_on_suite():
    from snnbench.publish import load_profile

    cpu = {r.suite: r for r in load_profile("cpu").runs}["on"]
    gpu = {r.suite: r for r in load_profile("gpu").runs}["on"]
    assert cpu.quick and max(c.network.inputs for c in cpu.load().cases) == 1024
    assert not gpu.quick and {c.network.inputs for c in gpu.load().cases} == {4096, 8192, 16384}
