"""Run a suite: one worker process per (case, runner), records appended as they arrive.

Each benchmark job ends with a ``job`` record (its final status and wall time), written by the
parent after the worker exits. ``--resume`` uses these: a job with a ``job`` record is finished;
any other records of the same (case, runner) are the leftovers of an interrupted job, removed
before the job runs again, so nothing is lost or duplicated.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..data import resolve_source
from ..errors import SnnbenchError
from ..results.store import RunDir, describe_skipped
from ..spec import Case, Suite, case_to_dict
from . import allocator, env
from .executor import Executor, LocalExecutor
from .job import Progress


def plan(suite: Suite, runners: list[str], device: str | None, seed: int | None,
         epochs: int | None = None, auto_device: str | None = None) -> list[tuple[Case, str]]:
    """The run's (case, runner) jobs, with the command line's overrides applied. A case's device
    'auto' becomes ``auto_device`` (:func:`.env.accelerator`, resolved once for the whole run), so
    every job of a run uses the same device; a runner that cannot use it is skipped, never moved."""
    auto_device = auto_device or env.accelerator()
    cases = []
    for case in suite.cases:
        spec = case.spec
        if device:
            spec = replace(spec, device=device)
        if spec.device == "auto":
            spec = replace(spec, device=auto_device)
        if seed is not None:
            spec = replace(spec, seed=seed)
        if epochs is not None and spec.epochs > 0:  # timing-only cases (epochs 0) stay so
            spec = replace(spec, epochs=epochs)
        cases.append(replace(case, spec=spec))
    return [(case, runner) for case in cases for runner in runners]


def finished_jobs(run_dir: RunDir) -> set[tuple[str, str]]:
    return {(r["case"], r["runner"]) for r in run_dir.records() if r.get("metric") == "job"}


def drop_unfinished(run_dir: RunDir, finished: set[tuple[str, str]]) -> tuple[int, list[tuple[int, str]]]:
    """Remove records of jobs that never reached their ``job`` record, and lines that are not records
    (a line cut short by a killed writer); returns (records dropped, lines dropped)."""
    records = run_dir.records()
    skipped = run_dir.skipped_lines
    keep = [r for r in records if (r["case"], r["runner"]) in finished]
    if len(keep) != len(records) or skipped:
        run_dir.rewrite(keep)
    return len(records) - len(keep), skipped


def check_batches(jobs: list[tuple[Case, str]], sources: dict[tuple, Any]) -> None:
    """Every training case has at least one whole batch of training samples and one test sample
    (checked before the run, not as a division by zero inside a worker)."""
    for case, _ in jobs:
        source = sources.get((case.spec.dataset, case.spec.train_samples, case.spec.test_samples))
        if source is None or not case.spec.epochs:
            continue
        n_train = min(case.spec.train_samples or source.train_samples, source.train_samples)
        if n_train < case.spec.batch:
            raise SnnbenchError(f"case {case.id}: batch {case.spec.batch} is larger than the {n_train} training "
                                f"samples of {source.root}")
        if source.test_samples < 1:
            raise SnnbenchError(f"case {case.id}: {source.root} has no test samples")


def resolve_sources(jobs: list[tuple[Case, str]], data_dir: str | None, offline: bool = False) -> dict[tuple, Any]:
    """The data source of every file-backed case (SHD, N-MNIST), keyed by (dataset, train_samples,
    test_samples); the real set is downloaded on first use unless ``offline``."""
    sources: dict[tuple, Any] = {}
    for case, _ in jobs:
        key = (case.spec.dataset, case.spec.train_samples, case.spec.test_samples)
        if key not in sources:
            source = resolve_source(case.spec.dataset, data_dir, case.spec.train_samples, case.spec.test_samples,
                                    offline=offline)
            if source is not None:
                sources[key] = source
    return sources


def _job(suite: Suite, case: Case, runner: str, sources: dict[tuple, Any], check_parity: bool) -> dict[str, Any]:
    """What a worker needs to run (case, runner): plain JSON, so that it can travel to another node."""
    source = sources.get((case.spec.dataset, case.spec.train_samples, case.spec.test_samples))
    return {
        "suite": suite.name, "case": case_to_dict(case), "runner": runner, "device": case.spec.device,
        # what records say until the runner names the device it resolved ('auto' never stays)
        "device_label": env.device_label(case.spec.device),
        "data_root": str(source.root) if source else None, "synthetic": source.synthetic if source else None,
        "data_note": source.note if source else "random input", "timing": suite.timing,
        "check_parity": check_parity,
    }


def run_suite(
    suite: Suite,
    runners: list[str],
    out_dir: Path | None = None,
    *,
    device: str | None = None,
    data_dir: str | None = None,
    seed: int | None = None,
    quick: bool = False,
    command: str = "",
    on_event: Progress = lambda e: None,
    on_start: Callable[[RunDir, list[tuple[Case, str]], str], None] = lambda *a: None,
    check_parity: bool = True,
    resume: RunDir | None = None,
    case_filter: str | None = None,
    epochs: int | None = None,
    executor: Executor | None = None,
    offline: bool = False,
) -> RunDir:
    """Run every (case, runner) of ``suite``; returns the run directory.

    With ``resume``, continue that run directory: finished jobs are kept, unfinished ones rerun.
    ``executor`` runs the jobs (default: :class:`.executor.LocalExecutor`, one at a time here).
    """
    executor = executor or LocalExecutor()
    auto_device = env.accelerator()
    jobs = plan(suite, runners, device, seed, epochs, auto_device)
    if resume is not None:
        resume.lock()  # before reading what is finished: a second writer stops here
        done = finished_jobs(resume)
        jobs = [(c, r) for c, r in jobs if (c.id, r) not in done]
    # Find the data before writing anything: bad input must not leave a run directory behind.
    try:
        sources = resolve_sources(jobs, data_dir, offline)
        check_batches(jobs, sources)
    except BaseException:
        if resume is not None:
            resume.unlock()
        raise
    if resume is not None:
        run_dir = resume
        manifest = run_dir.manifest()
        dropped, bad_lines = drop_unfinished(run_dir, done)
        shutil.rmtree(run_dir.scratch_dir, ignore_errors=True)  # left by a killed run
        manifest.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                   "finished_jobs": len(done), "dropped_records": dropped,
                                                   "dropped_lines": [list(b) for b in bad_lines]})
        if bad_lines:
            on_event({"event": "warning", "text": f"records.jsonl: {describe_skipped(bad_lines)}; dropped"})
    else:
        if out_dir is None:
            raise SnnbenchError("no output directory")
        run_dir = RunDir.create(out_dir, suite.name)
        manifest = {
            "suite": suite.name, "suite_path": suite.path, "description": suite.description,
            "runners": runners, "quick": quick, "device": device, "seed": seed, "data_dir": data_dir,
            "check_parity": check_parity, "case_filter": case_filter, "epochs": epochs, "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "offline": offline,
            # 'auto' resolved once, here, for every job of the run
            "device_resolved": sorted({c.spec.device for c, _ in jobs}),
            "timing": suite.timing, "environment": env.capture(), "allocator": allocator.describe(),
            "cases": [case_to_dict(c) for c in suite.cases],
        }
    manifest["status"] = "running"
    manifest["executor"] = executor.describe()
    notes = sorted({s.note for s in sources.values()})
    if any(c.spec.dataset == "cue" for c, _ in jobs):
        notes.append("synthetic cue-recall task (generated in memory)")
    if any(c.spec.dataset == "random" for c, _ in jobs):
        notes.append("random spike input (timing only)")
    if resume is None:
        manifest["data"] = notes
        manifest["synthetic_data"] = any(s.synthetic for s in sources.values())
    limit = int(suite.memory_limit_gb * 2**30) if suite.memory_limit_gb else None
    try:
        run_dir.write_manifest(manifest)
        on_start(run_dir, jobs, "; ".join(notes))
        executor.run([_job(suite, case, runner, sources, check_parity) for case, runner in jobs],
                     run_dir, on_event, limit)
        manifest["status"] = "complete"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as exc:
        manifest["status"] = "crashed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest["executor"] = executor.describe()  # now with what it learned (the nodes it used)
        run_dir.write_manifest(manifest)
        shutil.rmtree(run_dir.scratch_dir, ignore_errors=True)
        run_dir.unlock()
    return run_dir
