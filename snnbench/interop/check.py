"""The NIR interoperability check: a run's trained network goes out as NIR and into each framework's own NIR
reader, and each framework's own NIR writer's graph of the same network comes back into snnbench; both are
scored on the case's test set. Every entry is an accuracy or a reason, and where an accuracy differs from the
reference's the check measures why: what the reader made of each neuron node, and the reference's accuracy
when it computes that reading (the cause is confirmed when the two accuracies agree).

Results are appended to the run's ``records.jsonl`` as ``metric: nir`` records (one per framework and
direction), so the report renders the matrix.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import load_dataset, resolve_source
from ..errors import SnnbenchError
from ..naming import file_part, job_file
from ..runners import get_runner_class
from ..spec import Case, NetworkSpec
from . import frameworks as fw_mod
from . import nir_graph
from .trained import load_trained

#: an accuracy within this of the reference's counts as the same
SAME_ACCURACY = 0.005
EVAL_BATCH = 128


def logits(readout_tbo: np.ndarray, loss: str, population: int = 1) -> np.ndarray:
    """The loss's logits, the class scores ``[B, O / population]``, from a time-major readout ``[T, B, O]``
    (the spec's readout score: reduced over time, then pooled over each class's population)."""
    if loss == "last":
        reduced = readout_tbo[-1]
    elif loss == "count":
        reduced = readout_tbo.sum(axis=0)
    else:
        reduced = readout_tbo.max(axis=0) if loss == "max" else readout_tbo.mean(axis=0)
    pooled = reduced.reshape(*reduced.shape[:-1], -1, population)
    return pooled.sum(axis=-1) if loss == "count" else pooled.mean(axis=-1)


def accuracy(run: Callable[[np.ndarray], np.ndarray], test, loss: str, batch: int = EVAL_BATCH,
             population: int = 1) -> float:
    """Test accuracy of a time-major model ``run([T, B, C]) -> [T, B, O]``."""
    correct = 0
    for start in range(0, len(test), batch):
        idx = np.arange(start, min(start + batch, len(test)))
        x = np.ascontiguousarray(np.swapaxes(test.dense(idx), 0, 1))
        correct += int(np.sum(np.argmax(logits(run(x), loss, population), axis=-1) == test.labels[idx]))
    return correct / len(test)


def reference_model(case: Case, network: NetworkSpec, weights: dict[str, np.ndarray]):
    """The reference runner computing ``network`` with ``weights``, as a time-major function."""
    runner = get_runner_class("reference")()
    runner.build(dataclasses.replace(case, network=network), "cpu", case.spec.seed)
    runner.set_weights(weights)

    def run(x_tbc: np.ndarray) -> np.ndarray:
        return np.swapaxes(runner.forward(np.swapaxes(x_tbc, 0, 1)).readout, 0, 1)

    return run, runner


# ------------------------------------------------------------------------------------------------ readings


def reading_network(network: NetworkSpec, weights: dict[str, np.ndarray],
                    reading: list[dict[str, Any]]) -> tuple[NetworkSpec, dict[str, np.ndarray]] | None:
    """The canonical network as a reader computes it (its decay, input scale, threshold, reset per neuron
    node; a dropped readout passes its input through, ``li`` with decay 0); None if it cannot be stated."""
    layers, weights = list(network.layers), dict(weights)
    for r in reading:
        i = int(r["node"].split(".")[1])
        if r.get("dropped"):
            if layers[i].type != "li":
                return None
            layers[i] = dataclasses.replace(layers[i], beta=0.0)
            continue
        fields = {"beta": float(r["beta"])}
        if layers[i].spiking:
            fields.update(threshold=float(r["threshold"]), reset=r["reset"],
                          spike_from=r.get("spike_from", layers[i].spike_from))
        layers[i] = dataclasses.replace(layers[i], **fields)
        if abs(r.get("input_scale", 1.0) - 1.0) > 1e-6:  # folded into the weight layer that feeds it
            j = max(k for k in range(i) if layers[k].is_weight)
            for key in (f"layers.{j}.weight", f"layers.{j}.bias"):
                if key in weights:
                    weights[key] = (weights[key] * r["input_scale"]).astype(np.float32)
    return dataclasses.replace(network, layers=tuple(layers)), weights


def describe_reading(network: NetworkSpec, reading: list[dict[str, Any]]) -> list[str]:
    """What a reader did differently from the canonical network, node by node."""
    out = []
    for r in reading:
        i = int(r["node"].split(".")[1])
        layer = network.layers[i]
        if r.get("dropped"):
            out.append(f"{r['node']} ({layer.type}): dropped (no module built for it)")
            continue
        diffs = []
        if abs(r["beta"] - layer.beta) > 1e-4:
            diffs.append(f"decay {r['beta']:.5g} (canonical {layer.beta:g})")
        if abs(r.get("input_scale", 1.0) - 1.0) > 1e-4:
            diffs.append(f"input scaled by {r['input_scale']:.4g}")
        if layer.spiking and abs(r["threshold"] - layer.threshold) > 1e-4:
            diffs.append(f"threshold {r['threshold']:.5g} (canonical {layer.threshold:g})")
        if layer.spiking and r["reset"] != layer.reset:
            diffs.append(f"reset {r['reset']} (canonical {layer.reset})")
        if layer.spiking and r.get("spike_from", layer.spike_from) != layer.spike_from:
            diffs.append(f"spikes from the {r['spike_from']} step's membrane (canonical {layer.spike_from})")
        if diffs:
            out.append(f"{r['node']} ({layer.type}): " + ", ".join(diffs))
    return out


def describe_import(network: NetworkSpec, weights: dict[str, np.ndarray], got: NetworkSpec,
                    got_weights: dict[str, np.ndarray]) -> list[str]:
    """How a network read back from a framework's writer differs from the one it was given."""
    if [la.type for la in got.layers] != [la.type for la in network.layers]:
        return [f"layers {'-'.join(la.type for la in got.layers)} (canonical "
                f"{'-'.join(la.type for la in network.layers)})"]
    out = []
    for i, (a, b) in enumerate(zip(network.layers, got.layers)):
        diffs = []
        for name, label in (("beta", "decay"), ("alpha", "synaptic decay"), ("threshold", "threshold"),
                            ("reset", "reset")):
            relevant = (a.is_neuron and name == "beta") or (a.spiking and name in ("threshold", "reset")) \
                or (a.type == "cuba_lif" and name == "alpha")
            va, vb = getattr(a, name), getattr(b, name)
            if not relevant:
                continue
            if isinstance(va, str) and va != vb:
                diffs.append(f"{label} {vb} (canonical {va})")
            elif not isinstance(va, str) and abs(va - vb) > 1e-4 * max(1, abs(va)):
                diffs.append(f"{label} {vb:.5g} (canonical {va:g})")
        if diffs:
            out.append(f"layers.{i} ({a.type}): " + ", ".join(diffs))
    for key, w in weights.items():
        if key in got_weights and got_weights[key].shape == w.shape:
            g = got_weights[key].astype(np.float64)
            err = float(np.max(np.abs(g - w)))
            if err <= 1e-6 * max(1.0, float(np.max(np.abs(w)))):
                continue
            c = float(np.sum(g * w) / max(float(np.sum(np.square(w, dtype=np.float64))), 1e-30))
            if np.allclose(g, c * w, rtol=1e-4, atol=1e-6):  # a whole-layer factor: a folded input scale
                out.append(f"{key}: scaled by {c:.4g}")
            else:
                out.append(f"{key}: differs by up to {err:.3g}")
        else:
            out.append(f"{key}: missing or reshaped")
    for key in weights:  # a layer whose weight and bias moved by the same factor: one line
        if key.endswith(".weight"):
            layer = key[: -len(".weight")]
            w_line, b_line = f"{layer}.weight: scaled by", f"{layer}.bias: scaled by"
            w = next((x for x in out if x.startswith(w_line)), None)
            b = next((x for x in out if x.startswith(b_line)), None)
            if w and b and w[len(w_line):] == b[len(b_line):]:
                out[out.index(w)] = f"{layer}: weight and bias scaled by{w[len(w_line):]}"
                out.remove(b)
    return out


# ------------------------------------------------------------------------------------------------ the check


def entry_text(row: dict[str, Any]) -> str:
    """An entry's accuracy (``96.4%``) or, without one, its status."""
    return f"{100 * row['value']:.1f}%" if row.get("value") is not None else row["status"]


def _failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _check_read(fw, path: Path, dt: float, case: Case, weights, test, ref_acc: float) -> dict[str, Any]:
    graph = nir_graph.read(path)  # as a user would: the file, read by the nir package
    imported = fw.read(graph, dt)
    acc = accuracy(imported.run, test, case.spec.loss, population=case.network.population)
    row: dict[str, Any] = {"value": acc, "reading": imported.reading,
                           "cause": describe_reading(case.network, imported.reading)}
    if abs(acc - ref_acc) > SAME_ACCURACY and imported.reading:
        deviated = reading_network(case.network, weights, imported.reading)
        if deviated is not None:
            run, _ = reference_model(case, *deviated)
            row["explained_acc"] = accuracy(run, test, case.spec.loss, population=case.network.population)
    return row


def _first_layer_graph(graph):
    """The graph cut after its first neuron node: ``Input -> weights -> neuron -> Output``."""
    import nir

    order = nir_graph.chain(graph)
    cut = next(i for i, k in enumerate(order) if type(graph.nodes[k]).__name__ in ("LIF", "IF", "CubaLIF", "LI"))
    keep = order[:cut + 1]
    nodes = {k: graph.nodes[k] for k in keep}
    size = np.array([int(np.size(getattr(graph.nodes[keep[-1]], "v_threshold", graph.nodes[keep[-1]].tau)))])
    nodes["output"] = nir.Output(output_type={"output": size})
    edges = list(zip(keep, keep[1:] + ["output"]))
    rec = nir_graph.recurrences(graph).get(keep[-1])
    if isinstance(rec, str):  # a recurrent first layer keeps its cycle
        nodes[rec] = graph.nodes[rec]
        edges += [(keep[-1], rec), (rec, keep[-1])]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata, type_check=False)


def _probe_first_layer(fw, path: Path, dt: float, case: Case, weights, test) -> dict[str, Any]:
    """The reader on the graph cut after the first spiking layer: what it makes of that layer, and how often
    its spikes on the first test batch equal the reference's."""
    imported = fw.read(_first_layer_graph(nir_graph.read(path)), dt)
    x = test.dense(np.arange(min(EVAL_BATCH, len(test))))
    theirs = imported.run(np.ascontiguousarray(np.swapaxes(x, 0, 1)))
    _, runner = reference_model(case, case.network, weights)
    ours = np.swapaxes(runner.forward(x).spikes[0], 0, 1)
    return {"spike_agreement": float(np.mean((theirs != 0) == (ours != 0))), "rate": float(np.mean(theirs != 0)),
            "reference_rate": float(np.mean(ours != 0)), "reading": imported.reading,
            "cause": describe_reading(case.network, imported.reading)}


def _check_write(fw, path: Path, case: Case, weights, test) -> dict[str, Any]:
    graph, dt = fw.write(case.network, weights, case.spec.dt_s)
    notes = []
    try:
        nir_graph.write(path, graph)
        graph = nir_graph.read(path)
    except Exception as exc:  # the nir package cannot store some writers' graphs: read the graph in memory
        notes.append(f"nir.write cannot store its graph ({_failure(exc)}); read in memory")
    network, got, _ = nir_graph.from_nir(graph, dt=dt, fold_input_scale=True)
    for name, node in graph.nodes.items():
        tau = getattr(node, "tau_mem", getattr(node, "tau", None))
        if tau is not None and hasattr(node, "r"):
            scale = float(np.mean(np.asarray(node.r, np.float64) * dt / np.asarray(tau, np.float64)))
            if abs(scale - 1.0) > 1e-5:
                notes.append(f"node {name!r}: input scale r*dt/tau = {scale:.4g} (folded into the weights before it)")
    network = dataclasses.replace(network, surrogate=case.network.surrogate, time_steps=case.network.time_steps)
    row: dict[str, Any] = {"cause": notes + describe_import(case.network, weights, network, got), "writer_dt": dt}
    run, _ = reference_model(case, network, got)
    row["value"] = accuracy(run, test, case.spec.loss, population=case.network.population)
    return row


def nir_check(run_dir: str | Path, case_id: str | None = None, runner: str = "reference",
              names: list[str] | None = None, data_dir: str | None = None,
              on_row: Callable[[dict[str, Any]], None] = lambda r: None) -> list[dict[str, Any]]:
    """Run the check on ``runner``'s trained network of ``case_id`` in ``run_dir``; returns (and appends to the
    run's records) one row per framework and direction, plus the reference's own score of the weights."""
    case, weights, run = load_trained(run_dir, case_id, runner)
    if case.spec.dataset not in ("shd", "nmnist"):
        raise SnnbenchError(f"case {case.id}: the NIR check scores on a dataset's test set (shd, nmnist), "
                            f"not {case.spec.dataset!r}")
    frameworks = fw_mod.FRAMEWORKS if not names else [fw_mod.get(n) for n in names]
    manifest = run.manifest()
    source = resolve_source(case.spec.dataset, data_dir or manifest.get("data_dir"), case.spec.train_samples,
                            case.spec.test_samples)
    _, test = load_dataset(case.spec, source)
    out_dir = run.special("nir")
    out_dir.mkdir(exist_ok=True)
    dt = case.spec.dt_s
    path = out_dir / job_file(case.id, runner, ".nir")
    log_path = run.log_dir / "nir-check.log"  # the frameworks' tracebacks: one line each on the console

    def log_failure(what: str) -> None:
        try:
            run.log_dir.mkdir(exist_ok=True)
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "a") as log:
                log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {what}\n{traceback.format_exc()}\n")
        except OSError:
            pass
    nir_graph.write(path, nir_graph.to_nir(case.network, weights, dt, {"case": case.id, "runner": runner}))
    base = {"suite": manifest.get("suite", ""), "case": case.id, "runner": runner, "metric": "nir", "unit": "fraction",
            "dtype": case.spec.dtype, "time": time.time()}
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rec = {**base, **row, "time": time.time()}
        run.append(rec)
        rows.append(rec)
        on_row(rec)

    ref_run, _ = reference_model(case, *nir_graph.from_nir(nir_graph.read(path))[:2])
    ref_acc = accuracy(ref_run, test, case.spec.loss, population=case.network.population)
    emit({"framework": "snnbench", "direction": "round trip", "status": "ok", "value": ref_acc,
          "reason": "snnbench export -> import, scored by the reference", "extra": {"nir_file": str(path)}})
    for fw in frameworks:
        common = {"framework": fw.name}
        ok = fw.available()
        for direction, api in (("import", fw.reader_api), ("export", fw.writer_api)):
            entry = {**common, "direction": direction, "api": api}
            if not ok.ok:
                emit({**entry, "status": "skipped", "reason": ok.reason})
                continue
            try:
                if direction == "import":
                    row = _check_read(fw, path, dt, case, weights, test, ref_acc)
                else:
                    row = _check_write(fw, out_dir / f"{file_part(case.id)}--{file_part(fw.name)}-export.nir", case,
                                       weights, test)
            except Exception as exc:  # a framework's failure is a finding, not a crash of the check
                log_failure(f"{fw.name} {direction}")
                reason, extra = _failure(exc), {"log": str(log_path)}
                if direction == "import":
                    try:
                        extra["probe"] = probe = _probe_first_layer(fw, path, dt, case, weights, test)
                        read = ("; ".join(probe["cause"]) or "read as canonical") if probe["reading"] else \
                            "its modules' parameters are not inspected here"
                        reason += (f"; the first spiking layer alone: {read}"
                                   f", spikes agree with the reference's on {100 * probe['spike_agreement']:.1f}%")
                    except Exception as probe_exc:
                        log_failure(f"{fw.name} import, first spiking layer alone")
                        reason += f"; the first spiking layer alone fails too ({_failure(probe_exc)})"
                emit({**entry, "status": "failed", "reason": reason, "extra": extra})
                continue
            reason = "; ".join(row["cause"]) or "computes the canonical network"
            if "explained_acc" in row:
                same = abs(row["explained_acc"] - row["value"]) <= SAME_ACCURACY
                reason += (f"; the reference computing that reading scores {100 * row['explained_acc']:.1f}% "
                           f"({'confirms the cause' if same else 'does not explain all of the difference'})")
            emit({**entry, "status": "ok", "value": row.pop("value"), "ref_acc": ref_acc, "reason": reason,
                  "extra": row})
    return rows
