"""The first screen of a report: the machine, the data (and what synthetic data means for the
accuracies), the commits, a table of contents, then per workload (SHD first, then N-MNIST, then the
micro-benchmarks) the ranking charts with the flags a reader needs."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from . import charts
from .flags import Flag, by_runner, case_flags, case_metric
from .fmt import e, plain, short_data
from .load import Run

SUITE_TITLES = {"shd": "SHD (Spiking Heidelberg Digits)", "nmnist": "N-MNIST", "layer": "Layer micro-benchmark",
                "longseq": "Long sequences"}
SUITE_ORDER = {"shd": 0, "nmnist": 1}
HEADLINE_CASES = 6  # ranking charts per run; the rest of a run's cases are in its table


def slug(text: str) -> str:
    """An HTML id from any text."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def trained(run_rows: list[dict[str, Any]]) -> bool:
    """Whether some row of a run trained (has an epoch time)."""
    return any(r.get("epoch_s") for r in run_rows)


def order_runs(runs: list[Run], rows: dict[str, list[dict[str, Any]]]) -> list[Run]:
    """SHD first, then N-MNIST, then the other training suites, then timing-only suites (stable)."""
    def key(item: tuple[int, Run]) -> tuple[int, int]:
        i, run = item
        suite = str(run.manifest.get("suite", ""))
        rank = SUITE_ORDER.get(suite, 2 if trained(rows[run.name]) else 3)
        return rank, i

    return [run for _, run in sorted(enumerate(runs), key=key)]


def anchors(runs: list[Run]) -> dict[str, str]:
    """run name -> its answer section's id: the suite's name, or the run's where a suite repeats."""
    suites = Counter(str(r.manifest.get("suite", "")) for r in runs)
    return {r.name: slug(r.manifest.get("suite", "")) if suites[str(r.manifest.get("suite", ""))] == 1
            else slug(r.name) for r in runs}


def suite_title(run: Run) -> str:
    """The workload's name for a heading: 'SHD (Spiking Heidelberg Digits)', else the suite's name."""
    suite = str(run.manifest.get("suite", ""))
    return SUITE_TITLES.get(suite, suite or run.name)


def _env(run: Run) -> dict[str, Any]:
    return run.manifest.get("environment") or {}


def machine_text(run: Run) -> str:
    """CPU model, cores, GPUs (or none), memory."""
    env = _env(run)
    gpus = ", ".join(str(g.get("name")) for g in env.get("gpus") or []) or "no GPU"
    mem = f", {env['memory_bytes'] / 2**30:.0f} GiB memory" if env.get("memory_bytes") else ""
    return f"{env.get('cpu', 'unknown CPU')}, {env.get('cpu_count', '?')} cores, {gpus}{mem}"


def commit_text(run: Run) -> str:
    """The commit measured, and whether the tree had uncommitted changes."""
    git = _env(run).get("git") or {}
    commit = str(git.get("commit") or "unknown")[:10]
    return commit + (" + uncommitted changes" if git.get("dirty") else "")


def synthetic(run: Run) -> bool:
    """Whether the run trained on snnbench's synthetic stand-in for a dataset."""
    return bool(run.manifest.get("synthetic_data")) or any(
        isinstance(r.get("data"), dict) and r["data"].get("synthetic") for r in run.records[:50])


def _grouped(runs: list[Run], text) -> str:
    """'value (suite, suite) · value (suite)': each distinct value once, with the suites it holds for."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(text(run), []).append(str(run.manifest.get("suite") or run.name))
    if len(groups) == 1:
        return e(next(iter(groups)))
    return " · ".join(f"{e(v)} <span class=muted>({e(', '.join(s))})</span>" for v, s in groups.items())


def provenance_flags(runs: list[Run]) -> list[str]:
    """Differences between the runs of one page that a reader comparing them must know."""
    out = []
    machines = {machine_text(r) for r in runs}
    if len(machines) > 1:
        out.append(f"the runs come from {len(machines)} different machines: compare within a run only")
    commits = {str((_env(r).get("git") or {}).get("commit")) for r in runs}
    if len(commits) > 1:
        out.append(f"the runs come from {len(commits)} commits (see Environment)")
    dirty = [str(r.manifest.get("suite") or r.name) for r in runs if (_env(r).get("git") or {}).get("dirty")]
    if dirty:
        out.append(f"{', '.join(dirty)}: measured with uncommitted changes in the tree, so not exactly the "
                   "commit named")
    return out


def data_brief(run: Run) -> str:
    """A run's data in a few words: no cache path, no generator version, no 'no real ... found' (the
    synthetic-data notice says it)."""
    out = []
    for d in run.manifest.get("data") or []:
        text = re.sub(r"snnbench-synthetic-[\w-]+, ", "", short_data(d))
        out.append(re.sub(r"; no real .*$", "", text))
    return " / ".join(out) or "-"


def page_header(runs: list[Run], ids: dict[str, str], detail_ids: dict[str, str]) -> str:
    """Title, machine, data (with the synthetic-data warning), commits and their flags, contents."""
    data = " · ".join(f"<b>{e(str(r.manifest.get('suite', r.name)))}</b>: {e(data_brief(r))}" for r in runs)
    synth = [str(r.manifest.get("suite") or r.name) for r in runs if synthetic(r)]
    parts = [f"<h1>snnbench results</h1><dl class=facts><dt>machine</dt><dd>{_grouped(runs, machine_text)}</dd>"
             f"<dt>data</dt><dd>{data}</dd><dt>commit</dt><dd>{_grouped(runs, commit_text)}</dd></dl>"]
    if synth:
        parts.append(f'<p class="synthetic"><b>Synthetic data</b> ({e(", ".join(synth))}): generated in the '
                     "datasets' real file formats because the real datasets were not found. The test accuracies "
                     "show whether every runner trains the same network equally well; they are <b>not comparable "
                     "with published accuracies</b> on the real datasets.</p>")
    flags = provenance_flags(runs)
    if flags:
        parts.append('<ul class="flags">' + "".join(f"<li>⚠ {e(f)}</li>" for f in flags) + "</ul>")
    results = " · ".join(f'<a href="#{ids[r.name]}">{e(suite_title(r))}</a>' for r in runs)
    details = " · ".join(f'<a href="#{detail_ids[r.name]}">{e(str(r.manifest.get("suite") or r.name))}</a>'
                         for r in runs)
    parts.append(f'<nav class="toc"><b>Contents</b> results: {results} | tables and plots: {details} | '
                 '<a href="#how-to-read">how to read</a> · <a href="#parity">parity</a> · '
                 '<a href="#skips">failures and skips</a> · <a href="#environment">environment</a></nav>')
    return "".join(parts)


def _fastest_text(timed: list[dict[str, Any]], metric: str) -> str:
    unit, short = ("s per epoch", "s") if metric == "epoch_s" else ("ms per fwd+bwd step", "ms")
    top = timed[0]
    text = f"Fastest: <b>{e(top['runner'])}</b> {plain(top[metric])} {unit}"
    if top["runner"] == "reference" and len(timed) > 1:
        nxt = timed[1]
        text += (f" (snnbench's JAX yardstick); fastest framework <b>{e(nxt['runner'])}</b> "
                 f"{plain(nxt[metric])} {short} ({nxt[metric] / top[metric]:.2f}x)")
    return text + "."


def _target_text(rows: list[dict[str, Any]], timed: list[dict[str, Any]], target: float) -> str:
    """Who reaches ``target`` first, compile included, and whether that overturns the epoch ranking."""
    reached = sorted((r for r in rows if r.get("tta_s")), key=lambda r: r["tta_s"])
    if not reached:
        return f" No runner reached {100 * target:.0f}% test accuracy." if any(r.get("curve") for r in rows) else ""
    first = reached[0]
    text = (f" First to {100 * target:.0f}% test accuracy, compile included: <b>{e(first['runner'])}</b> "
            f"{plain(first['tta_s'])} s.")
    quick = [r for r in timed[:2] if r["runner"] != first["runner"] and r.get("compile_s") and r.get("tta_s")
             and r["compile_s"] > 0.5 * r["tta_s"]]
    for r in quick:
        text += (f" <span class=warn>{e(r['runner'])} is fast per epoch but needs {plain(r['compile_s'])} s of "
                 f"compile: {plain(r['tta_s'])} s to {100 * target:.0f}%.</span>")
    return text


def _spread_text(rows: list[dict[str, Any]]) -> str:
    accs = [r["accuracy"] for r in rows if r.get("accuracy") is not None]
    acc = f" Test accuracy {100 * min(accs):.1f}-{100 * max(accs):.1f}%." if accs else ""
    verdicts = Counter(r["parity"] for r in rows if r.get("parity") and r["parity"] != "reference")
    parity = ", ".join(f"{n} {e(v)}" for v, n in sorted(verdicts.items()))
    return acc + (f" Parity: {parity}." if parity else "")


def answer_text(rows: list[dict[str, Any]], metric: str, target: float) -> str:
    """One paragraph: the fastest (and fastest framework), first to the target, accuracy range, parity."""
    timed = sorted((r for r in rows if r.get(metric)), key=lambda r: r[metric])
    if not timed:
        return ""
    return _fastest_text(timed, metric) + _target_text(rows, timed, target) + _spread_text(rows)


def _flag_list(flags: list[Flag]) -> str:
    if not flags:
        return ""
    items = "".join(f'<li title="{e(f.detail)}">⚠ {e(f.text)}</li>' if f.detail else f"<li>⚠ {e(f.text)}</li>"
                    for f in flags)
    return f'<ul class="flags">{items}</ul>'


def case_block(uid: str, case: str, rows: list[dict[str, Any]], target: float, titled: bool, legend: str = ""
               ) -> str:
    """One case: its answer (where more than two runners ran it), its ranking chart and
    time-to-accuracy chart, its flags, who did not run."""
    metric = case_metric(rows)
    timed = [r for r in rows if r.get(metric)]
    if not timed:
        return ""
    flags = case_flags(rows, target)
    order = sorted(timed, key=lambda r: r[metric])
    chart = charts.rank_chart(f"{uid}-rank", case, order, metric, by_runner(flags))
    tta = charts.tta_chart(f"{uid}-tta", case, order, target) if metric == "epoch_s" else ""
    missing = [r for r in rows if not r.get(metric)]
    absent = (f'<p class="muted">not in the chart: {e(", ".join(r["runner"] + " (" + r["status"] + ")" for r in missing))}'
              ' (reasons under <a href="#skips">failures and skips</a>)</p>') if missing else ""
    answer = f'<p class="answer">{answer_text(rows, metric, target)}</p>' if len(timed) > 2 else ""
    head = f"<h3>{e(case)}</h3>" if titled else ""
    return (f'<div class="case">{head}{answer}<div class="charts">{chart}{tta}</div>{legend}{_flag_list(flags)}'
            f"{absent}</div>")


def headline_cases(rows: list[dict[str, Any]]) -> tuple[list[str], int]:
    """The cases a run's headline charts (of a sweep, only its longest sequences: the cases of each
    shape group at the group's largest T), at most :data:`HEADLINE_CASES`; and how many are left out."""
    cases = list(dict.fromkeys(r["case"] for r in rows))
    shape = {r["case"]: r.get("shape") or {} for r in rows}
    longest: dict[str, int] = {}
    for c in cases:
        g = shape[c].get("group")
        if g is not None:
            longest[g] = max(longest.get(g, 0), shape[c].get("T") or 0)
    kept = [c for c in cases if shape[c].get("group") is None or (shape[c].get("T") or 0) == longest[shape[c]["group"]]]
    return kept[:HEADLINE_CASES], len(cases) - len(kept[:HEADLINE_CASES])


def answer_section(run: Run, rows: list[dict[str, Any]], target: float, anchor: str, detail: str,
                   legend: str = "") -> str:
    """A run's headline: per case (see :func:`headline_cases`) its ranking charts, ``legend`` under the
    first; cases that only a few runners ran side by side."""
    cases, left = headline_cases(rows)
    blocks = [case_block(f"{anchor}-{i}", case, [r for r in rows if r["case"] == case], target, len(cases) > 1,
                         legend if i == 0 else "") for i, case in enumerate(cases)]
    more = (f'<p class="muted">{left} more case(s) (of a sweep: its shorter sequences) in '
            f'<a href="#{detail}">the table</a>.</p>' if left else "")
    what = f"case {e(cases[0])} · " if len(cases) == 1 else ""
    meta = (f'<p class="meta muted">{what}{"training" if trained(rows) else "timing only"} · run {e(run.name)} · '
            f'commit {e(commit_text(run))} · <a href="#{detail}">all figures</a></p>')
    few = all(len({r["runner"] for r in rows if r["case"] == c}) <= 4 for c in cases)
    grid = " grid" if len(cases) > 1 and (few or not trained(rows)) else ""  # narrow charts side by side
    return (f'<section class="answer-run" id="{anchor}"><h2>{e(suite_title(run))}</h2>{meta}'
            f'<div class="cases{grid}">{"".join(blocks)}</div>{more}</section>')


LEGEND = ('<p class="legend muted">In the charts: one bar per runner, fastest first; every runner keeps its colour '
          "on the whole page; <i>hatched</i>: a framework's compiled twin (torch.compile), in its colour; "
          "<i>pale</i>: compile time; ⚠: a flag, listed under the chart (hover a mark or a bar for its figures).</p>")
