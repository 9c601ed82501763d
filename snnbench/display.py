"""What ``snnbench run`` shows while it runs.

Every result is a line as it arrives. On a terminal one bar sits below them: the run's jobs (k of
N), elapsed time, an ETA, and the current job's phase and epoch. The ETA weighs each job by its
size (time steps x batch x the batches it trains and times), so a long training job moves the bar
more than a timing-only one. Off a terminal (CI logs, files) the bar is replaced by a plain
``[k/N]`` line per job. Every text that comes from the user or a framework (case ids, paths,
reasons) is printed literally, never read as console markup.
"""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.progress import ProgressColumn
from rich.text import Text

from .results.estimate import describe as describe_estimate
from .results.estimate import estimate, find_runs, job_weight

def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60:02d}:{seconds % 60:02d}"


def step_line(e: dict[str, Any]) -> str:
    """One fwd / fwd+bwd record as a line: per step (the record's value), per call, page faults."""
    st, extra = e["stats"], e.get("extra") or {}
    floor = f", {e['floor_ratio']:.2f}x the GEMM floor" if e.get("floor_ratio") else ""
    unstable = " [yellow]unstable[/]" if st.get("unstable") else ""
    faults = (e.get("minor_faults") or {}).get("per_call")
    per_call = (f"; per call {e['per_call_ms']:.2f} ms, {faults:.0f} page faults"
                if e.get("per_call_ms") is not None and faults is not None else "")
    return (f"{e['metric']} median {st['median']:.2f} ms per step (95% CI {st['ci_low']:.2f}-{st['ci_high']:.2f}, "
            f"n={st['n']} x {extra.get('steps_per_sample', 1)} steps{floor}{per_call}){unstable}")


class RunDisplay:
    """Receives the harness's events (``on_start``, ``on_event``) and prints them."""

    def __init__(self, console, resuming: bool, quick: bool, suite_name: str, n_cases: int, n_runners: int):
        self.console = console
        self.interactive = console.is_terminal
        self.resuming, self.quick = resuming, quick
        self.suite_name, self.n_cases, self.n_runners = suite_name, n_cases, n_runners
        self.progress = None
        self.run_dir = None
        self.weights: dict[tuple[str, str], float] = {}
        self.done_weight = 0.0
        self.jobs_done = 0
        self.started = time.monotonic()
        self.current: dict[str, Any] = {}
        self.warned: set[tuple[Any, Any]] = set()  # jobs already said to run under interference

    # ------------------------------------------------------------------------------ harness hooks
    def on_start(self, run_dir, jobs, data_note: str) -> None:
        self.run_dir = run_dir
        self.weights = {(case.id, runner): job_weight(case) for case, runner in jobs}
        verb = (f"resuming {len(jobs)} unfinished job(s) in" if self.resuming else
                f"{self.n_cases} case(s) x {self.n_runners} runner(s) ->")
        self.console.print(f"[bold]snnbench[/] suite [bold]{escape(self.suite_name)}[/]"
                           f"{' (quick)' if self.quick else ''}: {verb} {escape(str(run_dir.path))}")
        self.console.print(f"data: {escape(data_note)}", soft_wrap=True)  # one line, however long
        self.console.print(escape(self.plan_line(run_dir, jobs)), soft_wrap=True)
        self.started = time.monotonic()
        if self.interactive:
            from rich.progress import BarColumn, Progress, TextColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), StatusColumn(self),
                                     console=self.console, transient=True)
            self.progress.start()  # only now: an error before this prints its one line and nothing else
            self.task = self.progress.add_task("jobs", total=sum(self.weights.values()) or 1.0)
            self._refresh()

    @staticmethod
    def plan_line(run_dir, jobs) -> str:
        """How many jobs, and how long they should take here (from earlier runs beside this one and
        the committed publish)."""
        from pathlib import Path

        roots = [run_dir.path.parent, Path(__file__).resolve().parents[1] / "results"]
        runs = [r for r in find_runs(list(dict.fromkeys(roots))) if r.resolve() != run_dir.path.resolve()]
        environment = run_dir.manifest().get("environment") or {}
        suite = run_dir.manifest().get("suite", "")
        return "plan: " + describe_estimate(len(jobs), estimate(jobs, runs, environment, suite))

    def stop(self) -> None:
        if self.progress is not None and self.progress.live.is_started:
            self.progress.stop()

    def on_event(self, e: dict[str, Any]) -> None:
        kind, what = e.get("event"), e.get("what")
        tag = f"[cyan]{escape(str(e.get('case')))}[/] [magenta]{escape(str(e.get('runner')))}[/]"
        if kind == "warning":
            self.console.print(f"[yellow]warning:[/] {escape(e['text'])}")
        elif kind == "parity_start":
            self._job_started(e, "parity gate")
            self.console.print(f"{tag} parity gate against the reference ...")
        elif kind == "job_start":
            if self.current.get("key") != (e["case"], e["runner"]):
                self._job_started(e, "starting")
            self.current["epochs"] = e.get("epochs") or 0
        elif kind == "progress" and what == "phase":
            self.current["phase"] = e["phase"]
        elif kind == "progress" and what == "node":  # the Ray executor says where a job landed
            self.console.print(f"{tag} on node {escape(str(e['node']))}")
        elif kind == "progress" and what == "compile":
            self.console.print(f"{tag} compile {e['seconds']:.2f} s")
        elif kind == "progress" and what == "epoch":
            self.current.update(phase="training", epoch=e["epoch"], of=e["of"])
            self.console.print(f"{tag} epoch {e['epoch']}/{e['of']}  {e['seconds']:.2f} s  "
                               f"train loss {e['train_loss']:.4f}  test acc {100 * e['test_acc']:.1f}%")
        elif kind == "progress" and what == "consistency":
            verdict = "agree" if e["agree"] else f"[red]DISAGREE (beyond {e['bound']:g}x)[/]"
            self.console.print(f"{tag} epoch time per batch {e['epoch_ms_per_batch']:.2f} ms vs fwd+bwd per step "
                               f"{e['fwdbwd_ms_per_step']:.2f} ms: {e['ratio']:.2f}x, {verdict}")
        elif kind == "record":
            self._interference(tag, e)
            self._record(tag, e)
        elif kind == "job_end":
            self._interference(tag, e)
            self.jobs_done += 1
            self.done_weight += self.weights.get((e["case"], e["runner"]), 0.0)
            self.current = {}
        self._refresh()

    # --------------------------------------------------------------------------------- helpers
    def _interference(self, tag: str, e: dict[str, Any]) -> None:
        """Once per job: its figures were measured while other processes used the CPUs (or a hypervisor
        stole them), so they are slower than this machine's own; the record says so too (``load``)."""
        load = e.get("load")
        key = (e.get("case"), e.get("runner"))
        if not isinstance(load, dict) or not load.get("interference") or key in self.warned:
            return
        self.warned.add(key)
        self.console.print(f"{tag} [yellow]measured under interference:[/] {escape(str(load.get('summary', '')))} "
                           f"(from {escape(str(e.get('metric')))} on; the records carry load.interference)")

    def _record(self, tag: str, e: dict[str, Any]) -> None:
        metric, ok = e.get("metric"), e.get("status") == "ok"
        if metric in ("fwd_ms", "fwdbwd_ms") and ok:
            self.console.print(f"{tag} {step_line(e)}")
        elif metric == "extrap_acc" and ok:
            self.console.print(f"{tag} step-by-step accuracy at T={e['extra']['T']} "
                               f"(trained at {e['extra']['train_T']}): {100 * e['value']:.1f}%")
        elif metric == "parity":
            colour = {"pass": "green", "deviates": "yellow", "skipped": "yellow"}.get(e.get("value"), "red")
            verdict = escape(e.get("reason", "")) if ok else f"{e['status']}: {escape(e.get('reason', ''))}"
            self.console.print(f"{tag} parity [{colour}]{verdict}[/]")
        elif not ok:
            self.console.print(f"{tag} [yellow]{escape(str(e['status']))}[/]: {escape(e.get('reason', ''))}")

    def _job_started(self, e: dict[str, Any], phase: str) -> None:
        self.current = {"key": (e["case"], e["runner"]), "phase": phase, "started": time.monotonic()}
        if not self.interactive:
            elapsed, eta = self._times()
            self.console.print(f"[{self.jobs_done + 1}/{len(self.weights)}] {e['case']} {e['runner']}  "
                               f"(elapsed {_clock(elapsed)}, ETA {_clock(eta)})", markup=False, highlight=False)

    def _times(self) -> tuple[float, float | None]:
        """Elapsed seconds, and the remaining ones at the rate (weight per second) seen so far."""
        elapsed = time.monotonic() - self.started
        done = self.done_weight + self._current_credit()
        total = sum(self.weights.values())
        if done <= 0 or elapsed < 1:
            return elapsed, None
        return elapsed, max(0.0, (total - done) * elapsed / done)

    def _current_credit(self) -> float:
        """The part of the running job done: its finished epochs' share of its weight."""
        if not self.current.get("key") or not self.current.get("of"):
            return 0.0
        return 0.8 * self.weights.get(self.current["key"], 0.0) * self.current["epoch"] / self.current["of"]

    def status_text(self) -> str:
        """Elapsed, ETA, and what the current job is doing (redrawn by the bar several times a second)."""
        elapsed, eta = self._times()
        key = self.current.get("key")
        doing = ""
        if key:
            doing = f"  {key[0]} / {key[1]}: {self.current.get('phase', '')}"
            if self.current.get("of") and self.current.get("phase") == "training":
                doing += f" (epoch {self.current['epoch']}/{self.current['of']})"
        return f"{_clock(elapsed)} elapsed, ETA {_clock(eta)}{doing}"

    def _refresh(self) -> None:
        if self.progress is None or not self.progress.live.is_started:
            return
        self.progress.update(self.task, completed=self.done_weight + self._current_credit(),
                             description=f"jobs {self.jobs_done}/{len(self.weights)}")


class StatusColumn(ProgressColumn):
    """The bar's text, from the display; plain text, so ids and paths are never read as markup."""

    def __init__(self, display: RunDisplay):
        super().__init__()
        self.display = display

    def render(self, task) -> Text:
        return Text(self.display.status_text())
