"""The NIR check (snnbench.interop.check): every framework entry is an accuracy or a reason, the measured
causes are real (the reference computing a reader's reading gives that reader's outputs), and the report
shows the matrix."""

import numpy as np
import pytest

from snnbench.cli import main
from snnbench.results.store import RunDir
from snnbench.spec import case_to_dict, init_weights, parse_suite

nir = pytest.importorskip("nir", reason="the nir package is not installed (make test installs it)")
from snnbench.interop import check, frameworks, nir_graph  # noqa: E402


def _case():
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, "reset": "subtract"},
           "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": 24}, {"type": "lif"}, {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "t", "defaults": {"time_steps": 32, "channels": 32, "batch": 16, "test_samples": 64},
                        "network": net, "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def _weights(case):
    w = init_weights(case.network, 2)
    return {k: (v * 4).astype(np.float32) for k, v in w.items()}  # strong enough to spike


@pytest.fixture
def trained_run(tmp_path, small_shd):
    case = _case()
    run = RunDir.create(tmp_path / "results", "t")
    run.write_manifest({"suite": "t", "cases": [case_to_dict(case)], "status": "complete", "data_dir": str(small_shd)})
    run.weights_dir.mkdir()
    np.savez(run.weights_dir / "c--reference.npz", **_weights(case))
    run.append({"suite": "t", "case": "c", "runner": "reference", "metric": "epoch_s", "status": "ok",
                "weights": "weights/c--reference.npz"})
    run.unlock()
    return run, case


def test_every_framework_entry_is_an_accuracy_or_a_reason(trained_run):
    run, case = trained_run
    rows = check.nir_check(run.path)
    assert rows[0]["framework"] == "snnbench" and rows[0]["direction"] == "round trip"
    assert {(r["framework"], r["direction"]) for r in rows[1:]} == {
        (fw.name, d) for fw in frameworks.FRAMEWORKS for d in ("import", "export")}
    for r in rows:
        assert r["status"] in ("ok", "failed", "skipped")
        if r["status"] == "ok":
            assert 0.0 <= r["value"] <= 1.0 and r["reason"]
        else:
            assert r.get("value") is None and r["reason"]
    stored = [r for r in run.records() if r.get("metric") == "nir"]
    assert len(stored) == len(rows)  # appended to the run, for the report


def test_the_round_trip_scores_what_the_reference_scores_on_the_original(trained_run):
    run, case = trained_run
    from snnbench.data import load_dataset, resolve_source

    _, test = load_dataset(case.spec, resolve_source("shd", run.manifest()["data_dir"], None, 64))
    model, _ = check.reference_model(case, case.network, _weights(case))
    rows = check.nir_check(run.path, names=["norse"])
    assert rows[0]["value"] == check.accuracy(model, test, "mean")


def test_a_readers_reading_computed_by_the_reference_gives_its_outputs():
    """The cause machinery is real: Norse's reader (it scales the input by dt/tau, resets to zero and drops the
    LI readout) and the reference computing Norse's reading, read back from Norse's own modules, agree."""
    fw = frameworks.get("norse")
    if not fw.available().ok:
        pytest.skip(fw.available().reason)
    case = _case()
    weights = _weights(case)
    graph = nir_graph.to_nir(case.network, weights, case.spec.dt_s)
    imported = fw.read(graph, case.spec.dt_s)
    assert [r.get("dropped", False) for r in imported.reading] == [False, True]
    assert imported.reading[0]["reset"] == "zero" and imported.reading[0]["input_scale"] == pytest.approx(0.1)
    network, deviated = check.reading_network(case.network, weights, imported.reading)
    run, _ = check.reference_model(case, network, deviated)
    x = (np.random.default_rng(0).random((case.spec.time_steps, 8, 32)) < 0.3).astype(np.float32)
    np.testing.assert_allclose(imported.run(x), run(x), rtol=1e-4, atol=1e-4)


def test_the_report_shows_the_matrix(trained_run, tmp_path):
    run, _ = trained_run
    check.nir_check(run.path, names=["norse", "spyx"])
    check.nir_check(run.path, names=["norse", "spyx"])  # a re-run check replaces the earlier entries
    from snnbench.report.html import write_report
    from snnbench.report.load import load_runs

    html_path, md_path, _ = write_report(load_runs([str(run.path)]), tmp_path / "r.html")
    assert "NIR interoperability" in html_path.read_text()
    lines = [la for la in md_path.read_text().splitlines() if la.startswith("| c | ") and "| reference |" not in la]
    assert len(lines) == 5  # snnbench round trip + 2 frameworks x 2 directions, once each


@pytest.mark.parametrize("argv, message", [
    (["nir-check", "{tmp}"], "not a snnbench run directory"),
    (["nir-check", "{run}", "--runner", "snntorch"], "no trained weights for runner 'snntorch'"),
    (["nir-check", "{run}", "--frameworks", "lava"], "unknown framework 'lava'"),
])
def test_bad_input_is_one_error_line(trained_run, tmp_path, capsys, argv, message):
    run, _ = trained_run
    assert main([a.format(tmp=tmp_path, run=run.path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("snnbench: error:") and message in err[0]
