"""Run a suite: one worker process per (case, runner), records appended as they arrive.

Each benchmark job ends with a ``job`` record (its final status, its wall time, and how many records
the job wrote before it), written by the parent after the worker exits. ``--resume`` uses these: a job
with a ``job`` record whose records are all there is finished; any other records of the same
(case, runner) are the leftovers of an interrupted or damaged job, removed before the job runs again,
so nothing is lost or duplicated.

A resumed run is the run that was started: the manifest holds the suite as it was resolved (cases,
networks, timing, memory limit), absolute paths, the device ``auto`` resolved to, and each dataset's
root and fingerprint; a resume runs those, and refuses data whose fingerprint changed. A full disk
stops the run with one line saying so, leaves no temporary file behind, marks the manifest
``interrupted`` and the unfinished job without a ``job`` record, so that ``--resume`` finishes it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..data import resolve_source
from ..data.validate import CLASSES
from ..errors import DiskFull, SnnbenchError, is_disk_full
from ..results.store import RunDir, describe_skipped
from ..spec import Case, Suite, case_from_dict, case_to_dict, load_suite, select_cases
from . import allocator, budget, env
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
    # a case that names its runners (``runners:`` in the suite file) runs only those of the run's runners
    return [(case, runner) for case in cases for runner in runners
            if not case.spec.runners or runner in case.spec.runners]


MANIFEST_VERSION = 2
#: records appended to a finished run by later commands (snnbench nir-check), not by its jobs
AFTER_JOB_METRICS = ("job", "nir")
#: freed on a full disk, so that the manifest can still be written (removed with the scratch folder)
BALLAST_BYTES = 256 * 1024


def job_state(records: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """``(finished, damaged)`` jobs: a job is finished when its ``job`` record is there and so are all the
    records it counted (``records``; older runs did not count, and their job record alone says finished);
    damaged when its job record is there but some of its records are not (a line lost or cut) or doubled."""
    counts = Counter((r["case"], r["runner"]) for r in records if r.get("metric") not in AFTER_JOB_METRICS)
    finished, damaged = set(), set()
    for r in records:
        if r.get("metric") == "job":
            key = (r["case"], r["runner"])
            expected = r.get("records")
            if isinstance(expected, int) and not isinstance(expected, bool) and counts[key] != expected:
                damaged.add(key)
            else:
                finished.add(key)
    return finished - damaged, damaged


def finished_jobs(run_dir: RunDir) -> set[tuple[str, str]]:
    return job_state(run_dir.records())[0]


def suite_of_manifest(manifest: dict[str, Any], where: str) -> Suite:
    """The suite a run was started with. A manifest of this version holds it whole; an older one names
    the suite file, which is read again and must still describe the run's cases."""
    try:
        if manifest.get("manifest_version", 1) >= MANIFEST_VERSION:
            return Suite(name=manifest["suite"], description=str(manifest.get("description") or ""),
                         runners=tuple(manifest["runners"]),
                         cases=tuple(case_from_dict(c) for c in manifest["cases"]),
                         path=str(manifest.get("suite_path") or ""), timing=dict(manifest.get("timing") or {}),
                         memory_limit_gb=manifest.get("memory_limit_gb"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnnbenchError(f"{where}: its suite cannot be read back ({type(exc).__name__}: {exc}); cannot resume it")
    suite = select_cases(load_suite(manifest["suite_path"], quick=bool(manifest.get("quick"))),
                         manifest.get("case_filter"))
    recorded = manifest.get("cases")
    if recorded is not None and _jsonable([case_to_dict(c) for c in suite.cases]) != recorded:
        raise SnnbenchError(f"{where}: the suite file {manifest['suite_path']} no longer describes this run's cases "
                            "(it changed, or names another file from here); resuming would mix two suites in one "
                            "run: start a new run")
    return suite


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


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
    (checked before the run, not as a division by zero inside a worker), and a network with an output
    for each of its dataset's classes (a label past the outputs is a silently wrong loss)."""
    for case, _ in jobs:
        classes = CLASSES.get(case.spec.dataset)
        net = case.network
        if classes and net.classes < classes:
            scored = (f"{net.outputs} outputs" if net.population == 1 else
                      f"{net.outputs} outputs, {net.classes} classes of {net.population} (population)")
            raise SnnbenchError(f"case {case.id}: the network has {scored}, but {case.spec.dataset} has {classes} "
                                f"classes (labels 0-{classes - 1}); give its last weight layer "
                                f"'out: {classes * net.population}' or more")
        source = sources.get((case.spec.dataset, case.spec.train_samples, case.spec.test_samples))
        if source is None or not case.spec.epochs:
            continue
        n_train = min(case.spec.train_samples or source.train_samples, source.train_samples)
        if n_train < case.spec.batch:
            raise SnnbenchError(f"case {case.id}: batch {case.spec.batch} is larger than the {n_train} training "
                                f"samples of {source.root}")
        if source.test_samples < 1:
            raise SnnbenchError(f"case {case.id}: {source.root} has no test samples")


def resolve_sources(jobs: list[tuple[Case, str]], data_dir: str | None, offline: bool = False,
                    recorded: list[dict[str, Any]] | None = None) -> dict[tuple, Any]:
    """The data source of every file-backed case (SHD, N-MNIST), keyed by (dataset, train_samples,
    test_samples); the real set is downloaded on first use unless ``offline``. Each source's contents are
    validated once (:mod:`snnbench.data.validate`). With ``recorded`` (a resumed run's ``data_sources``),
    each comes from the root the run started with and must still have its fingerprint."""
    sources: dict[tuple, Any] = {}
    old = {(r.get("dataset"), r.get("train_samples"), r.get("test_samples")): r for r in recorded or []}
    for case, _ in jobs:
        key = (case.spec.dataset, case.spec.train_samples, case.spec.test_samples)
        if key in sources:
            continue
        entry = old.get(key) if recorded is not None else None
        if recorded is not None and entry is None and case.spec.dataset in ("shd", "nmnist"):
            raise SnnbenchError(f"case {case.id}: the manifest does not say where its {case.spec.dataset} data was; "
                                "cannot resume it")
        root = entry["root"] if entry else data_dir
        source = resolve_source(case.spec.dataset, root, case.spec.train_samples, case.spec.test_samples,
                                offline=offline)
        if source is None:
            continue
        if entry and entry.get("fingerprint") and source.fingerprint != entry["fingerprint"]:
            raise SnnbenchError(f"{source.root}: the {case.spec.dataset} data changed since the run started (its "
                                "fingerprint differs); resuming would mix two datasets in one run: start a new run")
        sources[key] = source
    return sources


def _data_sources(sources: dict[tuple, Any]) -> list[dict[str, Any]]:
    """What a manifest keeps of each source: where it was (absolute) and its fingerprint."""
    return [{"dataset": k[0], "train_samples": k[1], "test_samples": k[2], "root": str(Path(s.root).resolve()),
             "fingerprint": s.fingerprint, "synthetic": s.synthetic} for k, s in sources.items()]


def _job(suite: Suite, case: Case, runner: str, sources: dict[tuple, Any], check_parity: bool) -> dict[str, Any]:
    """What a worker needs to run (case, runner): plain JSON, so that it can travel to another node."""
    source = sources.get((case.spec.dataset, case.spec.train_samples, case.spec.test_samples))
    return {
        "suite": suite.name, "case": case_to_dict(case), "runner": runner, "device": case.spec.device,
        # what records say until the runner names the device it resolved ('auto' never stays)
        "device_label": env.device_label(case.spec.device),
        "data_root": str(Path(source.root).resolve()) if source else None, "synthetic": source.synthetic if source else None,
        "data_note": source.note if source else "random input", "timing": suite.timing,
        "check_parity": check_parity,
        # the gate in the benchmark's worker, on its runner (no second start and import of the framework, a
        # compiled runner's graphs compiled once); False: a parity worker of its own first
        "parity_in_worker": True,
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
    versions: str | None = None,
) -> RunDir:
    """Run every (case, runner) of ``suite``; returns the run directory.

    With ``resume``, continue that run directory: finished jobs are kept, unfinished ones rerun.
    ``executor`` runs the jobs (default: :class:`.executor.LocalExecutor`, one at a time here).
    """
    executor = executor or LocalExecutor()
    called = time.monotonic()  # the run's own time: planning, finding the data, the jobs, what lies between
    data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None  # a resume works from anywhere
    recorded: dict[str, Any] = {}
    if resume is not None:
        resume.lock()  # before reading what is finished: a second writer stops here
        recorded = resume.manifest()
    # the device 'auto' resolved to when the run started, so that a resumed run stays on it
    auto_device = recorded.get("auto_device") or env.accelerator()
    jobs = plan(suite, runners, device, seed, epochs, auto_device)
    # Find and check the data and sizes before writing anything: bad input must not leave a run directory
    # behind (nor touch the one being resumed).
    try:
        if resume is not None:
            done = finished_jobs(resume)
            jobs = [(c, r) for c, r in jobs if (c.id, r) not in done]
        sources = resolve_sources(jobs, data_dir, offline,
                                  recorded=recorded.get("data_sources") if "data_sources" in recorded else None)
        check_batches(jobs, sources)
        budget.check_cases_fit([(c, sources.get((c.spec.dataset, c.spec.train_samples, c.spec.test_samples)))
                                for c, _ in jobs], suite.memory_limit_gb)
    except BaseException:
        if resume is not None:
            resume.unlock()
        raise
    if resume is not None:
        run_dir = resume
        manifest = recorded
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
            "manifest_version": MANIFEST_VERSION,
            "suite": suite.name, "suite_path": str(Path(suite.path).resolve()) if suite.path else "",
            "description": suite.description, "runners": runners, "quick": quick, "device": device, "seed": seed,
            "data_dir": str(Path(data_dir).expanduser().resolve()) if data_dir else None,
            "check_parity": check_parity, "case_filter": case_filter, "epochs": epochs, "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "offline": offline, "versions": versions,
            # 'auto' resolved once, here, for every job of the run (and of its resumes)
            "auto_device": auto_device, "device_resolved": sorted({c.spec.device for c, _ in jobs}),
            "timing": suite.timing, "memory_limit_gb": suite.memory_limit_gb, "environment": env.capture(),
            "allocator": allocator.describe(), "cases": [case_to_dict(c) for c in suite.cases],
            "data_sources": _data_sources(sources),
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
    disk_full: DiskFull | None = None
    try:
        try:
            run_dir.write_manifest(manifest)
            _ballast(run_dir)
            on_start(run_dir, jobs, "; ".join(notes))
            jobs_started = time.monotonic()
            try:
                executor.run([_job(suite, case, runner, sources, check_parity) for case, runner in jobs],
                             run_dir, on_event, limit)
            finally:  # (a resumed run adds its own)
                manifest.setdefault("timeline", []).append(
                    {"before_jobs_s": round(jobs_started - called, 3),
                     "jobs_s": round(time.monotonic() - jobs_started, 3)})
            manifest["status"] = "complete"
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            disk_full = DiskFull(f"no space left on device ({_what_was_full(exc)}); the run in {run_dir.path} is kept "
                                 f"and can be finished: free space, then snnbench run --resume {run_dir.path}")
            manifest["status"] = "interrupted"
            manifest["error"] = f"disk full: {_what_was_full(exc)}"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as exc:
        manifest["status"] = "crashed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # scratch first: it holds the ballast and the compile caches, the space the manifest may need
        shutil.rmtree(run_dir.scratch_dir, ignore_errors=True)
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest["executor"] = executor.describe()  # now with what it learned (the nodes it used)
        try:
            run_dir.write_manifest(manifest)
        except DiskFull:
            if disk_full is None and manifest.get("status") != "crashed":
                raise
        finally:
            run_dir.unlock()
    if disk_full is not None:
        raise disk_full
    return run_dir


def _ballast(run_dir: RunDir) -> None:
    """A little space set aside in the scratch folder: on a full disk it is freed first, so that the
    manifest can still say what happened."""
    scratch = run_dir.scratch_dir
    scratch.mkdir(exist_ok=True)
    fd = os.open(scratch / "ballast", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        os.write(fd, bytes(BALLAST_BYTES))
        os.fsync(fd)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(f"no space left on device in {run_dir.path}") from None
        raise
    finally:
        os.close(fd)


def _what_was_full(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return f"writing {exc.filename}"
    return text.removeprefix("no space left on device").strip(" ;()") or "a write failed"
