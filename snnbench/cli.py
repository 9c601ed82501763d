"""``snnbench``: run suites, list what exists, show the environment.

Bad input ends in one ``snnbench: error: ...`` line and exit code 2; an interrupted run exits 130
and keeps every record it finished.
"""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
import threading
from pathlib import Path

from .errors import SnnbenchError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise SnnbenchError(message)


def _console():
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and CI: wide enough for the results table
        console = Console(highlight=False, width=200)  # 16 columns, one line per row
    return console


def _same_path(given: str, recorded) -> bool:
    if not isinstance(recorded, str) or not recorded:
        return False
    return Path(given).expanduser().resolve() == Path(recorded).expanduser().resolve()


def _refuse_conflicts(args: argparse.Namespace, m: dict, run_path: Path) -> None:
    """With ``--resume`` the run's own settings apply: an option that would run something else is refused."""
    from .naming import parse_list

    checks = [
        ("--suite", args.suite, lambda v: v == m.get("suite") or _same_path(v, m.get("suite_path")),
         m.get("suite_path") or m.get("suite")),
        ("--runners", args.runners, lambda v: parse_list(v, "--runners") == list(m.get("runners") or []),
         ",".join(map(str, m.get("runners") or []))),
        ("--cases", args.cases, lambda v: v == m.get("case_filter"), m.get("case_filter")),
        ("--device", args.device, lambda v: v == m.get("device"), m.get("device")),
        ("--seed", args.seed, lambda v: v == m.get("seed"), m.get("seed")),
        ("--epochs", args.epochs, lambda v: v == m.get("epochs"), m.get("epochs")),
        ("--data-dir", args.data_dir, lambda v: _same_path(v, m.get("data_dir")), m.get("data_dir")),
        ("--quick", args.quick or None, lambda v: bool(m.get("quick")), bool(m.get("quick"))),
        ("--no-parity", args.no_parity or None, lambda v: not m.get("check_parity", True),
         "parity on" if m.get("check_parity", True) else "parity off"),
        ("--out", args.out, lambda v: Path(v).expanduser().resolve() == run_path.resolve().parent,
         str(run_path.parent)),
    ]
    for flag, given, same, recorded in checks:
        if given is not None and not same(given):
            shown = "" if given is True else f" {given}"
            raise SnnbenchError(f"{flag}{shown} conflicts with the run being resumed ({recorded}): with --resume the "
                                "run's own settings apply; drop the option, or start a new run")


def _resume_settings(args: argparse.Namespace):
    """Fill ``args`` from the manifest of the run to resume; returns its RunDir. Options that would change
    what the run runs are refused, and a run whose jobs are all finished and whole is complete."""
    from .harness.run import job_state
    from .results.store import RunDir

    resume = RunDir.open(Path(args.resume))
    m = resume.manifest()
    if not isinstance(m.get("suite_path"), str) or not isinstance(m.get("runners"), list):
        raise SnnbenchError(f"{resume.path / 'manifest.json'}: no 'suite_path' or 'runners'; cannot resume it")
    _refuse_conflicts(args, m, resume.path)
    _, damaged = job_state(resume.records())
    if m.get("status") == "complete" and not damaged and not resume.skipped_lines:
        raise SnnbenchError(f"{args.resume} is already complete; nothing to resume")
    args.suite, args.quick, args.device = m["suite_path"], m.get("quick", False), m.get("device")
    args.seed, args.data_dir = m.get("seed"), m.get("data_dir")
    args.runners, args.no_parity = ",".join(map(str, m["runners"])), not m.get("check_parity", True)
    args.cases, args.epochs = m.get("case_filter"), m.get("epochs")
    args.offline = args.offline or bool(m.get("offline"))
    executor = m.get("executor") if isinstance(m.get("executor"), dict) else {}
    if args.executor is None and executor.get("name") == "ray":  # where it ran, unless told otherwise
        args.executor = "ray"
        address = executor.get("address")
        args.ray_address = args.ray_address or (address if address != "local" else None)
        args.ray_cpus_per_job = args.ray_cpus_per_job or executor.get("cpus_per_job")
        args.ray_ship_data = args.ray_ship_data or executor.get("ship_data")
    return resume


def _executor(args: argparse.Namespace):
    """The executor named by ``--executor`` (default: local worker processes, one job at a time)."""
    from .harness.executor import LocalExecutor

    if (args.executor or "local") == "local":
        for flag in ("ray_address", "ray_cpus_per_job", "ray_ship_data"):
            if getattr(args, flag) is not None:
                raise SnnbenchError(f"--{flag.replace('_', '-')} needs --executor ray")
        return LocalExecutor()
    from .harness.ray_executor import RayExecutor

    return RayExecutor(address=args.ray_address, cpus_per_job=args.ray_cpus_per_job,
                       ship_data=args.ray_ship_data or "auto")


def _prepare_versions(text: str | None):
    """``--versions`` (or a resumed run's): every pinned version's environment made (once, cached) and
    handed to the registry and the workers; the pins, or None."""
    if not text:
        return None
    from .runners import versions

    pins = versions.parse(text)
    versions.prepare(pins, log=lambda line: print(line, file=sys.stderr, flush=True))
    return pins


def cmd_run(args: argparse.Namespace) -> int:
    from .display import RunDisplay
    from .harness.run import run_suite
    from .results.summary import results_table
    from .runners import parse_runner_list
    from .spec import load_suite, select_cases

    from .harness.run import suite_of_manifest
    from .naming import parse_list
    from .spec import check_seed

    resume = _resume_settings(args) if args.resume else None
    if resume is None and not args.suite:
        raise SnnbenchError("the following arguments are required: --suite (or --resume RUN_DIR)")
    if args.epochs is not None and args.epochs < 1:
        raise SnnbenchError(f"--epochs must be at least 1, got {args.epochs}")
    if args.seed is not None:
        check_seed(args.seed, f"--seed {args.seed}")
    if resume is not None:  # the run as it was started, from its manifest
        suite = suite_of_manifest(resume.manifest(), str(resume.path / "manifest.json"))
    else:
        suite = select_cases(load_suite(args.suite, quick=args.quick), args.cases)
    parse_list(args.runners, "--runners")  # given, it names something, and nothing twice
    pins = _prepare_versions(args.versions or (resume.manifest().get("versions") if resume else None))
    runners = parse_runner_list(args.runners, suite.runners)
    if pins:  # each runner of a pinned framework -> one runner per version
        from .runners import registry
        from .runners.versions import expand

        runners = expand(runners, pins, registry())
    executor = _executor(args)
    console = _console()
    display = RunDisplay(console, resuming=resume is not None, quick=args.quick, suite_name=suite.name,
                         n_cases=len(suite.cases), n_runners=len(runners))
    command = "snnbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        run_dir = run_suite(suite, runners, Path(args.out or "results"), device=args.device, data_dir=args.data_dir,
                            seed=args.seed, quick=args.quick, command=command, on_event=display.on_event,
                            on_start=display.on_start, check_parity=not args.no_parity, resume=resume,
                            case_filter=args.cases, epochs=args.epochs, executor=executor,
                            offline=args.offline, versions=args.versions)
    except KeyboardInterrupt:
        display.stop()
        rd = display.run_dir
        kept = len(rd.records()) if rd else 0
        print(f"snnbench: interrupted; {kept} record(s) kept in {rd.path if rd else args.out or 'results'}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        display.stop()
    console.print(results_table(run_dir.records()))
    trained = any(r.get("metric") == "test_acc" and r.get("status") == "ok" for r in run_dir.records())
    if trained and run_dir.manifest().get("synthetic_data"):
        console.print("[bold yellow]Synthetic data:[/] these accuracies come from snnbench's synthetic stand-in, "
                      "not the real dataset, and cannot be compared with published results "
                      "(get the real set: snnbench fetch-data shd|nmnist).")
    from .results.timebudget import budget_lines, time_budget

    budget = time_budget(run_dir.records(), run_dir.manifest())
    for line in budget_lines(budget) if budget else []:
        console.print(line, markup=False, highlight=False)
    console.print(f"records: {run_dir.path / 'records.jsonl'}", markup=False, highlight=False)
    if not args.no_report:  # beside the run's --out folder: results/ -> reports/
        report = run_dir.path.parent.parent / "reports" / f"{run_dir.path.name}.html"
        try:
            _write_report([run_dir.path], str(report), 0.8, console, after_run=True)
        except (SnnbenchError, OSError) as exc:  # the records stand; the page can be made later
            console.print(f"report not written ({exc}); run 'snnbench report {run_dir.path}'", markup=False)
    return 0


def _write_report(paths: list, output: str | None, target_acc: float, console, after_run: bool = False,
                  baseline: list | None = None) -> None:
    from .report.load import load_runs

    runs = load_runs(paths)
    baselines = load_runs(baseline) if baseline else None
    _warn_skipped(runs + (baselines or []))
    try:
        from .report.html import write_report
    except ImportError as exc:
        if after_run:  # the results stand; say how to get the page
            console.print(f"report not written: missing package {exc.name} (pip install 'snnbench[report]')",
                          markup=False)
            return
        raise SnnbenchError(f"missing package: {exc.name} (pip install 'snnbench[report]')") from None
    out = Path(output) if output else Path("reports") / f"{runs[0].name}.html"
    if out.suffix != ".html":
        raise SnnbenchError(f"-o {out}: the report file must end in .html")
    check_outputs(report_outputs(out))
    for path in write_report(runs, out, target_acc=target_acc, baselines=baselines):
        console.print(f"wrote {path}", markup=False, highlight=False)


def report_outputs(page: Path) -> list[Path]:
    """Every file ``write_report`` writes for the page ``page`` (the page, its Markdown and its CSV)."""
    return [page, page.with_suffix(".md"), page.with_suffix(".csv")]


def check_outputs(paths: list[Path]) -> None:
    """Refuse, before writing any of them, outputs that cannot all be written: one that is a directory,
    a folder on the way that is a file, a place without write permission."""
    import os

    for path in paths:
        if path.is_dir():
            raise SnnbenchError(f"{path} is a directory; nothing was written")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise SnnbenchError(f"{parent} is a file, not a directory: cannot write {path}; nothing was written")
        if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise SnnbenchError(f"cannot write {path} (permission denied); nothing was written")


def _warn_skipped(runs) -> None:
    from .results.store import describe_skipped

    for run in runs:
        if run.skipped_lines:
            print(f"snnbench: warning: {run.path / 'records.jsonl'}: {describe_skipped(run.skipped_lines)}",
                  file=sys.stderr)


def cmd_parity(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.table import Table

    from rich.markup import escape

    from .harness.env import resolve_device
    from .harness.parity import compare, summary
    from .runners import parse_runner_list, registry
    from .harness.budget import check_cases_fit
    from .naming import parse_list
    from .spec import load_suite, select_cases, validate_case

    if args.batch < 1:
        raise SnnbenchError(f"--batch must be at least 1, got {args.batch}")
    suite = select_cases(load_suite(args.suite, quick=args.quick), args.cases)
    parse_list(args.runners, "--runners")
    # the gate's batch, no training: what a comparison needs, held against the machine before it runs
    check_cases_fit([(replace(c, spec=replace(c.spec, batch=args.batch, epochs=0, dataset="random")), None)
                     for c in suite.cases], suite.memory_limit_gb)
    names = parse_runner_list(args.runners, tuple(n for n in registry() if n != "reference"))
    device = resolve_device(args.device)  # 'auto': one device for every comparison
    console = _console()
    table = Table("case", "runner", "status", "flips", "readout err", "loss err", "min grad cos", "grad norm err",
                  "deviations (proof)", title="parity against the reference")
    failed = False
    for case in suite.cases:
        if args.time_steps:
            spec = replace(case.spec, time_steps=args.time_steps)
            validate_case(spec, "--time-steps")
            case = replace(case, spec=spec)
        for name in names:
            if name == "reference":
                continue
            res = compare(case, name, batch=args.batch, seed=case.spec.seed, device=device)
            console.print(f"[cyan]{escape(case.id)}[/] [magenta]{escape(name)}[/] {escape(summary(res))}")
            failed |= res["status"] in ("fail", "inconclusive")
            if "spikes" not in res:  # skipped or inconclusive: nothing was compared
                table.add_row(escape(case.id), escape(name), res["status"], "-", "-", "-", "-", "-",
                              escape(res["reason"]))
                continue
            proof = res.get("proof")
            proven = f" (vs the reference with them: min grad cos {proof['min_grad_cosine']:.5f})" if proof else ""
            table.add_row(escape(case.id), escape(name), res["status"], str(sum(s["flips"] for s in res["spikes"])),
                          f"{res['readout_max_rel_err']:.1e}", f"{res['loss_rel_err']:.1e}",
                          f"{res['min_grad_cosine']:.5f}", f"{res['max_grad_norm_rel_err']:.1e}",
                          escape("; ".join(res["deviations"]) + proven))
    console.print(table)
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    if not 0.0 < args.target_acc <= 1.0:
        raise SnnbenchError(f"--target-acc {args.target_acc}: expected a fraction in (0, 1], e.g. 0.8")
    _write_report(args.runs, args.output, args.target_acc, _console(), baseline=args.baseline)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .interop import nir_graph
    from .interop.trained import load_trained

    case, weights, run = load_trained(args.run_dir, args.case, args.runner)
    dt = args.dt if args.dt is not None else case.spec.dt_s
    if not (math.isfinite(dt) and dt > 0):
        raise SnnbenchError(f"--dt {dt}: expected a finite time step in seconds > 0")
    graph = nir_graph.to_nir(case.network, weights, dt, {"case": case.id, "runner": args.runner,
                                                         "run": run.path.name})
    nir_graph.write(args.output, graph)
    console = _console()
    for layer in case.network.layers:
        if layer.spiking and layer.reset != "zero":
            console.print(f"note: NIR has no '{layer.reset}' reset; the nodes carry NIR's reset-to-v_reset and the "
                          "real reset is in their metadata (snnbench import restores it)", markup=False)
            break
    console.print(f"wrote {args.output}: {case.id} trained by {args.runner}, {len(graph.nodes)} nodes, dt {dt:g} s",
                  markup=False)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    import yaml

    from .interop import nir_graph
    from .spec import LayerSpec

    if args.dt is not None and not (math.isfinite(args.dt) and args.dt > 0):
        raise SnnbenchError(f"--dt {args.dt}: expected a finite time step in seconds > 0")
    network, weights, dt = nir_graph.from_nir(nir_graph.read(args.nir_file), args.dt)
    out = Path(args.output or Path(args.nir_file).with_suffix(""))
    if out.exists() and not out.is_dir():
        raise SnnbenchError(f"-o {out} is a file, not a directory")
    check_outputs([out / "network.yaml", out / "weights.npz"])  # both writable before either is written
    out.mkdir(parents=True, exist_ok=True)
    default = dataclasses.asdict(LayerSpec(type=""))
    layers = [{k: v for k, v in dataclasses.asdict(layer).items() if k == "type" or v != default[k]}
              for layer in network.layers]  # a suite's network: only what differs from the defaults
    spec = {"inputs": network.inputs, "input_shape": list(network.input_shape), "time_steps": network.time_steps,
            "dt_s": dt, "network": {"surrogate": dataclasses.asdict(network.surrogate), "layers": layers,
                                    **({"population": network.population} if network.population > 1 else {})}}
    (out / "network.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    np.savez(out / "weights.npz", **weights)
    _console().print(f"wrote {out}/network.yaml and weights.npz: {network.describe()}, "
                     f"{sum(w.size for w in weights.values())} parameters, dt {dt:g} s", markup=False)
    return 0


def cmd_nir_check(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .interop import frameworks
    from .interop.check import entry_text, nir_check

    from .naming import parse_list

    names = parse_list(args.frameworks, "--frameworks")
    known = [fw.name for fw in frameworks.FRAMEWORKS]
    for name in names or []:
        if name not in known:
            raise SnnbenchError(f"--frameworks: unknown framework {name!r} (known: {', '.join(known)})")
    console = _console()

    rows = nir_check(args.run_dir, args.case, args.runner, names, args.data_dir, on_row=lambda row: console.print(
        f"{row['framework']} {row['direction']}: {entry_text(row)}", markup=False))
    table = Table("framework", "import: its NIR reader", "export: its NIR writer -> snnbench", title=(
        f"NIR check: {rows[0]['case']} trained by {rows[0]['runner']}, test accuracy after the trip "
        f"(snnbench's own round trip: {100 * rows[0]['value']:.1f}%)"))
    cells: dict[str, dict[str, str]] = {}
    for row in rows[1:]:
        cells.setdefault(row["framework"], {})[row["direction"]] = entry_text(row)
    for name, cell in cells.items():
        table.add_row(name, cell.get("import", "-"), cell.get("export", "-"))
    console.print(table)
    for row in rows[1:]:
        console.print(f"{row['framework']} {row['direction']}: {escape(row.get('reason', ''))}", markup=False)
    logged = next((row["extra"]["log"] for row in rows if isinstance(row.get("extra"), dict) and row["extra"].get("log")),
                  None)
    if logged:
        console.print(f"the frameworks' tracebacks: {logged}", markup=False, highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .report.compare import compare, device_warnings, environment_differences, index_problems
    from .report.load import load_runs

    text = args.threshold.strip().rstrip("%")
    try:
        threshold = float(text) / 100.0
    except ValueError:
        threshold = math.nan
    if not (math.isfinite(threshold) and 0.0 <= threshold < 10.0):
        raise SnnbenchError(f"--threshold {args.threshold!r}: expected a percentage from 0% to 1000%, such as 5%")
    base, new = load_runs([args.base, args.new])
    _warn_skipped([base, new])
    changes, only_base, only_new = compare(base, new, threshold)
    console = _console()
    differences = environment_differences(base, new)
    if differences:
        console.print("[yellow]warning: the two runs were measured in different environments; a change below "
                      "may come from there, not from the code:[/]")
        for line in differences:
            console.print(f"  {escape(line)}")
    for line in device_warnings(base, new):
        console.print(f"[yellow]warning: {escape(line)}[/]")
    for line in index_problems(base) + index_problems(new):
        console.print(f"[yellow]warning: {escape(line)}[/]")
    table = Table("suite", "case", "runner", "metric", "base", "new", "change", "verdict",
                  title=f"{base.name} -> {new.name} (threshold {100 * threshold:g}%)")
    for c in changes:
        verdict = ("[red]SLOWER[/]" if c.regression else "[yellow]slower, within threshold[/]" if c.significant and
                   c.ratio > 1 else "[green]faster[/]" if c.significant else "no significant change")
        table.add_row(*map(escape, c.key), f"{c.base:.4g}", f"{c.new:.4g}", f"{c.percent:+.1f}%", verdict)
    console.print(table)
    for label, keys in (("only in base", only_base), ("only in new", only_new)):
        for k in keys:
            console.print(f"{label}: {' / '.join(k)}", markup=False, highlight=False)
    regressions = [c for c in changes if c.regression]
    if not changes:
        raise SnnbenchError("the two runs share no measured (suite, case, runner, metric)")
    if regressions:
        print(f"snnbench: {len(regressions)} significant slowdown(s) beyond {100 * threshold:g}%", file=sys.stderr)
        return 1
    return 0


def _publish_suite(item, suite, runners, class_dir: Path, profile: str, machine: str, data_dir, console) -> None:
    """Run one suite of a publish profile into ``class_dir``; the run replaces the class's older one."""
    import time

    from .display import RunDisplay
    from .harness.executor import LocalExecutor
    from .harness.run import run_suite
    from .publish import replace_older

    started = time.monotonic()
    display = RunDisplay(console, resuming=False, quick=item.quick, suite_name=suite.name,
                         n_cases=len(suite.cases), n_runners=len(runners))
    try:
        run_dir = run_suite(suite, runners, class_dir, command=f"snnbench publish --profile {profile}",
                            quick=item.quick, data_dir=data_dir, on_event=display.on_event,
                            on_start=display.on_start, executor=LocalExecutor())
    finally:
        display.stop()
    if item.nir_check:
        from .interop.check import entry_text, nir_check

        for case in suite.cases:  # each case the reference trained (shd: the MLP and the recurrent net)
            nir_check(run_dir.path, case.id, data_dir=data_dir, on_row=lambda r: console.print(
                f"NIR {r['framework']} {r['direction']}: {entry_text(r)}", markup=False))
    manifest = run_dir.manifest()
    manifest["publish"] = {"profile": profile, "machine_class": machine, "trims": dict(item.trims),
                           "cases": item.cases, "nir_check": item.nir_check,
                           "wall_s": round(time.monotonic() - started, 1)}
    run_dir.write_manifest(manifest)
    (run_dir.path / ".lock").unlink(missing_ok=True)  # the writer's lock: nothing to publish
    for old in replace_older(class_dir, run_dir.path):
        console.print(f"replaced {old}", markup=False, highlight=False)
    console.print(f"{suite.name}: {run_dir.path} in {(time.monotonic() - started) / 60:.1f} min",
                  markup=False, highlight=False)


def cmd_publish(args: argparse.Namespace) -> int:
    """Run a publish profile's suites into results/<machine class>/ and render reports/<class>.html."""
    from .publish import headline_markdown, load_profile, machine_class, published_runs, update_readme
    from .runners import parse_runner_list

    from .naming import check_plain_name, parse_list
    from .publish import check_readme

    profile = load_profile(args.profile)
    wanted = parse_list(args.suites, "--suites") or []
    unknown = sorted(set(wanted) - {r.suite for r in profile.runs})
    if unknown:
        raise SnnbenchError(f"--suites: {unknown[0]!r} is not in profile {profile.name!r} "
                            f"(its suites: {', '.join(r.suite for r in profile.runs)})")
    plan = [r for r in profile.runs if not wanted or r.suite in wanted] if not args.render_only else []
    name = check_plain_name(args.machine_class, "--machine-class") if args.machine_class is not None \
        else machine_class()
    class_dir, page = Path(args.results) / name, Path(args.reports) / f"{name}.html"
    readme = Path(args.readme) if args.readme else None
    if readme is not None:  # checked before anything runs or is written, as the page's files are
        check_readme(readme)
    check_outputs(report_outputs(page) + ([readme] if readme is not None else []))
    loaded = [(r, r.load()) for r in plan]
    runs = [(r, s, parse_runner_list(r.runners, s.runners)) for r, s in loaded]  # all checked before any runs
    console = _console()
    for item, suite, runners in runs:
        try:
            _publish_suite(item, suite, runners, class_dir, profile.name, name, args.data_dir, console)
        except KeyboardInterrupt:
            print(f"snnbench: interrupted; the finished suites' runs are kept in {class_dir}", file=sys.stderr)
            return EXIT_INTERRUPTED
    paths = published_runs(class_dir)
    if not paths:
        raise SnnbenchError(f"{class_dir} holds no run to render")
    _write_report(paths, str(page), 0.8, console)
    if readme is not None:
        table = headline_markdown(page.with_suffix(".md").read_text(encoding="utf-8"))
        update_readme(readme, table, str(page.with_suffix(".md")))
        console.print(f"updated the headline table in {readme}", markup=False, highlight=False)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    console = _console()
    if args.what == "suites":
        from .spec import default_suites_dir, load_suite

        table = Table("suite", "cases", "runners", "description")
        for path in sorted(default_suites_dir().glob("*.yaml")):
            try:
                s = load_suite(str(path))
                table.add_row(s.name, str(len(s.cases)), ",".join(s.runners), s.description)
            except SnnbenchError as exc:
                table.add_row(path.stem, "-", "-", f"[red]invalid: {exc}[/]")
        console.print(table)
    else:
        from .runners import registry

        table = Table("runner", "framework", "available", "reason")
        for name, cls in registry().items():
            ok = cls.available()
            table.add_row(name, cls.framework, "yes" if ok.ok else "[yellow]no[/]", ok.reason)
        console.print(table)
    return 0


def cmd_check_runner(args: argparse.Namespace) -> int:
    from .harness.conformance import check_runner
    from .harness.env import resolve_device
    from .runners import get_runner_class
    from .spec import default_suites_dir, load_suite

    get_runner_class(args.runner)  # an unknown name: one error line
    names = args.suites.split(",") if args.suites else sorted(p.stem for p in default_suites_dir().glob("*.yaml"))
    suites = [load_suite(n.strip(), quick=True) for n in names if n.strip()]
    device = resolve_device(args.device)
    failed = []
    print(f"check-runner {args.runner} on {device}: parity and refusals on the quick cases of "
          f"{', '.join(s.name for s in suites)}; dtypes; step consistency; compiled graphs; own loop", flush=True)
    for c in check_runner(args.runner, suites, device=device, own_loop=not args.no_own_loop,
                          timing=not args.no_timing):
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.check:<16} {c.subject:<28} {c.detail.splitlines()[0] if c.detail else ''}",
              flush=True)
        if not c.ok:
            failed.append(c)
    if failed:
        checks = sorted({c.check for c in failed})
        print(f"snnbench: {args.runner} does not conform: {len(failed)} check(s) failed ({', '.join(checks)})",
              file=sys.stderr)
        return 1
    print(f"{args.runner} conforms")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    import json

    from .harness.env import accelerator, capture

    if args.machine_class:  # the one name for this kind of machine (publish, benchmark baselines)
        from .publish import machine_class

        print(machine_class())
        return 0
    info = capture()
    info["accelerator"] = accelerator()  # what --device auto resolves to for a whole run
    info["devices"] = _usable_devices()
    print(json.dumps(info, indent=2, default=str))
    if info["accelerator"] != "cpu":
        for name, found in info["devices"].items():
            if isinstance(found, list) and not any(d.startswith(info["accelerator"]) for d in found):
                print(f"snnbench: warning: {name} cannot use the {info['accelerator']} here (it sees "
                      f"{', '.join(found)}): a run on this machine will skip it", file=sys.stderr)
    return 0


def _usable_devices() -> dict:
    """Per runner, the devices its framework can use here, or why it is unavailable."""
    from .runners import registry

    found = {}
    for name, cls in registry().items():
        ok = cls.available()
        if not ok.ok:
            found[name] = f"unavailable: {ok.reason}"
            continue
        try:
            found[name] = cls.usable_devices()
        except Exception as exc:  # a framework that fails to initialise its backend
            found[name] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return found


def cmd_make_data(args: argparse.Namespace) -> int:
    from .data import FORMATS

    from .spec import check_seed

    check_seed(args.seed, f"--seed {args.seed}")
    fmt = FORMATS[args.dataset]
    n_train = args.train if args.train is not None else fmt.full_sizes[0]
    n_test = args.test if args.test is not None else fmt.full_sizes[1]
    if n_train < 1 or n_test < 1:
        raise SnnbenchError("--train and --test must be at least 1")
    root = fmt.write(Path(args.out), n_train, n_test, seed=args.seed)
    print(f"wrote synthetic {fmt.name} ({n_train} train / {n_test} test) to {root}/{fmt.name.replace('-', '')}")
    return 0


def cmd_fetch_data(args: argparse.Namespace) -> int:
    import os
    from urllib.parse import urlsplit

    from .data import DATA_ENV, FORMATS, default_data_dir
    from .data.fetch import Unreachable, fetch

    out = Path(args.out or os.environ.get(DATA_ENV) or default_data_dir()).expanduser()
    if out.exists() and not out.is_dir():
        raise SnnbenchError(f"--out {out} is a file, not a directory")
    if args.mirror and (urlsplit(args.mirror).scheme not in ("http", "https") or not urlsplit(args.mirror).hostname):
        raise SnnbenchError(f"--mirror {args.mirror!r} is not an http(s) URL")
    fmt = FORMATS[args.dataset]
    try:
        fetch(args.dataset, out, mirror=args.mirror, verify=not args.no_verify)
    except Unreachable as exc:
        raise SnnbenchError(f"{exc}; on a machine without internet, serve the archives from a mirror "
                            f"(--mirror URL) or copy them to {out}/{fmt.name.replace('-', '')}/") from None
    info = fmt.describe(out)
    default = out.resolve() == default_data_dir().resolve()
    print(f"{fmt.name} in {out}: {info['samples']} train / {info['test_samples']} test samples; "
          + ("'snnbench run' uses it from now on" if default else f"use it with --data-dir {out}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnbench", description="Benchmark spiking-neural-network training frameworks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a suite")
    r.add_argument("--suite", help="suite name (suites/NAME.yaml) or a YAML file path")
    r.add_argument("--runners", help="comma-separated runner names, or 'all' (default: the suite's list)")
    r.add_argument("--cases", help="comma-separated case ids or glob patterns (default: every case), "
                                   "e.g. 'nmnist-m1-*'")
    r.add_argument("--device", choices=["cpu", "gpu", "tpu", "auto"], help="override every case's device")
    r.add_argument("--quick", action="store_true", help="the suite's small smoke-test variant")
    r.add_argument("--data-dir", help="directory holding SHD/shd_{train,test}.h5 or NMNIST/{Train,Test}/ "
                                      "(default: $SNNBENCH_DATA_DIR, else the cache, where the real set is "
                                      "downloaded on first use; synthetic data when offline)")
    r.add_argument("--offline", action="store_true", help="never download a dataset: without a real one, use the "
                                                          "synthetic stand-in (also: SNNBENCH_OFFLINE=1)")
    r.add_argument("--out", help="parent directory of the run directory (default: results)")
    r.add_argument("--seed", type=int, help="override every case's seed")
    r.add_argument("--epochs", type=int, help="override every training case's epochs (>= 1)")
    r.add_argument("--no-parity", action="store_true", help="skip the parity gate before each adapter's case")
    r.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run: rerun only its unfinished jobs")
    r.add_argument("--executor", choices=["local", "ray"], help="where jobs run: 'local' worker processes, one "
                   "job at a time (default), or 'ray' tasks on a Ray cluster (pip install 'snnbench[ray]')")
    r.add_argument("--ray-address", help="Ray cluster to use, e.g. HEAD_IP:6379 or 'auto' (default: start a "
                                         "local cluster for this run)")
    r.add_argument("--ray-cpus-per-job", type=int, help="CPUs a CPU job reserves (default: every CPU of the "
                                                        "smallest node, so CPU timings never share cores)")
    r.add_argument("--ray-ship-data", choices=["auto", "always", "never"],
                   help="send the dataset to the nodes through Ray's object store: 'auto' (default) when the "
                        "cluster has a node on another host")
    r.add_argument("--versions", help="run the runners of a framework at several versions side by side, e.g. "
                                       "'snntorch==0.9.4,snntorch==1.0.0': each version in its own environment "
                                       "(made once by uv, cached), runner names <runner>@<version>")
    r.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end "
                                                            "(default: reports/<run>.html beside --out)")
    r.set_defaults(func=cmd_run)

    par = sub.add_parser("parity", help="check that runners compute what the reference computes")
    par.add_argument("--suite", default="shd", help="suite whose cases (network, T) are checked (default: shd)")
    par.add_argument("--runners", help="comma-separated runners (default: every runner but the reference)")
    par.add_argument("--quick", action="store_true", help="the suite's quick variant")
    par.add_argument("--cases", help="comma-separated case ids or glob patterns (default: every case of the suite)")
    par.add_argument("--batch", type=int, default=16, help="parity batch size (default: 16)")
    par.add_argument("--time-steps", type=int, help="override T (a multiple of 8), e.g. to keep torch.compile short")
    par.add_argument("--device", choices=["cpu", "gpu", "tpu", "auto"], default="auto",
                     help="device to compare on: the one the runners are benchmarked on (default: auto)")
    par.set_defaults(func=cmd_parity)

    rep = sub.add_parser("report", help="render run directories as one self-contained HTML page (+ .md, .csv)")
    rep.add_argument("runs", nargs="+", help="run directories")
    rep.add_argument("-o", "--output", help="HTML file to write (default: reports/<first run>.html)")
    rep.add_argument("--target-acc", type=float, default=0.8, help="accuracy for time-to-accuracy (default 0.8)")
    rep.add_argument("--baseline", nargs="+", metavar="RUN", help="earlier run directories of the same suites: adds "
                     "a change column (significance as 'snnbench compare' decides) and the environment changes")
    rep.set_defaults(func=cmd_report)

    cmp_ = sub.add_parser("compare", help="compare two runs; exit 1 on a significant slowdown past the threshold")
    cmp_.add_argument("base")
    cmp_.add_argument("new")
    cmp_.add_argument("--threshold", default="5%", help="slowdown that fails, e.g. 5%% (default)")
    cmp_.set_defaults(func=cmd_compare)

    pub = sub.add_parser("publish", help="run a publish profile into results/<machine class>/ and render "
                                         "reports/<machine class>.html")
    pub.add_argument("--profile", default="cpu", help="suites/publish/NAME.yaml or a YAML path (default: cpu)")
    pub.add_argument("--suites", help="comma-separated suites of the profile to (re)run (default: all of them)")
    pub.add_argument("--machine-class", help="folder name under results/ (default: arch-Ncpu[-gpu model])")
    pub.add_argument("--results", default="results", help="parent of the machine-class folder (default: results)")
    pub.add_argument("--reports", default="reports", help="where the page goes (default: reports)")
    pub.add_argument("--data-dir", help="directory holding the real SHD / N-MNIST (default: synthetic data)")
    pub.add_argument("--readme", help="README whose headline block gets the page's SHD table")
    pub.add_argument("--render-only", action="store_true", help="run nothing: re-render the class's runs")
    pub.set_defaults(func=cmd_publish)

    ex = sub.add_parser("export", help="write a run's trained network as a NIR graph")
    ex.add_argument("run_dir", help="a run directory whose training job saved its weights")
    ex.add_argument("--case", help="case id (default: the only case the runner trained)")
    ex.add_argument("--runner", default="reference", help="whose trained weights (default: reference)")
    ex.add_argument("-o", "--output", required=True, help="the .nir file to write")
    ex.add_argument("--dt", type=float, help="time step in seconds NIR's time constants refer to "
                                             "(default: the case's duration_s / time_steps)")
    ex.set_defaults(func=cmd_export)

    im = sub.add_parser("import", help="read a NIR graph into a canonical network spec + weights")
    im.add_argument("nir_file")
    im.add_argument("-o", "--output", help="folder for network.yaml and weights.npz (default: the file's name "
                                           "without .nir)")
    im.add_argument("--dt", type=float, help="time step in seconds (default: the graph's own, if it says)")
    im.set_defaults(func=cmd_import)

    nc = sub.add_parser("nir-check", help="a run's trained network through each framework's own NIR reader and "
                                          "writer, scored on the test set")
    nc.add_argument("run_dir", help="a run directory whose training job saved its weights (e.g. an shd run)")
    nc.add_argument("--case", help="case id (default: the only case the runner trained)")
    nc.add_argument("--runner", default="reference", help="whose trained weights (default: reference)")
    nc.add_argument("--frameworks", help="comma-separated frameworks (default: all with NIR support)")
    nc.add_argument("--data-dir", help="where the case's dataset is (default: the run's)")
    nc.set_defaults(func=cmd_nir_check)

    lst = sub.add_parser("list", help="list suites or runners")
    lst.add_argument("what", choices=["suites", "runners"])
    lst.set_defaults(func=cmd_list)

    cr = sub.add_parser("check-runner", help="the conformance checks a runner must pass before its figures are "
                                             "published; exit 1 naming each failed check")
    cr.add_argument("runner", help="registry name of the runner (built-in or from a plugin)")
    cr.add_argument("--suites", help="comma-separated suites whose quick cases are checked (default: every suite)")
    cr.add_argument("--device", choices=["cpu", "gpu", "tpu", "auto"], default="cpu",
                    help="device to check on (default: cpu)")
    cr.add_argument("--no-timing", action="store_true", help="skip the timing checks (step consistency, own loop)")
    cr.add_argument("--no-own-loop", action="store_true", help="skip the comparison with the framework's own loop")
    cr.set_defaults(func=cmd_check_runner)

    e = sub.add_parser("env", help="print the environment a run would record")
    e.add_argument("--machine-class", action="store_true", help="print only this machine's class (the folder of "
                                                               "its published results and benchmark baselines)")
    e.set_defaults(func=cmd_env)

    m = sub.add_parser("make-data", help="write a synthetic dataset in the real file format")
    m.add_argument("dataset", choices=["shd", "nmnist"])
    m.add_argument("--out", required=True, help="data dir to write (files go to OUT/SHD/ or OUT/NMNIST/)")
    m.add_argument("--train", type=int, help="train samples (default: the real set's 8156 SHD / 60000 N-MNIST)")
    m.add_argument("--test", type=int, help="test samples (default: 2264 SHD / 10000 N-MNIST)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=cmd_make_data)

    fd = sub.add_parser("fetch-data", help="download the real SHD or N-MNIST (tonic's URLs, file names and md5s)")
    fd.add_argument("dataset", choices=["shd", "nmnist"])
    fd.add_argument("--out", help="data dir to fill (files go to OUT/SHD/ or OUT/NMNIST/; default: "
                                  "$SNNBENCH_DATA_DIR, else the cache dir that 'run' reads)")
    fd.add_argument("--mirror", help="base URL serving tonic's archive names (shd_train.h5.zip, shd_test.h5.zip; "
                                     "N-MNIST train.zip, test.zip), e.g. a lab's copy")
    fd.add_argument("--no-verify", action="store_true", help="skip tonic's md5 checks (a private mirror whose files "
                                                             "differ); archives and files are still checked")
    fd.set_defaults(func=cmd_fetch_data)
    return p


def _sigterm_as_interrupt(signum, frame) -> None:
    # A SIGTERM (a scheduler, `kill`, a container stop) ends a run as Ctrl-C does: workers stopped,
    # the manifest marked interrupted, a message, exit 130.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SnnbenchError as exc:
        print(f"snnbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an unwritable --out, a directory where a file should be, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"snnbench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("snnbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
