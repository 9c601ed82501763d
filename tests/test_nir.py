"""NIR export / import (snnbench.interop.nir_graph and the CLI's export and import): a round trip gives back
the identical spec and weights; what NIR or the spec cannot express is one clear error naming it."""

import dataclasses
import json

import numpy as np
import pytest

from snnbench.cli import main
from snnbench.errors import SnnbenchError
from snnbench.results.store import RunDir
from snnbench.spec import case_to_dict, init_weights, parse_suite

nir = pytest.importorskip("nir", reason="the nir package is not installed (make test installs it)")
from snnbench.interop import nir_graph  # noqa: E402

SHD = [{"type": "linear", "out": 24}, {"type": "lif"}, {"type": "linear", "out": 16}, {"type": "lif"},
       {"type": "linear", "out": 5}, {"type": "li"}]


def _case(layers=SHD, image=False, **neuron):
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, "reset": "subtract", **neuron},
           "surrogate": {"name": "superspike", "slope": 1.0}, "layers": layers}
    defaults = {"time_steps": 16, "batch": 4}
    defaults.update({"dataset": "nmnist"} if image else {"channels": 32})
    return parse_suite({"suite": "t", "defaults": defaults, "network": net, "cases": [{"id": "c"}]},
                       "t.yaml").cases[0]


def _trained(case, seed=3):
    """Weights that are not the initial ones (and per-neuron decays that moved apart, where trained)."""
    rng = np.random.default_rng(seed)
    w = init_weights(case.network, seed)
    for k in w:
        w[k] = (w[k] + (0.01 * rng.standard_normal(w[k].shape) if k.endswith("beta") else 0)).astype(np.float32)
    return w


def _assert_same(case, weights, network, got):
    assert network == case.network
    assert set(got) == set(weights)
    for k in weights:
        np.testing.assert_array_equal(got[k], weights[k], err_msg=k)


@pytest.mark.parametrize("kind", ["subtract", "zero", "learn_beta", "cuba", "if", "conv"])
def test_export_then_import_gives_back_the_identical_spec_and_weights(kind, tmp_path):
    if kind == "conv":
        case = _case([{"type": "conv2d", "out": 3, "kernel": 5, "stride": 2, "padding": 1, "bias": False},
                      {"type": "lif"}, {"type": "flatten"}, {"type": "linear", "out": 5}, {"type": "li"}], image=True)
    elif kind == "cuba":
        case = _case([{"type": "linear", "out": 8}, {"type": "cuba_lif", "alpha": 0.7}, {"type": "linear", "out": 5},
                      {"type": "li"}])
    elif kind == "if":
        case = _case([{"type": "linear", "out": 8}, {"type": "if", "threshold": 0.5}, {"type": "linear", "out": 5},
                      {"type": "li"}])
    else:
        case = _case(**({"reset": "zero"} if kind == "zero" else {"learn_beta": True} if kind == "learn_beta" else {}))
    weights = _trained(case)
    path = tmp_path / "m.nir"
    nir_graph.write(path, nir_graph.to_nir(case.network, weights, case.spec.dt_s))
    network, got, dt = nir_graph.from_nir(nir_graph.read(path))
    assert dt == case.spec.dt_s
    _assert_same(case, weights, network, got)


def test_the_nir_parameters_follow_the_documented_mapping():
    case = _case()
    dt = 1e-3
    graph = nir_graph.to_nir(case.network, _trained(case), dt)
    lif, li = graph.nodes["layers.1"], graph.nodes["layers.5"]
    np.testing.assert_allclose(lif.tau, dt / (1 - 0.9), rtol=1e-6)
    np.testing.assert_allclose(lif.r * dt / lif.tau, 1.0, rtol=1e-6)  # the input enters unscaled
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    assert json.loads(lif.metadata["snnbench"])["reset"] == "subtract"
    np.testing.assert_allclose(li.tau, dt / (1 - 0.9), rtol=1e-6)
    assert isinstance(graph.nodes["layers.0"], nir.Affine)


def test_a_graph_from_elsewhere_reads_with_nir_semantics(tmp_path):
    """No snnbench metadata: NIR's reset to v_reset is a zero reset, the decay comes from tau and --dt."""
    w = np.ones((4, 3), np.float32)
    tau, dt = np.full(4, 0.02), 1e-3
    graph = nir.NIRGraph(nodes={"in": nir.Input({"input": np.array([3])}), "fc": nir.Affine(w, np.zeros(4, np.float32)),
                                "lif": nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(4), v_threshold=np.ones(4)),
                                "fc2": nir.Linear(np.ones((2, 4), np.float32)),
                                "li": nir.LI(tau=tau[:2], r=tau[:2] / dt, v_leak=np.zeros(2)),
                                "out": nir.Output({"output": np.array([2])})},
                         edges=[("in", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "out")])
    with pytest.raises(SnnbenchError, match="--dt"):
        nir_graph.from_nir(graph)
    network, weights, _ = nir_graph.from_nir(graph, dt=dt)
    assert [la.type for la in network.layers] == ["linear", "lif", "linear", "li"]
    assert network.layers[1].reset == "zero" and network.layers[1].beta == pytest.approx(0.95)
    assert network.layers[2].bias is False and "layers.2.bias" not in weights
    with pytest.raises(SnnbenchError, match="input scale"):
        nir_graph.from_nir(graph, dt=2e-3)


def test_what_nir_or_the_spec_cannot_express_is_refused_by_name(tmp_path):
    conv_pool = _case([{"type": "conv2d", "out": 3, "kernel": 5}, {"type": "lif"}, {"type": "maxpool", "kernel": 2},
                       {"type": "flatten"}, {"type": "linear", "out": 5}, {"type": "li"}], image=True)
    with pytest.raises(SnnbenchError, match=r"layer 2 \(maxpool\): NIR 1.0 has no max pooling"):
        nir_graph.to_nir(conv_pool.network, init_weights(conv_pool.network, 0), 1e-3)
    graph = nir.NIRGraph(nodes={"in": nir.Input({"input": np.array([2, 8, 8])}),
                                "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
                                "out": nir.Output({"output": np.array([2, 4, 4])})},
                         edges=[("in", "pool"), ("pool", "out")])
    with pytest.raises(SnnbenchError, match=r"'pool' \(SumPool2d\): snnbench's network spec cannot express it"):
        nir_graph.from_nir(graph, dt=1e-3)


def _fake_run(tmp_path, case, weights):
    """A run directory as a training job leaves it: the manifest's case, an epoch record naming the weights."""
    run = RunDir.create(tmp_path / "results", "t")
    run.write_manifest({"suite": "t", "cases": [case_to_dict(case)], "status": "complete"})
    run.weights_dir.mkdir()
    np.savez(run.weights_dir / "c--reference.npz", **weights)
    run.append({"suite": "t", "case": "c", "runner": "reference", "metric": "epoch_s", "status": "ok",
                "weights": "weights/c--reference.npz"})
    run.unlock()
    return run


def test_cli_export_then_import_round_trips_a_trained_run(tmp_path, capsys):
    case = _case()
    weights = _trained(case)
    run = _fake_run(tmp_path, case, weights)
    assert main(["export", str(run.path), "-o", str(tmp_path / "m.nir")]) == 0
    assert main(["import", str(tmp_path / "m.nir"), "-o", str(tmp_path / "imp")]) == 0
    out = capsys.readouterr().out
    assert "NIR has no 'subtract' reset" in out and "wrote" in out
    import yaml

    spec = yaml.safe_load((tmp_path / "imp" / "network.yaml").read_text())
    rebuilt = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "batch": 4, "channels": spec["inputs"]},
                           "network": spec["network"], "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    with np.load(tmp_path / "imp" / "weights.npz") as f:
        _assert_same(case, weights, rebuilt.network, {k: f[k] for k in f.files})


@pytest.mark.parametrize("argv, message", [
    (["import", "{tmp}/not.nir"], "not a NIR graph"),
    (["import", "{tmp}/missing.nir"], "no such file"),
    (["export", "{tmp}", "-o", "{tmp}/x.nir"], "not a snnbench run directory"),
    (["export", "{run}", "--runner", "spyx", "-o", "{tmp}/x.nir"], "no trained weights for runner 'spyx'"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, argv, message):
    (tmp_path / "not.nir").write_text("hello")
    run = _fake_run(tmp_path, _case(), _trained(_case()))
    argv = [a.format(tmp=tmp_path, run=run.path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("snnbench: error:") and message in err[0]


def test_layer_spec_fields_survive_the_trip():
    """Every LayerSpec field NIR lacks travels in metadata: change each from its default, read it back."""
    case = _case(detach_reset=False, spike_from="previous")
    weights = _trained(case)
    network, got, _ = nir_graph.from_nir(nir_graph.to_nir(case.network, weights, 1e-3))
    assert network == case.network
    assert dataclasses.asdict(network)["layers"][1]["spike_from"] == "previous"


def test_cli_import_of_an_unsupported_node_is_one_error_line(tmp_path, capsys):
    graph = nir.NIRGraph(nodes={"in": nir.Input({"input": np.array([2, 8, 8])}),
                                "pool": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
                                "out": nir.Output({"output": np.array([2, 4, 4])})},
                         edges=[("in", "pool"), ("pool", "out")])
    nir.write(str(tmp_path / "pool.nir"), graph)
    assert main(["import", str(tmp_path / "pool.nir"), "--dt", "0.001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NIR node 'pool' (AvgPool2d): snnbench's network spec cannot express it" in err[0]
