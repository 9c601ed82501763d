"""Executors: how a run's jobs get run. The local one runs them here, one after another, each in its
own worker process; :mod:`.ray_executor` spreads them over a Ray cluster. Either way the run
directory has one writer, the process that called :func:`~snnbench.harness.run.run_suite`.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..results.store import RunDir
from .job import Progress, run_case_job


class Executor(Protocol):
    def describe(self) -> dict[str, Any]:
        """What the manifest records about the executor (and, once run, where jobs ran)."""
        ...

    def run(self, jobs: list[dict[str, Any]], run_dir: RunDir, on_event: Progress,
            memory_limit_bytes: int | None) -> None:
        """Run every job, appending its records to ``run_dir`` as they arrive; each job ends with its
        ``job`` record, whatever happened to it."""
        ...


class LocalExecutor:
    """One job at a time on this machine: a benchmark has the machine to itself."""

    def describe(self) -> dict[str, Any]:
        return {"name": "local"}

    def run(self, jobs: list[dict[str, Any]], run_dir: RunDir, on_event: Progress,
            memory_limit_bytes: int | None) -> None:
        for job in jobs:
            run_case_job(job, run_dir, on_event, memory_limit_bytes)
