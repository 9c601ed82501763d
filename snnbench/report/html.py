"""A self-contained HTML report (inline SVG charts, sortable tables, no network access), plus a
Markdown summary and a CSV of every record.

The page opens with the answer: the machine, the data, the commits and a table of contents, then
per workload (SHD, N-MNIST, the micro-benchmarks) the runners ranked in a bar chart with the flags a
reader needs (:mod:`.answer`); then per run its table and plots; how to read them once; the parity
verdicts folded; each failure and skip once; one environment table (:mod:`.envtable`)."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

from . import palette, plots
from .answer import LEGEND, anchors, answer_section, order_runs, page_header, suite_title
from .baseline import Baseline, change_cell, match, notice, version_note
from .envtable import environment_table
from .flags import by_runner, case_flags
from .fmt import e, num as _num, parity_text, plain
from .load import Run, flat_records, summary_rows
from .population import population_markdown, population_section
from .versions import versions_section
from .timespent import time_section
from .sections import (data_parallel_section, efficiency_section, extrapolation_section, memory_table, nir_records,
                       nir_section, parity_section, plot, precision_section, problems, scaling_section)
from ..results.summary import engineering, precision_rows

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1rem auto 2rem;max-width:1200px;
color:#222;line-height:1.4;padding:0 1rem}
h1{font-size:1.5rem;margin:.2rem 0 .4rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin:1.6rem 0 .3rem}h3{font-size:1.05rem;margin:.8rem 0 .2rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.3rem 0;font-size:.92rem}
dl.facts dt{font-weight:600;color:#444}dl.facts dd{margin:0}
.synthetic{background:#fff4d6;border:1px solid #e8c766;border-radius:4px;padding:.35rem .7rem;margin:.4rem 0;
font-size:.92rem}
ul.flags{margin:.2rem 0 .4rem;padding-left:1.1rem;color:#8a4b00;font-size:.9rem}ul.flags li{list-style:none;
margin-left:-1.1rem}
nav.toc{font-size:.9rem;margin:.4rem 0;padding:.3rem 0;border-top:1px solid #eee;border-bottom:1px solid #eee}
nav.toc a{white-space:nowrap}
p.answer{margin:.2rem 0 .3rem;font-size:.95rem}p.meta{margin:.1rem 0 .3rem}p.legend{margin:.1rem 0 .3rem}
.charts{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:flex-start}
.cases.grid{display:flex;flex-wrap:wrap;gap:0 2rem}.cases.grid .case{flex:0 1 auto;max-width:580px}
svg.chart{max-width:100%;height:auto;overflow:visible}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0 1rem;width:100%}
th,td{border:1px solid #ddd;padding:.25rem .35rem;text-align:right;vertical-align:top}
th{white-space:normal;background:#f4f6f8;cursor:pointer;user-select:none}th[title]{text-decoration:underline dotted #999}
.box{overflow-x:auto;max-width:100%}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.t,th.t{text-align:left}tr:nth-child(even) td{background:#fafbfc}
td.t.key,th.key,.nw{white-space:nowrap}
table.env td.diff{background:#fff0c2}table.env tr.differs th{background:#fde9b5}
.ok{color:#1a7f37}.bad{color:#b42318}.warn{color:#9a6700}.flag{color:#b54708;font-weight:bold}
.muted{color:#666;font-size:.85rem}img.plot{max-width:100%;height:auto;display:block;margin:.5rem 0}
.baseline{background:#eef4fb;border:1px solid #c9dbef;border-radius:4px;padding:.3rem .8rem;margin:.5rem 0}
code{background:#f4f6f8;padding:0 .2rem}details{margin:.4rem 0}summary{cursor:pointer}
mark{background:#fde9b5}
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


def _cell(text: str, value: Any = None, cls: str = "", title: str = "") -> str:
    v = "" if value is None else value
    c = f' class="{cls}"' if cls else ""
    t = f' title="{e(title)}"' if title else ""
    return f'<td{c}{t} data-v="{e(str(v))}">{text}</td>'


def _median_ci(row: dict[str, Any], metric: str) -> tuple[str, str]:
    """A median with its spread (half the 95% CI as a share of it) where it has several samples, and
    the tooltip with the CI itself; 'unstable' past 10% coefficient of variation."""
    v = row.get(metric)
    if v is None:
        return "", ""
    lo, hi = row.get(f"{metric}_ci") or (None, None)
    n = row.get(f"{metric}_n")
    text, title = e(plain(v)), ""
    if lo is not None and hi is not None and hi > lo and (n is None or n > 1) and v:
        text = f'<span class="nw">{text} <span class="muted">±{100 * (hi - lo) / 2 / v:.0f}%</span></span>'
        title = f"median {plain(v)}, 95% CI [{plain(lo)}, {plain(hi)}]" + (f", {n} samples" if n else "")
    cv = row.get(f"{metric}_cv")
    if cv and cv > 0.10:
        text += ' <span class="warn" title="coefficient of variation above 10%">unstable</span>'
    return text, title


def _accuracy_flag(text: str | None) -> str:
    return f' <span class="warn" title="{e(parity_text(text))}">below ref</span>' if text else ""


def _consistency_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return _cell("")
    cls = "" if c["agree"] else "bad"
    title = (f"epoch {c['epoch_ms_per_batch']:.2f} ms per batch / fwd+bwd {c['fwdbwd_ms_per_step']:.2f} ms per step"
             + ("" if c["agree"] else f": beyond {c['bound']:g}x, a figure is wrong"))
    return _cell(f'<span title="{e(title)}">{c["ratio"]:.2f}</span>', c["ratio"], cls)


PARITY_CLS = {"pass": "ok", "reference": "muted", "deviates": "warn", "skipped": "muted", "inconclusive": "warn"}

#: column -> what it means (the header's tooltip, and the list under "How to read")
COLUMN_HELP = {
    "case": "the suite's case: network, sizes and batch",
    "runner": "the framework adapter (a -compile runner: the same adapter under torch.compile); ⚠: a flag, "
              "hover it",
    "epoch s": "training epoch, median over the epochs after the first; ±: half the 95% CI of the median, as a "
               "share of it (hover for the CI)",
    "fwd+bwd ms": "forward + backward per step: K distinct batches run the way the runner's training loop runs "
                  "its steps (one compiled program for the JAX runners), divided by K",
    "x ref": "time relative to the reference runner's (the epoch where the case trains, else fwd+bwd)",
    "test acc": "test accuracy after the last epoch; 'below ref': more than 2 points under the reference's "
                "(hover: by how much, and the runner's declared deviations)",
    "parity": "the parity gate's verdict against the reference (How to read, below)",
    "change": "time against the baseline run (--baseline): significant only when both 95% CIs separate, with "
              "at least 3 samples each, as snnbench compare decides",
    "status": "the job's worst status (hover for the reason)",
    "version": "with --baseline: the framework and version the runner recorded, highlighted where it changed "
               "since the baseline (else every version is in the environment table)",
    "compile s": "compile time, kept out of the epoch time (one measurement)",
    "time to acc": "training seconds, compile included, until the test accuracy first reached the target",
    "fwd ms": "forward per step, measured like fwd+bwd",
    "per call": "fwd+bwd with one batch per call (ms)",
    "fwd+bwd / floor": "fwd+bwd per step divided by the same worker's time for the workload's matrix products "
                       "alone (1.0 = no overhead above the GEMMs)",
    "batch / step": "the epoch's time per batch (optimizer and data included) divided by fwd+bwd per step: the "
                    "same work measured twice (flagged outside 1/1.3..1.3)",
    "peak RSS": "the job's largest phase peak of resident memory (GiB)",
    "sparse / ops": "activation sparsity of the spiking layers / effective synaptic operations per sample "
                    "(NeuroBench's definitions, see Efficiency)",
}
KEY_COLUMNS = ("case", "runner", "epoch s", "fwd+bwd ms", "x ref", "test acc", "parity")
TRAINED = ["case", "runner", "epoch s", "x ref", "test acc", "parity", "change", "status", "version", "compile s",
           "time to acc", "fwd ms", "fwd+bwd ms", "per call", "fwd+bwd / floor", "batch / step", "peak RSS",
           "sparse / ops"]
TIMED = ["case", "runner", "fwd+bwd ms", "x ref", "parity", "change", "status", "version", "fwd ms", "per call",
         "fwd+bwd / floor", "peak RSS", "sparse / ops"]
TEXT_COLUMNS = {"case", "runner", "version", "status", "parity"}


def _time_cells(r: dict[str, Any], metric: str, target: float) -> dict[str, str]:
    """The timing columns of a row: epoch, ratio to the reference, compile, time to accuracy, per step
    (the one the case is ranked by, ``metric``, kept on one line)."""
    out = {}
    for col, key in (("epoch s", "epoch_s"), ("fwd ms", "fwd_ms"), ("fwd+bwd ms", "fwdbwd_ms")):
        text, title = _median_ci(r, key)
        out[col] = _cell(text, r.get(key), "key" if key == metric else "", title)
    ratio = r.get(f"{metric}_vs_ref") or r.get("fwdbwd_ms_vs_ref")  # a timing-only case of a training run
    out["x ref"] = _cell(_num(ratio, "{:.2f}x"), ratio)
    out["compile s"] = _cell(_num(r.get("compile_s")), r.get("compile_s"))
    out["time to acc"] = _cell(_num(r.get("tta_s"), "{:.1f}&nbsp;s") or ("not reached" if r.get("curve") else ""),
                               r.get("tta_s"))
    out["per call"] = _cell(_num(r.get("fwdbwd_ms_per_call")), r.get("fwdbwd_ms_per_call"))
    out["fwd+bwd / floor"] = _cell(_num(r.get("fwdbwd_ms_floor"), "{:.2f}x"), r.get("fwdbwd_ms_floor"))
    out["batch / step"] = _consistency_cell(r.get("step_consistency"))
    return out


def _other_cells(r: dict[str, Any], metric: str, flags: list, base: Baseline | None) -> dict[str, str]:
    """Runner (with its flags), accuracy, parity, change, status, version, memory, efficiency."""
    marks = "".join(f' <span class="flag" title="{e(f.text)}">⚠</span>' for f in flags if f.kind != "accuracy")
    acc = r.get("accuracy")
    parity = r.get("parity") or ""
    change, change_v = change_cell(base, r, metric)
    status_cls = "ok" if r["status"] == "ok" else "bad" if r["status"] != "skipped" else "muted"
    version = e(f"{r.get('framework') or ''} {r.get('version') or ''}".strip()) + version_note(base, r)
    return {
        "case": _cell(e(r["case"]), r["case"], "t key"),
        "runner": _cell(e(r["runner"]) + marks, r["runner"], "t key"),
        "test acc": _cell(_num(None if acc is None else 100 * acc, "{:.1f}%") + _accuracy_flag(r.get("accuracy_flag")),
                          acc, "key"),
        "parity": _cell(f'<span class="{PARITY_CLS.get(parity, "bad" if parity else "")}">{e(parity)}</span>',
                        parity, "t key", parity_text(r.get("parity_detail", ""))),
        "change": _cell(change, change_v),
        "status": _cell(f'<span class="{status_cls}">{e(r["status"])}</span>', r["status"], "t",
                        r.get("reason") or ""),
        "version": _cell(version, r.get("version"), "t"),
        "peak RSS": _cell(_num(None if not r.get("peak_rss_bytes") else r["peak_rss_bytes"] / 2**30, "{:.2f}"),
                          r.get("peak_rss_bytes")),
        "sparse / ops": _cell(f'{r["sparsity"]:.2f} / {engineering(r["synops_effective"])}'
                              if r.get("sparsity") is not None else "", r.get("sparsity")),
    }


def _shown(column: str, rows: list[dict[str, Any]], cells: list[dict[str, str]]) -> bool:
    """Whether a secondary column says anything: status only where a row is not ok; others where
    some cell is not empty."""
    if column == "status":
        return any(r["status"] != "ok" for r in rows)
    return any(re.sub(r"<[^>]*>", "", row[column]).strip() for row in cells)


def summary_table(rows: list[dict[str, Any]], target: float, base: Baseline | None = None) -> str:
    """Every row of a run: the key columns first (case, runner, time, ratio, accuracy, parity), so that
    they stay on screen in a narrow window; the rest scroll inside the table's box. Column meanings
    in the headers' tooltips (and once under How to read)."""
    training = any(r.get("epoch_s") is not None or r.get("compile_s") is not None for r in rows)
    # the versions are in the environment table; here only against a baseline, to show a change
    columns = [c for c in (TRAINED if training else TIMED) if c not in ("change", "version") or base is not None]
    metric = "epoch_s" if training else "fwdbwd_ms"
    flags: dict[tuple[str, str], list] = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        for runner, fl in by_runner(case_flags([r for r in rows if r["case"] == case], target)).items():
            flags[(case, runner)] = fl
    cells = [{**_time_cells(r, metric, target), **_other_cells(r, metric, flags.get((r["case"], r["runner"]), []),
                                                               base)} for r in rows]
    columns = [c for c in columns if c in KEY_COLUMNS or _shown(c, rows, cells)]
    help_ = {**COLUMN_HELP, "time to acc": f"{COLUMN_HELP['time to acc']} ({100 * target:.0f}%)"}
    label = {"time to acc": f"time to {100 * target:.0f}%"}
    key = set(KEY_COLUMNS) - {"fwd+bwd ms" if training else "epoch s"}
    head = "".join(f'<th class="{"t " if c in TEXT_COLUMNS else ""}{"key" if c in key else ""}" '
                   f'title="{e(help_[c])}">{e(label.get(c, c))}</th>' for c in columns)
    body = ["<tr>" + "".join(row[c] for c in columns) + "</tr>" for row in cells]
    return (f'<div class="box"><table class="sortable summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def details_section(run: Run, rows: list[dict[str, Any]], target: float, anchor: str, base: Baseline | None) -> str:
    """A run's table and plots: everything measured, below the headline."""
    cases = list(dict.fromkeys(r["case"] for r in rows if r.get("curve")))
    curves = [plot(plots.accuracy_vs_time(rows, case, target), f"accuracy vs time {case}") for case in cases]
    parts = [f'<section id="{anchor}"><h2>{e(suite_title(run))}: all figures <span class="muted">{e(run.name)}'
             "</span></h2>", notice(run, base), summary_table(rows, target, base), versions_section(rows, anchor),
             population_section(rows, target, anchor),
             *curves, memory_table(rows), time_section(run, anchor),
             scaling_section(run), data_parallel_section(run, rows), precision_section(rows),
             efficiency_section(rows), nir_section(run), extrapolation_section(run), "</section>"]
    return "".join(p for p in parts if p)


PARITY_HELP = (
    "Each runner gets the reference's canonical weights and input batch on the benchmarked device; compared: "
    "the spikes of every spiking layer, the readout (relative error 1e-4), the loss (1e-5) and every gradient "
    "(cosine 0.999, norm 1e-3) at float32; at bfloat16 / float16 against the reference at that dtype, within four "
    "times the dtype's own rounding floor. <b>pass</b>: all hold. <b>deviates</b>: they do not, the runner "
    "declared why, and the reference configured with those deviations meets every tolerance (proven). "
    "<b>inconclusive</b>: no input made every layer fire and every gradient non-zero, so the check could not have "
    "failed. <b>fail</b>: a difference no declaration explains. <b>Spike mismatches</b>: (neuron, step) spike "
    "decisions where runner and reference differ, as a share of the reference's spike count; above 100% when "
    "the runner fires where the reference is silent.")


def how_to_read(target: float) -> str:
    """Every column's meaning and the parity gate, once for the page."""
    items = "".join(f"<dt>{e(c)}</dt><dd>{e(h)}</dd>" for c, h in COLUMN_HELP.items())
    return (f'<section id="how-to-read"><h2>How to read</h2><p>Times are medians on the machine above; the charts '
            f"rank the runners of each case, fastest first. Time to accuracy: target {100 * target:.0f}% test "
            f'accuracy, compile included.</p><details><summary>The columns</summary><dl class="facts">{items}</dl>'
            f"</details><p><b>Parity gate.</b> {PARITY_HELP}</p></section>")


def _runners(runs: list[Run]) -> list[str]:
    return sorted({str(r["runner"]) for run in runs for r in run.records if r.get("runner")})


def render(runs: list[Run], target_acc: float = 0.8, baselines: list[Run] | None = None) -> str:
    """The page: header and answer first, then per run its figures, how to read, parity, skips, environment."""
    rows = {run.name: summary_rows(run.records, target_acc, run.name) for run in runs}
    palette.register(_runners(runs))
    runs = order_runs(runs, rows)
    ids = anchors(runs)
    detail = {name: f"figures-{anchor}" for name, anchor in ids.items()}
    base: dict[str, Baseline] = match(runs, baselines or [])
    parts = [page_header(runs, ids, detail)]
    parts += [answer_section(run, rows[run.name], target_acc, ids[run.name], detail[run.name],
                             LEGEND if i == 0 else "") for i, run in enumerate(runs)]
    parts += [details_section(run, rows[run.name], target_acc, detail[run.name], base.get(run.name)) for run in runs]
    parts.append(how_to_read(target_acc))
    parts.append('<section id="parity"><h2>Parity gate</h2>' + "".join(parity_section(r) for r in runs)
                 + "</section>")
    parts.append('<section id="skips"><h2>Failures and skips</h2>' + "".join(problems(r) for r in runs)
                 + "</section>")
    parts.append(f'<section id="environment"><h2>Environment</h2>{environment_table(runs)}</section>')
    parts.append(f'<p class="muted">Rendered {e(time.strftime("%Y-%m-%d %H:%M:%S"))} from {len(runs)} run(s)'
                 + (f", against {len(baselines)} baseline run(s)" if baselines else "") + ".</p>")
    body = "\n".join(p for p in parts if p)
    title = " / ".join(str(r.manifest.get("suite") or r.name) for r in runs)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>snnbench: {e(title)}</title><style>{CSS}</style></head><body>{body}<script>{JS}</script>"
            "</body></html>")


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
        lines += population_markdown(summary_rows(run.records, target_acc, run.name), target_acc, md)
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


def write_report(runs: list[Run], out: Path, target_acc: float = 0.8, baselines: list[Run] | None = None
                 ) -> list[Path]:
    """Write ``out`` (.html), and beside it ``.md`` and ``.csv``; returns the paths written. With
    ``baselines`` the page compares each run with the baseline run of its suite (:mod:`.baseline`)."""
    import pandas as pd

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs, target_acc, baselines), encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown(runs, target_acc), encoding="utf-8")
    csv = out.with_suffix(".csv")
    pd.DataFrame(flat_records(runs)).to_csv(csv, index=False)
    return [out, md, csv]
