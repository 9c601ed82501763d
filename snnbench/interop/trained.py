"""A run directory's trained networks: the case (from the manifest) and the canonical weights a training job
saved (``weights/<case>--<runner>.npz``, named by its records)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SnnbenchError
from ..results.store import RunDir
from ..spec import Case, case_from_dict, check_weights


def trained_jobs(run: RunDir) -> list[tuple[str, str, str]]:
    """``(case, runner, weights path relative to the run)`` of every training job that saved its weights."""
    seen: dict[tuple[str, str], str] = {}
    for r in run.records():
        if r.get("metric") == "epoch_s" and r.get("status") == "ok" and r.get("weights"):
            seen[(r["case"], r["runner"])] = r["weights"]
    return [(c, rn, w) for (c, rn), w in seen.items()]


def load_trained(run_dir: str | Path, case_id: str | None, runner: str) -> tuple[Case, dict[str, np.ndarray], RunDir]:
    """The case and trained weights of ``runner`` on ``case_id`` (default: the run's only trained case)."""
    run = RunDir.open(Path(run_dir))
    jobs = trained_jobs(run)
    mine = [j for j in jobs if j[1] == runner and (case_id is None or j[0] == case_id)]
    if not mine:
        have = ", ".join(f"{c}/{r}" for c, r, _ in jobs) or "none"
        raise SnnbenchError(f"{run.path}: no trained weights for runner {runner!r}"
                            f"{f' on case {case_id!r}' if case_id else ''} (trained jobs with weights: {have})")
    if len(mine) > 1:
        raise SnnbenchError(f"{run.path}: {runner} trained several cases ({', '.join(j[0] for j in mine)}): "
                            "pass --case")
    case_id, _, rel = mine[0]
    cases = {c["spec"]["id"]: c for c in run.manifest().get("cases", [])}
    if case_id not in cases:
        raise SnnbenchError(f"{run.path}/manifest.json: case {case_id!r} is not among its cases")
    case = case_from_dict(cases[case_id])
    path = run.path / rel
    if not path.is_file():
        raise SnnbenchError(f"{path}: the weights file the records name is missing")
    with np.load(path) as f:
        weights = {k: f[k] for k in f.files}
    try:
        check_weights(case.network, weights)
    except ValueError as exc:
        raise SnnbenchError(f"{path}: {exc}") from None
    return case, weights, run
