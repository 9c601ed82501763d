"""A self-contained HTML report (plots embedded, sortable tables, no network access), plus a
Markdown summary and a CSV of every record."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

from . import plots
from ..results.summary import data_parallel_scaling, engineering, precision_rows
from .load import Run, flat_records, summary_rows

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0 1rem;width:100%}
th,td{border:1px solid #ddd;padding:.25rem .4rem;text-align:right;vertical-align:top}
th{white-space:normal}
.box{overflow-x:auto;max-width:100%}
.headline{background:#f4f8fb;border:1px solid #d6e4ef;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.headline table{background:#fff}.headline p{margin:.3rem 0}
th{background:#f4f6f8;cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.t,th.t{text-align:left}tr:nth-child(even) td{background:#fafbfc}
.ok{color:#1a7f37}.bad{color:#b42318}.warn{color:#9a6700}
.muted{color:#666;font-size:.85rem}img{max-width:100%;border:1px solid #eee;margin:.3rem 0}
code{background:#f4f6f8;padding:0 .2rem}details{margin:.4rem 0}
"""

# Sort on click: numbers by data-v, text otherwise; no external script.
JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var nx = parseFloat(x), ny = parseFloat(y), r;
        if (!isNaN(nx) && !isNaN(ny)) { r = nx - ny; }
        else if (isNaN(nx) !== isNaN(ny)) { r = isNaN(nx) ? 1 : -1; }
        else { r = String(x).localeCompare(String(y)); }
        return asc ? r : -r;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""

e = html.escape


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _num(v: Any, fmt: str = "{:.3g}") -> str:
    return "" if v is None else fmt.format(v)


def _cell(text: str, value: Any = None, cls: str = "") -> str:
    v = "" if value is None else value
    c = f' class="{cls}"' if cls else ""
    return f'<td{c} data-v="{e(str(v))}">{text}</td>'


def _median_ci(row: dict[str, Any], metric: str, fmt: str = "{:.3g}") -> str:
    v = row.get(metric)
    if v is None:
        return ""
    lo, hi = row.get(f"{metric}_ci") or (None, None)
    ci = f' <span class="muted">[{fmt.format(lo)}, {fmt.format(hi)}]</span>' if lo is not None and hi is not None else ""
    cv = row.get(f"{metric}_cv")
    flag = ' <span class="warn" title="coefficient of variation above 10%">unstable</span>' if cv and cv > 0.10 else ""
    return e(fmt.format(v)) + ci + flag


def _accuracy_flag(text: str | None) -> str:
    return f' <span class="warn" title="{e(text)}">below ref</span>' if text else ""


SUMMARY_COLUMNS = ["case", "runner", "version", "status", "epoch s [95% CI]", "x ref", "compile s",
                   "fwd ms", "fwd+bwd ms [95% CI]", "per call", "fwd+bwd / floor", "batch / step", "test acc",
                   "time to acc", "peak RSS", "sparse / ops", "parity"]


TRAINING_COLUMNS = {"epoch s [95% CI]", "x ref", "compile s", "batch / step", "test acc", "time to acc"}


def summary_table(rows: list[dict[str, Any]], target: float) -> str:
    trained = any(r.get("epoch_s") is not None or r.get("compile_s") is not None for r in rows)
    columns = [c for c in SUMMARY_COLUMNS if trained or c not in TRAINING_COLUMNS]
    keep = [c in columns for c in SUMMARY_COLUMNS]
    head = "".join(f'<th class="{"t" if c in ("case", "runner", "version", "status", "parity") else ""}">{e(c)}</th>'
                   for c in columns)
    body = []
    for r in rows:
        status_cls = "ok" if r["status"] == "ok" else "bad"
        parity = r.get("parity") or ""
        parity_cls = {"pass": "ok", "reference": "muted", "deviates": "warn", "skipped": "muted",
                      "inconclusive": "warn"}.get(
            parity, "bad" if parity else "")
        acc = r.get("accuracy")
        cells = [
            _cell(e(r["case"]), r["case"], "t"),
            _cell(e(r["runner"]), r["runner"], "t"),
            _cell(e(f"{r.get('framework') or ''} {r.get('version') or ''}".strip()), r.get("version"), "t"),
            _cell(f'<span class="{status_cls}">{e(r["status"])}</span>', r["status"], "t"),
            _cell(_median_ci(r, "epoch_s"), r.get("epoch_s")),
            _cell(_num(r.get("epoch_s_vs_ref"), "{:.2f}x"), r.get("epoch_s_vs_ref")),
            _cell(_num(r.get("compile_s"), "{:.2f}"), r.get("compile_s")),
            _cell(_median_ci(r, "fwd_ms"), r.get("fwd_ms")),
            _cell(_median_ci(r, "fwdbwd_ms"), r.get("fwdbwd_ms")),
            _cell(_num(r.get("fwdbwd_ms_per_call"), "{:.3g}"), r.get("fwdbwd_ms_per_call")),
            _cell(_num(r.get("fwdbwd_ms_floor"), "{:.2f}x"), r.get("fwdbwd_ms_floor")),
            _consistency_cell(r.get("step_consistency")),
            _cell(_num(None if acc is None else 100 * acc, "{:.1f}%") + _accuracy_flag(r.get("accuracy_flag")), acc),
            _cell(_num(r.get("tta_s"), "{:.1f} s") or ("not reached" if r.get("curve") else ""), r.get("tta_s")),
            _cell(_num(None if not r.get("peak_rss_bytes") else r["peak_rss_bytes"] / 2**30, "{:.2f} GiB"),
                  r.get("peak_rss_bytes")),
            _cell(f'{r["sparsity"]:.2f} / {engineering(r["synops_effective"])}' if r.get("sparsity") is not None
                  else "", r.get("sparsity")),
            _cell(f'<span class="{parity_cls}" title="{e(r.get("parity_detail", ""))}">{e(parity)}</span>', parity, "t"),
        ]
        body.append("<tr>" + "".join(c for c, k in zip(cells, keep) if k) + "</tr>")
    note = (f'<p class="muted">epoch s: median over the epochs after the first; x ref: epoch time relative to '
            f'the reference runner; fwd ms, fwd+bwd ms: per step, K distinct batches run the way the runner\'s '
            f'training loop runs its steps (one compiled program for the JAX runners), divided by K; per call: '
            f'one batch per call; fwd+bwd / floor: fwd+bwd per step divided by the same '
            f'worker\'s time for the workload\'s matrix products alone (1.0 = no overhead above the GEMMs); '
            f'batch / step: the epoch\'s time per batch (optimizer and data included) divided by fwd+bwd per '
            f'step, the same work measured twice (flagged outside 1/1.3..1.3); '
            f'test acc: "below ref" more than 2 points under the reference\'s (hover: by how much, and the runner\'s '
            f'declared deviations); time to acc: training seconds, compile included, until test accuracy first '
            f'reached {100 * target:.0f}%; peak RSS: the job\'s largest phase peak; sparse / ops: '
            f'activation sparsity of the spiking layers / effective synaptic operations per sample, NeuroBench\'s '
            f'definitions (Efficiency, below). Click a header to sort.</p>')
    return (f'<div class="box"><table class="sortable summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{note}')


def _consistency_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return _cell("")
    cls = "" if c["agree"] else "bad"
    title = (f"epoch {c['epoch_ms_per_batch']:.2f} ms per batch / fwd+bwd {c['fwdbwd_ms_per_step']:.2f} ms per step"
             + ("" if c["agree"] else f": beyond {c['bound']:g}x, a figure is wrong"))
    return _cell(f'<span title="{e(title)}">{c["ratio"]:.2f}</span>', c["ratio"], cls)


def environment(run: Run) -> str:
    m, env = run.manifest, run.manifest.get("environment", {})
    gpus = ", ".join(f"{g.get('name')} (driver {g.get('driver_version')})" for g in env.get("gpus", [])) or "none"
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()))
    git = env.get("git") or {}
    items = [
        ("command", f"<code>{e(m.get('command', ''))}</code>"),
        ("started / finished", e(f"{m.get('started', '')} / {m.get('finished', '')} ({m.get('status', '')})")),
        ("suite", e(f"{m.get('suite')}{' (quick)' if m.get('quick') else ''}: {m.get('description', '')}")),
        ("data", e("; ".join(m.get("data", [])))),
        ("CPU", e(f"{env.get('cpu')} x{env.get('cpu_count')}, governor {env.get('cpu_governor')}")),
        ("memory", e(f"{(env.get('memory_bytes') or 0) / 2**30:.1f} GiB")),
        ("allocator", e(" ".join(f"{k}={v}" for k, v in ((m.get("allocator") or {}).get("env") or {}).items())
                        or "not recorded")),
        ("GPU", e(gpus)),
        ("Python / platform", e(f"{env.get('python')} / {env.get('platform')}")),
        ("packages", e(pkgs)),
        ("git", e(f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}")),
    ]
    rows = "".join(f'<tr><th class="t">{k}</th><td class="t">{v}</td></tr>' for k, v in items)
    return f"<h3>{e(run.name)}</h3><table>{rows}</table>"


def problems(run: Run) -> str:
    bad = [r for r in run.records if r.get("status") not in ("ok",) and r.get("metric") != "nir"]
    if not bad:
        return "<p>None: every case ran.</p>"
    rows = "".join(
        f'<tr><td class="t">{e(str(r.get("case")))}</td><td class="t">{e(str(r.get("runner")))}</td>'
        f'<td class="t">{e(str(r.get("metric")))}</td><td class="t bad">{e(str(r.get("status")))}</td>'
        f'<td class="t">{e(str(r.get("reason", "")))}</td></tr>' for r in bad)
    return ('<table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th><th class="t">metric'
            f'</th><th class="t">status</th><th class="t">reason</th></tr></thead><tbody>{rows}</tbody></table>')


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
            + _img(plots.data_parallel(points), "data-parallel throughput"))


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
            + _img(plots.precision(points), "precision speed-up and accuracy"))


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
            + _img(plots.sparsity_by_layer(data), "activation sparsity by layer"))


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


def parity_section(run: Run) -> str:
    recs = [r for r in run.records if r.get("metric") == "parity"]
    if not recs:
        return ""
    rows = "".join(f'<tr><td class="t">{e(r["case"])}</td><td class="t">{e(r["runner"])}</td>'
                   f'<td class="t">{e(str(r.get("value") or r.get("status")))}</td>'
                   f'<td class="t">{e(r.get("reason", ""))}</td></tr>' for r in recs)
    return ("<h3>Parity gate</h3><p class=muted>Same canonical weights and input batch as the reference, on the "
            "benchmarked device; spikes per layer, readout (1e-4), loss (1e-5), gradients (cosine 0.999, norm "
            "1e-3) at float32; at bfloat16 / float16 against the reference at that dtype, within four times the "
            "dtype's own rounding floor (the reference at the dtype against itself at float32). deviates: the runner's declared deviations are proven, the reference configured the same way "
            "meets every tolerance; inconclusive: no input made every layer fire and every gradient non-zero, "
            "so the check could not have failed.</p>"
            '<table class="sortable"><thead><tr><th class="t">case</th><th class="t">runner</th><th class="t">'
            f'result</th><th class="t">measured</th></tr></thead><tbody>{rows}</tbody></table>')


HEADLINE_CASES = 6


def _machine(run: Run) -> str:
    env = run.manifest.get("environment") or {}
    gpus = ", ".join(str(g.get("name")) for g in env.get("gpus") or []) or "no GPU"
    return f"{env.get('cpu', 'unknown CPU')} x{env.get('cpu_count', '?')}, {gpus}"


def headline(run: Run, rows: list[dict[str, Any]], target: float) -> str:
    """The run at a glance: per case, the fastest runner, every runner's ratio to the reference, the
    accuracy range and the parity verdicts; the machine and data above; who reaches an accuracy
    first below."""
    m = run.manifest
    data = "; ".join(str(d) for d in m.get("data") or []) or "-"
    parts = [f'<div class="headline"><p><b>suite {e(str(m.get("suite", "")))}</b>'
             f'{" (quick)" if m.get("quick") else ""} on {e(_machine(run))}, {e(str(m.get("status", "")))}</p>'
             f'<p class="muted">data: {e(data)}</p>']
    cases = list(dict.fromkeys(r["case"] for r in rows))
    lines = []
    for case in cases[:HEADLINE_CASES]:
        mine = [r for r in rows if r["case"] == case]
        metric = "epoch_s" if any(r.get("epoch_s") for r in mine) else "fwdbwd_ms"
        timed = sorted((r for r in mine if r.get(metric)), key=lambda r: r[metric])
        if not timed:
            continue
        unit = "s per epoch" if metric == "epoch_s" else "ms fwd+bwd per step"
        fastest = f"<b>{e(timed[0]['runner'])}</b> ({timed[0][metric]:.3g} {unit})"
        ratios = ", ".join(f"{e(r['runner'])} {r[f'{metric}_vs_ref']:.2f}x" for r in timed
                           if r.get(f"{metric}_vs_ref") is not None)
        accs = [r["accuracy"] for r in mine if r.get("accuracy") is not None]
        acc = f"{100 * min(accs):.1f}-{100 * max(accs):.1f}%" if accs else "-"
        verdicts: dict[str, int] = {}
        for r in mine:
            if r.get("parity") and r["parity"] != "reference":
                verdicts[r["parity"]] = verdicts.get(r["parity"], 0) + 1
        parity = ", ".join(f"{n} {e(v)}" for v, n in sorted(verdicts.items())) or "-"
        lines.append(f'<tr><td class="t">{e(case)}</td><td class="t">{fastest}</td><td class="t">{ratios or "-"}</td>'
                     f'<td>{acc}</td><td class="t">{parity}</td></tr>')
    if lines:
        more = (f'<p class="muted">and {len(cases) - HEADLINE_CASES} more case(s) in the table below.</p>'
                if len(cases) > HEADLINE_CASES else "")
        parts.append('<div class="box"><table><thead><tr><th class="t">case</th><th class="t">fastest</th>'
                     '<th class="t">time relative to the reference (lower is faster)</th><th>test accuracy</th>'
                     f'<th class="t">parity</th></tr></thead><tbody>{"".join(lines)}</tbody></table></div>{more}')
    trained = [c for c in cases if any(r["case"] == c and r.get("curve") for r in rows)]
    if trained:
        parts.append(_img(plots.accuracy_vs_time(rows, trained[0], target), f"accuracy vs time {trained[0]}"))
    return "".join(parts) + "</div>"


def render(runs: list[Run], target_acc: float = 0.8) -> str:
    parts = [f"<h1>snnbench report</h1><p class=muted>{len(runs)} run(s), rendered "
             f"{e(time.strftime('%Y-%m-%d %H:%M:%S'))}. Every figure is in the tables; plots repeat them.</p>"]
    for run in runs:
        rows = summary_rows(run.records, target_acc, run.name)
        suite = run.manifest.get("suite", "")
        parts.append(f"<h2>{e(run.name)}: suite {e(str(suite))}</h2>")
        parts.append(headline(run, rows, target_acc))
        parts.append(summary_table(rows, target_acc))
        parts.append(_img(plots.bars(rows, "epoch_s", "training epoch time (median, 95% CI)", "seconds"), "epoch time"))
        parts.append(_img(plots.bars(rows, "tta_s", f"time to {100 * target_acc:.0f}% test accuracy", "seconds"),
                          "time to accuracy"))
        parts.append(_img(plots.bars(rows, "fwdbwd_ms", "forward+backward per step (median, 95% CI)", "ms",
                                     log=True), "forward backward time"))
        for case in dict.fromkeys(r["case"] for r in rows):
            parts.append(_img(plots.accuracy_curves(rows, case), f"accuracy curves {case}"))
        parts.append(_img(plots.memory_bars(rows), "peak memory"))
        layer_points = scaling_points(run)
        if layer_points:
            parts.append(_img(plots.scaling(layer_points, "n", ("T", "batch"), "forward+backward time vs neurons n"),
                              "time vs neurons"))
            parts.append(_img(plots.scaling(layer_points, "T", ("n", "batch"), "forward+backward time vs time steps T"),
                              "time vs T"))
            parts.append(_img(plots.scaling(layer_points, "T", ("n", "batch"), "peak memory vs time steps T",
                                            y_key="peak_mib", ylabel="peak memory (MiB)"), "memory vs T"))
            parts.append(sequence_tables(run, layer_points))
        parts.append(data_parallel_section(run, rows))
        parts.append(precision_section(rows))
        parts.append(efficiency_section(rows))
        parts.append(nir_section(run))
        parts.append(extrapolation_section(run))
        parts.append(parity_section(run))
        parts.append("<h3>Failures and skips</h3>" + problems(run))
    parts.append("<h2>Environment</h2>" + "".join(environment(run) for run in runs))
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>snnbench report</title>'
            f"<style>{CSS}</style></head><body>{body}<script>{JS}</script></body></html>")


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


MD_SPECIAL = "\\`*_[]|~"


def md(text: Any) -> str:
    """Text for a Markdown table cell, printed literally: HTML escaped as in the HTML page, Markdown's
    punctuation backslash-escaped (a '|' would split the row), newlines flattened."""
    out = html.escape(" ".join(str(text).split()))
    return "".join(f"\\{ch}" if ch in MD_SPECIAL else ch for ch in out)


def markdown(runs: list[Run], target_acc: float = 0.8) -> str:
    lines = ["# snnbench summary", ""]
    for run in runs:
        lines += [f"## {md(run.name)} ({md(run.manifest.get('suite'))})", "",
                  "| case | runner | status | epoch s | x ref | fwd+bwd ms | test acc | parity |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for r in summary_rows(run.records, target_acc, run.name):
            acc = f"{100 * r['accuracy']:.1f}%" if r.get("accuracy") is not None else ""
            lines.append(f"| {md(r['case'])} | {md(r['runner'])} | {md(r['status'])} | {_num(r.get('epoch_s'))} | "
                         f"{_num(r.get('epoch_s_vs_ref'), '{:.2f}x')} | {_num(r.get('fwdbwd_ms'))} | {acc} | "
                         f"{md(r.get('parity') or '')} |")
        lines.append("")
        lines += precision_markdown(summary_rows(run.records, target_acc, run.name))
        lines += efficiency_markdown(summary_rows(run.records, target_acc, run.name))
        lines += nir_markdown(run)
    return "\n".join(lines)


def precision_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The precision table (:func:`precision_rows`) as Markdown lines; none when the run has no low dtype."""
    points = precision_rows(rows)
    if not points:
        return []
    lines = ["### Precision (against each runner's own float32)", "",
             "| case | runner | dtype | computes in | epoch s | speed-up | fwd+bwd ms | speed-up | test acc | "
             "acc change | parity |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        acc = f"{100 * p['accuracy']:.1f}%" if p.get("accuracy") is not None else ""
        lines.append(f"| {md(p['case'])} | {md(p['runner'])} | {p['dtype']} | {md(p.get('compute_dtype') or '-')} | "
                     f"{_num(p.get('epoch_s'))} | {_num(p.get('epoch_s_speedup'), '{:.2f}x')} | "
                     f"{_num(p.get('fwdbwd_ms'))} | {_num(p.get('fwdbwd_ms_speedup'), '{:.2f}x')} | {acc} | "
                     f"{_num(p.get('accuracy_change'), '{:+.1f}')} | {md(p.get('parity') or p['status'])} |")
    return lines + [""]


def efficiency_markdown(rows: list[dict[str, Any]]) -> list[str]:
    data = [r for r in rows if r.get("sparsity") is not None]
    if not data:
        return []
    lines = ["### Efficiency (NeuroBench's metrics, per sample)", "",
             "| case | runner | network | params | footprint | sparsity | by layer | dense ops | effective ACs | "
             "effective MACs |", "|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in data:
        lines.append(f"| {md(r['case'])} | {md(r['runner'])} | {r['efficiency_of']} | {r['params']} | "
                     f"{r['footprint_bytes'] / 1024:.1f} KiB | {r['sparsity']:.3f} | "
                     f"{' / '.join(f'{s:.3f}' for s in r['sparsity_layers'])} | {engineering(r['synops_dense'])} | "
                     f"{engineering(r['synops_acs'])} | {engineering(r['synops_macs'])} |")
    return lines + [""]


def nir_markdown(run: Run) -> list[str]:
    recs = nir_records(run)
    if not recs:
        return []
    lines = ["### NIR interoperability (test accuracy after the trip, or why not)", "",
             "| case | framework | direction | accuracy | measured cause |", "|---|---|---|---:|---|"]
    for r in recs:
        acc = f"{100 * r['value']:.1f}%" if r.get("value") is not None else r["status"]
        lines.append(f"| {md(r['case'])} | {md(r['framework'])} | {md(r['direction'])} | {acc} | "
                     f"{md(r.get('reason', ''))} |")
    return lines + [""]


def write_report(runs: list[Run], out: Path, target_acc: float = 0.8) -> list[Path]:
    """Write ``out`` (.html), and beside it ``.md`` and ``.csv``; returns the paths written."""
    import pandas as pd

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs, target_acc), encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown(runs, target_acc), encoding="utf-8")
    csv = out.with_suffix(".csv")
    pd.DataFrame(flat_records(runs)).to_csv(csv, index=False)
    return [out, md, csv]
