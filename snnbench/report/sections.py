"""The detail sections of a report, below the headline: extrapolation, data-parallel scaling,
precision, efficiency, NIR, long-sequence speed-ups, memory per phase, the parity gate, failures and
skips. Every number plain (:func:`.fmt.plain`), every text from results escaped."""

from __future__ import annotations

import html as html_lib
from typing import Any

from . import plots
from ..results.summary import data_parallel_scaling, engineering, precision_rows
from .fmt import e, num as _num, parity_text
from .load import Run


def plot(svg: str | None, alt: str) -> str:
    """A matplotlib SVG as an image at the size it was drawn (its points as CSS pixels x 4/3)."""
    if not svg:
        return ""
    import re

    m = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    size = f' width="{float(m.group(1)) * 4 / 3:.0f}" height="{float(m.group(2)) * 4 / 3:.0f}"' if m else ""
    data = svg.replace("\n", " ").replace("%", "%25").replace("#", "%23")
    return f'<img class="plot" alt="{e(alt)}"{size} src="data:image/svg+xml,{html_lib.escape(data)}">'


def extrapolation_section(run: Run) -> str:
    """Accuracy against sequence length for networks trained at one length, run step by step."""
    recs = [r for r in run.records if r.get("metric") == "extrap_acc"]
    if not recs:
        return ""
    lengths = sorted({r["extra"]["T"] for r in recs})
    table: dict[tuple[str, str], dict[int, str]] = {}
    for r in recs:
        cell = f"{100 * r['value']:.1f}%" if r["status"] == "ok" else e(r["status"])
        table.setdefault((r["case"], r["runner"]), {})[r["extra"]["T"]] = cell
    head = "".join(f"<th>T={t}</th>" for t in lengths)
    rows = "".join(f'<tr><td class="t">{e(c)}</td><td class="t">{e(rn)}</td>'
                   + "".join(f"<td>{cells.get(t, '')}</td>" for t in lengths) + "</tr>"
                   for (c, rn), cells in sorted(table.items()))
    return ("<h3>Accuracy against length</h3><p class=muted>Trained at the first length, evaluated step by "
            "step (inference form) at every length.</p>"
            f'<table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th>{head}</tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def data_parallel_section(run: Run, rows: list[dict[str, Any]]) -> str:
    """Data-parallel scaling: throughput, strong and weak scaling against one device."""
    points = data_parallel_scaling(rows)
    if not points:
        return ""
    virtual = any(((r.get("runner_extra") or {}).get("data_parallel") or {}).get("virtual_host_devices")
                  for r in run.records)
    note = (" The devices here are virtual CPU devices (XLA's forced host device count): they share the "
            "machine's cores, so these figures show what sharding costs, not a speed-up." if virtual else "")
    body = "".join(
        f'<tr><td class="t">{e(p["case"])}</td><td class="t">{e(p["runner"])}</td><td>{p["devices"]}</td>'
        f'<td>{p["global_batch"]}</td><td>{p["per_device_batch"]}</td><td>{_num(p["epoch_s"])}</td>'
        f'<td>{_num(p.get("samples_per_s"), "{:.0f}")}</td><td>{_num(p.get("strong_speedup"), "{:.2f}x")}</td>'
        f'<td>{_num(p.get("strong_efficiency"), "{:.0%}")}</td><td>{_num(p.get("weak_ratio"), "{:.2f}x")}</td>'
        f'<td>{_num(p.get("weak_efficiency"), "{:.0%}")}</td>'
        f'<td>{_num(None if p.get("accuracy") is None else 100 * p["accuracy"], "{:.1f}%")}</td></tr>'
        for p in points)
    head = "".join(f"<th>{h}</th>" for h in ("devices", "global batch", "per-device batch", "epoch s", "samples/s",
                                              "speed-up (same global batch)", "efficiency", "throughput ratio "
                                              "(same per-device batch)", "efficiency", "test acc"))
    return ("<h3>Data-parallel scaling</h3><p class=muted>Each batch sharded over the devices (jax.sharding "
            "mesh), gradients all-reduced; against the one-device run of the same global batch (strong "
            f"scaling) and of the same per-device batch (weak scaling).{note}</p>"
            f'<div class="box"><table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th>'
            f"{head}</tr></thead><tbody>{body}</tbody></table></div>"
            + plot(plots.data_parallel(points), "data-parallel throughput"))


def precision_section(rows: list[dict[str, Any]]) -> str:
    """Each runner at bfloat16 / float16 against its own float32: speed-ups, accuracy change, the
    dtype it really computed in, parity against the reference at the same dtype."""
    points = precision_rows(rows)
    if not points:
        return ""

    def speedup(p: dict[str, Any], metric: str) -> str:
        return _num(p.get(f"{metric}_speedup"), "{:.2f}x")

    body = "".join(
        f'<tr><td class="t">{e(p["case"])}</td><td class="t">{e(p["runner"])}</td><td class="t">{e(p["dtype"])}</td>'
        f'<td class="t">{e(p.get("compute_dtype") or "-")}</td><td>{_num(p.get("epoch_s"))}</td>'
        f'<td>{speedup(p, "epoch_s")}</td><td>{_num(p.get("fwdbwd_ms"))}</td><td>{speedup(p, "fwdbwd_ms")}</td>'
        f'<td>{_num(None if p.get("accuracy") is None else 100 * p["accuracy"], "{:.1f}%")}</td>'
        f'<td>{_num(p.get("accuracy_change"), "{:+.1f}")}</td><td class="t">{e(p.get("parity") or "-")}</td>'
        f'<td class="t">{e(p["status"] if p["status"] != "ok" else "")} {e(p.get("reason", ""))}</td></tr>'
        for p in points)
    head = "".join(f"<th>{h}</th>" for h in ("epoch s", "epoch speed-up", "fwd+bwd ms", "fwd+bwd speed-up",
                                              "test acc", "acc change (points)"))
    return ("<h3>Precision</h3><p class=muted>Each runner at bfloat16 and float16 (mixed precision: float32 master "
            "weights and optimizer state, compute and membranes in the low dtype, readout mean and loss in "
            "float32, dynamic loss scaling for float16) against its own float32 run of the same case: speed-up "
            "is float32 time / this time (above 1: faster). computes in: the spikes' dtype measured in the job. "
            "Parity is against the reference at the same dtype, within four times the dtype's own rounding floor.</p>"
            '<div class="box"><table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th>'
            f'<th class="t">dtype</th><th class="t">computes in</th>{head}<th class="t">parity</th>'
            f'<th class="t">status</th></tr></thead><tbody>{body}</tbody></table></div>'
            + plot(plots.precision(points), "precision speed-up and accuracy"))


def efficiency_section(rows: list[dict[str, Any]]) -> str:
    """NeuroBench's metrics per row (:mod:`snnbench.harness.efficiency`), with the sparsity-by-layer plot."""
    data = [r for r in rows if r.get("sparsity") is not None]
    if not data:
        return ""
    body = "".join(
        f'<tr><td class="t">{e(r["case"])}</td><td class="t">{e(r["runner"])}</td>'
        f'<td class="t">{e(r["efficiency_of"])}</td><td>{r["params"]:,}</td>'
        f'<td>{_num(r["footprint_bytes"] / 1024, "{:.1f} KiB")}</td><td>{_num(r["sparsity"], "{:.3f}")}</td>'
        f'<td class="t">{e(" / ".join(f"{s:.3f}" for s in r["sparsity_layers"]))}</td>'
        f'<td>{engineering(r["synops_dense"])}</td><td>{engineering(r["synops_acs"])}</td>'
        f'<td>{engineering(r["synops_macs"])}</td></tr>' for r in data)
    return ("<h3>Efficiency (NeuroBench's metrics)</h3><p class=muted>From each runner's own forward spikes on one "
            "batch, with the canonical weights (so one definition for every framework): of the trained network on "
            "the first test batch where the job trained, else of the timed network on the timing batch. params and "
            "footprint: weights, biases and trained decays, plus each neuron layer's fixed constants, at float32; "
            "sparsity: zero outputs of the spiking layers over all outputs (the readout membrane is no activation), "
            "overall and per spiking layer; synaptic operations per sample over all time steps, biases excluded: "
            "dense (every weight times every input), effective ACs (non-zero weights times non-zero spike inputs) "
            "and effective MACs (the same for non-spike inputs). Cross-checked exactly against the neurobench "
            "package on an snnTorch model (tests/test_efficiency.py).</p>"
            '<div class="box"><table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th>'
            '<th class="t">network</th><th>params</th><th>footprint</th><th>sparsity</th>'
            '<th class="t">sparsity by layer</th><th>dense ops</th><th>effective ACs</th><th>effective MACs</th>'
            f'</tr></thead><tbody>{body}</tbody></table></div>'
            + plot(plots.sparsity_by_layer(data), "activation sparsity by layer"))


def nir_records(run: Run) -> list[dict[str, Any]]:
    """The NIR check's records, the newest per (case, runner, framework, direction): a re-run check replaces."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in run.records:
        if r.get("metric") == "nir":
            key = (r.get("case"), r.get("runner"), r.get("framework"), r.get("direction"))
            latest.pop(key, None)
            latest[key] = r
    return list(latest.values())


def nir_section(run: Run) -> str:
    """The NIR check's matrix (:mod:`snnbench.interop.check`): framework x direction -> accuracy or reason."""
    recs = nir_records(run)
    if not recs:
        return ""
    own = [r for r in recs if r.get("framework") == "snnbench"]
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in recs:
        if r.get("framework") != "snnbench":
            cells.setdefault((r["case"], r["framework"]), {})[r["direction"]] = r

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "<td></td><td></td>"
        text = _num(100 * r["value"], "{:.1f}%") if r.get("value") is not None else e(r["status"])
        cls = "bad" if r["status"] == "failed" else "muted" if r["status"] == "skipped" else ""
        return f'<td class="{cls}">{text}</td><td class="t">{e(r.get("reason", ""))}</td>'

    body = "".join(f'<tr><td class="t">{e(case)}</td><td class="t">{e(fw)}</td>{cell(d.get("import"))}'
                   f'{cell(d.get("export"))}</tr>' for (case, fw), d in cells.items())
    ref = "; ".join(f"{r['case']}: {100 * r['value']:.1f}%" for r in own if r.get("value") is not None)
    return ("<h3>NIR interoperability</h3><p class=muted>The reference's trained network written as NIR "
            f"(snnbench export; its own export -> import round trip scores {e(ref)}) and read by each framework's "
            "own NIR reader, scored on the same test set in that framework (import); the same network built in "
            "each framework's idiom with the same weights, written by its own NIR writer and read back by "
            "snnbench (export). Where an accuracy differs, the reason says what the framework made of each node "
            "and, where it could be stated, what the reference scores computing exactly that reading.</p>"
            '<div class="box"><table class="sortable"><thead><tr><th class="t">case</th><th class="t">framework</th>'
            '<th>import acc</th><th class="t">import: measured cause</th><th>export acc</th>'
            f'<th class="t">export: measured cause</th></tr></thead><tbody>{body}</tbody></table></div>')


def scaling_points(run: Run) -> list[dict[str, Any]]:
    """fwd / fwd+bwd medians of cases whose shape names ``n`` (the layer suite)."""
    pts = []
    for r in run.records:
        shape = r.get("shape") or {}
        if r.get("status") == "ok" and r.get("metric") in ("fwd_ms", "fwdbwd_ms") and "n" in shape and r.get("stats"):
            st = r["stats"]
            mem = r.get("peak_device_bytes") or r.get("peak_rss_bytes") or 0
            pts.append({"runner": r["runner"], "metric": r["metric"], "n": shape["n"], "T": shape["T"],
                        "peak_mib": mem / 2**20,
                        "batch": shape.get("batch"), "group": shape.get("group"), "median": st["median"],
                        "ci_low": st["ci_low"],
                        "ci_high": st["ci_high"]})
    return pts


def _baseline_for(group: str, groups: set[str], prefix: str) -> str | None:
    """The baseline group with ``prefix`` and the same layer-count suffix (``psn-1L`` for ``dsn-spike-1L``)."""
    suffix = group.rsplit("-", 1)[-1]
    found = [g for g in groups if g.startswith(prefix) and g.rsplit("-", 1)[-1] == suffix]
    return found[0] if found else None


def sequence_tables(run: Run, points: list[dict[str, Any]]) -> str:
    """For sweeps over T with several neuron groups: the largest T each ran, and fwd+bwd speed-ups
    against the sequential LIF (``lif-seq-*``) and PSN (``psn-*``) of the same depth and runner."""
    groups = {p.get("group") for p in points}
    if len(groups) < 2 or len({p["T"] for p in points}) < 2:
        return ""
    fwdbwd = {(p["runner"], p["group"], p["T"]): p["median"] for p in points if p["metric"] == "fwdbwd_ms"}
    failed: dict[tuple[str, str], list[str]] = {}
    for r in run.records:
        shape = r.get("shape") or {}
        if r.get("metric") == "job" or "group" not in shape:
            continue
        if r.get("status") in ("oom", "timeout", "crashed", "failed"):
            failed.setdefault((r["runner"], shape["group"]), []).append(f"T={shape['T']}: {r['status']}")
    rows = []
    for runner, group in sorted({(k[0], k[1]) for k in fwdbwd}):
        ts = sorted(T for (r_, g, T) in fwdbwd if r_ == runner and g == group)
        t_max = ts[-1]
        cells = [e(group), e(runner), str(t_max), e("; ".join(failed.get((runner, group), [])) or "none")]
        for prefix in ("lif-seq", "psn-"):
            base = _baseline_for(group, groups, prefix)
            b = fwdbwd.get((runner, base, t_max)) if base else None
            mine = fwdbwd[(runner, group, t_max)]
            cells.append(f"{b / mine:.2f}x" if b else "-")
        rows.append("<tr>" + "".join(f'<td class="t">{c}</td>' for c in cells) + "</tr>")
    head = "".join(f'<th class="t">{h}</th>' for h in ("neuron", "runner", "largest T run", "failed at",
                                                       "speed-up vs sequential LIF", "speed-up vs PSN"))
    return ("<h3>Long sequences</h3><p class=muted>Speed-ups: forward+backward time of the same-depth "
            "sequential LIF (or PSN), same runner, at the largest T both ran, divided by this neuron's. "
            "Above 1: this neuron is faster.</p>"
            f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')




def scaling_section(run: Run) -> str:
    """The layer suite's time against n and T (log-log), memory against T, long-sequence speed-ups."""
    points = scaling_points(run)
    if not points:
        return ""
    return "".join([
        plot(plots.scaling(points, "n", ("T", "batch"), "forward+backward time vs neurons n"), "time vs neurons"),
        plot(plots.scaling(points, "T", ("n", "batch"), "forward+backward time vs time steps T"), "time vs T"),
        plot(plots.scaling(points, "T", ("n", "batch"), "peak memory vs time steps T", y_key="peak_mib",
                           ylabel="peak memory (MiB)"), "memory vs T"),
        sequence_tables(run, points)])


PHASES = ("fwd", "fwdbwd", "gemm_floor", "train")
PHASE_NAMES = {"fwd": "forward", "fwdbwd": "fwd+bwd", "gemm_floor": "GEMM floor", "train": "training"}


def memory_table(rows: list[dict[str, Any]]) -> str:
    """Peak memory of each phase (each from a reset peak) per (case, runner), folded: the device's
    peak where the device has memory of its own, else the host's resident peak. Only phases measured."""
    data = [r for r in rows if any((r.get("memory") or {}).get(p) for p in PHASES)]
    if not data:
        return ""
    device = any(m.get("device_peak_bytes") for r in data for m in r["memory"].values())
    key = "device_peak_bytes" if device else "host_peak_bytes"
    phases = [p for p in PHASES if any(((r["memory"].get(p) or {}).get(key)) for r in data)]

    def cell(r: dict[str, Any], p: str) -> str:
        v = (r["memory"].get(p) or {}).get(key)
        return f'<td data-v="{v or ""}">{_num(None if not v else v / 2**30, "{:.2f}")}</td>'

    body = "".join(f'<tr><td class="t">{e(r["case"])}</td><td class="t">{e(r["runner"])}</td>'
                   + "".join(cell(r, p) for p in phases) + "</tr>" for r in data)
    head = "".join(f"<th>{PHASE_NAMES[p]}</th>" for p in phases)
    where = "device" if device else "host (resident set)"
    return (f"<details><summary>Peak {where} memory per phase, GiB</summary><p class=muted>Each phase's peak from "
            "a reset peak, in its own worker process.</p><div class=\"box\"><table class=\"sortable\"><thead><tr>"
            f'<th class="t">case</th><th class="t">runner</th>{head}</tr></thead><tbody>{body}</tbody></table>'
            "</div></details>")


PARITY_ORDER = {"fail": 0, "failed": 0, "crashed": 0, "timeout": 0, "inconclusive": 1, "deviates": 2, "pass": 3,
                "reference": 4}


def parity_section(run: Run) -> str:
    """The gate's verdicts of one run, folded: failures, inconclusive and deviations first (skips are
    listed once, under failures and skips)."""
    recs = [r for r in run.records if r.get("metric") == "parity" and r.get("status") != "skipped"]
    if not recs:
        return ""
    verdict = {id(r): str(r.get("value") if r.get("status") == "ok" else r.get("status")) for r in recs}
    recs.sort(key=lambda r: PARITY_ORDER.get(verdict[id(r)], 0))
    counts: dict[str, int] = {}
    for r in recs:
        counts[verdict[id(r)]] = counts.get(verdict[id(r)], 0) + 1
    cls = {"pass": "ok", "deviates": "warn", "inconclusive": "warn"}
    rows = "".join(f'<tr><td class="t">{e(r["case"])}</td><td class="t">{e(r["runner"])}</td>'
                   f'<td class="t {cls.get(verdict[id(r)], "bad")}">{e(verdict[id(r)])}</td>'
                   f'<td class="t">{e(parity_text(r.get("reason", "")))}</td></tr>' for r in recs)
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: PARITY_ORDER.get(kv[0], 0)))
    return (f"<details><summary><b>{e(str(run.manifest.get('suite') or run.name))}</b>: {e(summary)}</summary>"
            '<div class="box"><table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th>'
            f'<th class="t">result</th><th class="t">measured</th></tr></thead><tbody>{rows}</tbody></table></div>'
            "</details>")


def problems(run: Run) -> str:
    """Every failure and skip of a run once per (case, runner, status, reason), its records' metrics merged."""
    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for r in run.records:
        if r.get("status") != "ok" and r.get("metric") != "nir":
            runner, reason = str(r.get("runner")), str(r.get("reason", ""))
            reason = reason[len(runner) + 2:] if reason.startswith(f"{runner}: ") else reason  # the parity record's
            key = (str(r.get("case")), runner, str(r.get("status")), reason)
            seen.setdefault(key, []).append(str(r.get("metric")))
    name = e(str(run.manifest.get("suite") or run.name))
    if not seen:
        return f"<p><b>{name}</b>: none, every case ran.</p>"
    rows = "".join(
        f'<tr><td class="t">{e(c)}</td><td class="t">{e(rn)}</td><td class="t {"muted" if s == "skipped" else "bad"}">'
        f'{e(s)}</td><td class="t">{e(reason)}</td><td class="t muted">{e(", ".join(dict.fromkeys(ms)))}</td></tr>'
        for (c, rn, s, reason), ms in seen.items())
    return (f'<p><b>{name}</b></p><div class="box"><table class="sortable"><thead><tr><th class="t">case</th>'
            '<th class="t">runner</th><th class="t">status</th><th class="t">reason</th><th class="t">records</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></div>")
