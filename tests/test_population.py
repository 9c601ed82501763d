"""The population-coded readout (``network.population``, ``loss: count``): its class score and loss
against NumPy in every stack, the torch and JAX stacks agreeing on a tiny net, training accuracy and
evaluation on the same score, the validation errors, the refusals, and the report's T x P grid."""

import json

import numpy as np
import pytest

from snnbench.errors import SnnbenchError
from snnbench.spec import init_weights, load_suite, parse_suite

CLASSES = 4


def oracle_scores(readout_btc: np.ndarray, loss: str, population: int) -> np.ndarray:
    """The spec's class score, written out loop by loop: ``readout [B, T, C * P]`` -> ``[B, C]``."""
    B, T, O = readout_btc.shape
    out = np.zeros((B, O // population))
    for b in range(B):
        for c in range(O // population):
            members = []
            for p in range(population):
                trace = readout_btc[b, :, c * population + p].astype(np.float64)
                reduced = {"mean": trace.mean(), "max": trace.max(), "last": trace[-1], "count": trace.sum()}
                members.append(reduced[loss])
            out[b, c] = sum(members) if loss == "count" else sum(members) / population
    return out


def oracle_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    z = scores - scores.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def _trace(kind: str, population: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (5, 8, CLASSES * population)
    x = (rng.random(shape) < 0.3).astype(np.float32) if kind == "spikes" else rng.normal(size=shape).astype(np.float32)
    return x, rng.integers(0, CLASSES, 5)


CASES = [("membrane", loss, p) for loss in ("mean", "max", "last") for p in (1, 3)] + \
        [("spikes", loss, p) for loss in ("count", "mean") for p in (1, 3)]


@pytest.mark.parametrize("kind, loss, population", CASES)
def test_scores_and_loss_match_numpy_in_every_stack(kind, loss, population):
    readout, labels = _trace(kind, population)
    want = oracle_scores(readout, loss, population)
    from snnbench.interop.check import logits as numpy_logits

    np.testing.assert_allclose(numpy_logits(np.swapaxes(readout, 0, 1), loss, population), want, rtol=1e-5, atol=1e-6)
    jax = pytest.importorskip("jax")
    from snnbench.runners.reference.model import cross_entropy, logits_from_readout

    got = logits_from_readout(jax.numpy.asarray(np.swapaxes(readout, 0, 1)), loss, population)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert float(cross_entropy(got, jax.numpy.asarray(labels))) == pytest.approx(oracle_loss(want, labels), rel=1e-5)
    torch = pytest.importorskip("torch")
    from snnbench.runners.torch_common import logits_from_readout as torch_logits

    for axis, trace in ((0, np.swapaxes(readout, 0, 1)), (1, readout)):  # time-major and batch-major runners
        got = torch_logits(torch.from_numpy(np.ascontiguousarray(trace)), loss, axis, population)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    loss_t = torch.nn.functional.cross_entropy(got, torch.from_numpy(labels))
    assert float(loss_t) == pytest.approx(oracle_loss(want, labels), rel=1e-5)


def test_count_with_a_population_is_snntorchs_ce_count_loss():
    """The docstring's claim: ``loss: count`` with ``population: P`` is snnTorch's population-coded count loss."""
    torch = pytest.importorskip("torch")
    sf = pytest.importorskip("snntorch.functional")
    readout, labels = _trace("spikes", 3, seed=2)
    spk = torch.from_numpy(np.swapaxes(readout, 0, 1).copy())
    theirs = sf.ce_count_loss(population_code=True, num_classes=CLASSES)(spk, torch.from_numpy(labels))
    assert float(theirs) == pytest.approx(oracle_loss(oracle_scores(readout, "count", 3), labels), rel=1e-6)


def _case(population: int = 3, readout: str = "lif", loss: str = "count", T: int = 16, classes: int = CLASSES):
    net = {"neuron": {"beta": 0.9, "threshold": 1.0}, "surrogate": {"name": "superspike", "slope": 1.0},
           "population": population,
           "layers": [{"type": "linear", "out": 24}, {"type": "lif"},
                      {"type": "linear", "out": classes * population}, {"type": readout}]}
    return parse_suite({"suite": "t", "defaults": {"time_steps": T, "channels": 32, "batch": 16, "lr": 0.01,
                                                   "loss": loss},
                        "network": net, "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def _built(name, case, weights):
    from snnbench.runners import get_runner_class

    cls = get_runner_class(name)
    if not cls.available().ok:
        pytest.skip(cls.available().reason)
    runner = cls()
    runner.build(case, "cpu", 0)
    runner.set_weights(weights)
    return runner


@pytest.mark.parametrize("readout, loss", [("lif", "count"), ("li", "max")])
def test_torch_and_jax_agree_on_a_population_net(readout, loss):
    case = _case(readout=readout, loss=loss)
    rng = np.random.default_rng(5)
    # weights scaled up so that the readout population fires: a silent one would leave count scores at 0
    weights = {k: v * 3 for k, v in init_weights(case.network, 0).items()}
    x = (rng.random((8, 16, 32)) < 0.3).astype(np.float32)
    y = rng.integers(0, CLASSES, 8)
    ref, torch_r = _built("reference", case, weights), _built("torch", case, weights)
    fwd = ref.forward(x)
    if readout == "lif":
        assert fwd.readout.sum() > 0, "the readout population never fired"
    np.testing.assert_allclose(torch_r.forward(x).readout, fwd.readout, rtol=1e-5, atol=1e-5)
    a, b = ref.forward_backward(x, y), torch_r.forward_backward(x, y)
    assert a.loss == pytest.approx(oracle_loss(oracle_scores(fwd.readout, loss, 3), y), rel=1e-5)
    assert b.loss == pytest.approx(a.loss, rel=1e-5)
    for k in a.grads:
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-3, atol=1e-5, err_msg=k)
    assert any(np.abs(g).sum() > 0 for g in a.grads.values())


@pytest.mark.parametrize("name", ["reference", "torch"])
def test_training_and_evaluation_score_the_population(name, small_shd):
    from snnbench.data import shd

    case = _case(population=2, T=16, classes=20)  # SHD's 20 classes, 40 readout neurons
    kw = dict(time_steps=16, channels=32, duration_s=1.0)
    train, test = shd.load_split(small_shd, "train", **kw), shd.load_split(small_shd, "test", **kw)
    runner = _built(name, case, {k: v * 3 for k, v in init_weights(case.network, 0).items()})
    runner.stage(train, test)
    runner.compile()
    epoch = runner.train_epoch(0)
    ev = runner.evaluate()
    readout = runner.forward(test.dense()).readout  # [B, T, 40]
    assert readout.sum() > 0
    scores = oracle_scores(readout, "count", 2)  # [B, 20]
    labels = np.asarray(test.labels)
    assert ev.accuracy == pytest.approx(float(np.mean(scores.argmax(1) == labels)))
    assert ev.loss == pytest.approx(oracle_loss(scores, labels), rel=1e-4)
    assert 0.0 <= epoch.accuracy <= 1.0 and np.isfinite(epoch.loss)


@pytest.mark.parametrize("net_over, loss, message", [
    ({"population": 3}, "count", r"network.population: 3 neurons per class do not divide the readout's 8 outputs"),
    ({"population": 0}, "count", r"network.population: expected a whole number .* got 0"),
    ({"population": True}, "count", r"network.population: expected a whole number .* got True"),
    ({"readout": "li"}, "count", r"cases\[0\].loss: 'count' is a spike count and the readout is a li layer"),
])
def test_bad_population_specs_are_refused_with_one_line(net_over, loss, message):
    net = {"population": net_over.get("population", 2),
           "layers": [{"type": "linear", "out": 8}, {"type": net_over.get("readout", "lif")}]}
    with pytest.raises(SnnbenchError, match=message):
        parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 8, "loss": loss},
                     "network": net, "cases": [{"id": "c"}]}, "t.yaml")


def test_a_population_too_small_for_the_datasets_classes_is_refused():
    from snnbench.harness.run import check_batches

    case = _case(population=3)  # 4 classes of 3: SHD has 20
    with pytest.raises(SnnbenchError, match=r"12 outputs, 4 classes of 3 \(population\).* 'out: 60'"):
        check_batches([(case, "reference")], {})


def test_the_population_suite_is_the_T_by_P_grid():
    suite = load_suite("population")
    cells = {(c.spec.time_steps, c.network.population): c for c in suite.cases}
    assert set(cells) == {(t, p) for t in (128, 64, 32) for p in (1, 5, 10)}
    for (t, p), case in cells.items():
        assert case.id == f"shd-T{t}-P{p}" and case.network.classes == 20 and case.spec.loss == "count"
    quick = load_suite("population", quick=True)
    assert len(quick.cases) == 9 and all(c.spec.runners == ("reference", "torch", "snntorch", "norse")
                                         for c in quick.cases)


def test_runners_without_the_shared_loss_refuse_with_the_reason():
    from snnbench.runners import get_runner_class
    from tests.fake_runners import SleepRunner

    case = _case()
    why = SleepRunner().supports(case)
    assert not why.ok and "population-coded readout (3 neurons per class)" in why.reason
    count_only = _case(population=1)
    assert "loss: count" in SleepRunner().supports(count_only).reason
    assert SleepRunner().supports(_case(population=1, readout="li", loss="mean")).ok
    for name in ("reference", "torch", "snntorch", "norse"):
        assert get_runner_class(name)().supports(case).ok, name
    parallel = get_runner_class("snntorch-parallel")().supports(case)
    assert not parallel.ok and "lif is not expressed" in parallel.reason


# ------------------------------------------------------------------------------------------- report


def _grid_run(tmp_path, cells, runners=("reference", "torch"), skipped=("spyx-psu",)):
    """A run directory holding T x P epoch records (a fake run: figures chosen, not measured)."""
    from snnbench.results.store import RunDir

    run = RunDir.create(tmp_path / "results", "population")
    run.write_manifest({"suite": "population", "status": "complete", "cases": []})
    for i, (t, p) in enumerate(cells):
        shape = {"T": t, "batch": 128, "network": "n", **({"population": p} if p > 1 else {})}
        case = f"shd-T{t}-P{p}"
        for j, runner in enumerate(runners):
            acc = 0.3 + 0.05 * i + 0.01 * j
            curve = [{"epoch": 0, "elapsed_s": 1.0, "test_acc": acc}]
            run.append({"suite": "population", "case": case, "runner": runner, "metric": "epoch_s", "status": "ok",
                        "value": 0.1 * t / 32 + 0.01 * p, "stats": {"median": 0.1 * t / 32 + 0.01 * p},
                        "accuracy": acc, "shape": shape, "extra": {"curve": curve}})
        for runner in skipped:
            run.append({"suite": "population", "case": case, "runner": runner, "metric": "job", "status": "skipped",
                        "reason": "layer 1: lif is not expressed <by it>", "shape": shape})
    run.unlock()
    return run.path


def test_report_shows_the_grid_per_runner_with_a_chart(tmp_path):
    from snnbench.report.html import markdown, render
    from snnbench.report.load import load_runs

    cells = [(t, p) for t in (128, 64, 32) for p in (1, 5, 10)]
    runs = load_runs([_grid_run(tmp_path, cells)])
    page = render(runs, target_acc=0.5)
    section = page.split("Population code: time steps against neurons per class")[1].split("</section>")[0]
    assert section.count('<table class="population"') == 2  # reference, torch
    assert section.count('>P = 5</th>') == 2
    import re

    assert len(re.findall(r'<svg class="chart" id="figures-[\w-]*-pop\d+"', section)) == 2  # one chart per runner
    assert section.count("<circle") == 2 * 3 + 1 and section.count("<polygon") >= 2 * 3  # P=1 circles (+ legend)
    assert "not reached" in section
    assert "No cell trained: spyx-psu: layer 1: lif is not expressed &lt;by it&gt;" in section
    # the reference at T=64, P=5 (cell index 4): epoch 0.25 s, 50.0% accuracy, reached 50% after 1.0 s
    row64 = section.split("<tr><td>64</td>")[1].split("</tr>")[0]
    assert "<td>0.25</td><td>50.0%</td><td class=\"nw\">1.0</td>" in row64
    md = markdown(runs, target_acc=0.5)
    assert "### Population code (T x P)" in md and "| reference | 64 | 5 | ok | 0.25 | 50.0% | 1.0 |" in md


def test_report_has_no_grid_without_populations(tmp_path):
    from snnbench.report.html import render
    from snnbench.report.load import load_runs

    page = render(load_runs([_grid_run(tmp_path, [(128, 1), (64, 1)])]))
    assert "Population code" not in page


def test_nir_keeps_the_population_in_snnbenchs_metadata():
    pytest.importorskip("nir")
    from snnbench.interop import nir_graph

    case = _case(population=3)
    weights = init_weights(case.network, 0)
    network, back, _ = nir_graph.from_nir(nir_graph.to_nir(case.network, weights, 1e-3))
    assert network.population == 3 and network.classes == CLASSES
    assert set(back) == set(weights)
