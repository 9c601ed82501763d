"""The machine's load while a job runs, so that a figure measured beside other work says so.

The kernel counts every CPU's time (``/proc/stat``): time spent running any process (user, nice, system,
irq, softirq), idle, waiting for I/O, and stolen by the hypervisor (``steal``: a virtual machine whose host
gave its CPU to another guest). The harness samples these counters while a job's worker runs, together with
the CPU time of the job's own processes (the harness process, the workers it has reaped, the live worker),
so that over any window

    other processes' CPU time = all processes' CPU time - ours

and a record carries ``load``: over the window in which it was measured (since the job's previous record,
at least the last :data:`MIN_WINDOW_S` seconds), the other processes' CPU time in cores on average, the
stolen share of the machine's CPU time, and ``interference: true`` when either passes its bound (another
process using a quarter of a core, or 5% of the cores, on average; 5% of the CPU time stolen), with a
one-line ``summary``. pyperf warns about an unstable system the same way.

The worker runs in a process group of its own, and every process of that group is the job's: a helper the
worker starts (the parity gate's reference process, which works while the worker imports) is not
interference.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

#: another process using at least this many cores on average is interference ...
OTHER_CORES = 0.25
#: ... or this share of the machine's cores, whichever is more
OTHER_SHARE = 0.05
#: the hypervisor stealing this share of the machine's CPU time is interference
STEAL_SHARE = 0.05
#: a record's window reaches back at least this far (the kernel counts CPU time in ticks of 10 ms)
MIN_WINDOW_S = 1.0
#: how often the harness samples the counters while a worker runs
SAMPLE_S = 0.5


@dataclass(frozen=True)
class CpuSample:
    t: float  # monotonic seconds
    busy_s: float  # CPU time of every process on the machine, all cores (not idle, I/O wait or steal)
    steal_s: float  # CPU time the hypervisor gave to others, all cores
    own_s: float  # CPU time of this job's processes


def read_cpu_counters(text: str | None = None, ticks: int | None = None) -> tuple[float, float]:
    """``(busy, steal)`` seconds summed over the machine's CPUs, from ``/proc/stat`` (or ``text``)."""
    if text is None:
        with open("/proc/stat") as f:
            text = f.read()
    line = next(line for line in text.splitlines() if line.startswith("cpu "))
    fields = [int(v) for v in line.split()[1:]] + [0] * 10
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    ticks = ticks or os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def _stat_fields(pid: int | str) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: [state, ppid, pgrp, ...], or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_s(pid: int, ticks: int) -> float:
    """User and system time of a process and of the children it has reaped (0 once it is gone)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else sum(int(v) for v in fields[11:15]) / ticks  # utime, stime, cutime, cstime


def group_cpu_s(pgid: int, ticks: int) -> float:
    """:func:`process_cpu_s` summed over the live processes of process group ``pgid`` (a worker started in
    a session of its own and its helpers: the parity gate's reference process, say). A helper's time moves
    into the worker's reaped-children time when the worker reaps it, and it is counted once either way."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and (fields[2] == str(pgid) or entry.name == str(pgid)):  # (a non-leader: itself)
                total += sum(int(v) for v in fields[11:15]) / ticks
    return total


def machine_load(before: CpuSample, after: CpuSample, cpus: int) -> dict[str, Any]:
    """The load between two samples (module docstring), as a record's ``load``."""
    wall = max(after.t - before.t, 1e-9)
    other = max(0.0, (after.busy_s - before.busy_s) - (after.own_s - before.own_s))
    steal = max(0.0, after.steal_s - before.steal_s)
    other_cores, steal_fraction = other / wall, steal / (wall * cpus)
    bound = max(OTHER_CORES, OTHER_SHARE * cpus)
    parts = []
    if other_cores >= bound:
        parts.append(f"other processes used {other_cores:.2f} of the {cpus} cores")
    if steal_fraction >= STEAL_SHARE:
        parts.append(f"steal time took {100 * steal_fraction:.0f}% of the CPU time")
    summary = "; ".join(parts) if parts else (f"quiet: other processes {other_cores:.2f} cores, "
                                              f"steal {100 * steal_fraction:.0f}%")
    return {"wall_s": round(wall, 3), "cpus": cpus, "other_cpu_s": round(other, 3),
            "other_cores": round(other_cores, 3), "steal_s": round(steal, 3),
            "steal_fraction": round(steal_fraction, 4), "interference": bool(parts), "summary": summary}


class LoadMonitor:
    """Samples the counters while one worker runs; :meth:`record_load` gives a record the load of the
    window it was measured in, :meth:`job_load` the whole job's."""

    def __init__(self) -> None:
        self.cpus = os.cpu_count() or 1
        try:
            self.ticks = os.sysconf("SC_CLK_TCK")
        except (ValueError, OSError, AttributeError):
            self.ticks = 100
        self.pid: int | None = None
        self.samples: list[CpuSample] = []
        self.first = self.sample()
        self.last_record = self.first

    def watch(self, pid: int) -> None:
        """The worker whose CPU time is ours."""
        self.pid = pid

    def sample(self) -> CpuSample | None:
        try:
            busy, steal = read_cpu_counters(ticks=self.ticks)
        except (OSError, ValueError, StopIteration):
            return None  # no /proc/stat: no load figures
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        if self.pid is not None:  # the worker leads its own process group (job.py starts it in a new session)
            own += group_cpu_s(self.pid, self.ticks)
        s = CpuSample(time.monotonic(), busy, steal, own)
        self.samples.append(s)
        return s

    def tick(self) -> None:
        """Sample if the last sample is older than :data:`SAMPLE_S`."""
        if self.first is not None and time.monotonic() - self.samples[-1].t >= SAMPLE_S:
            self.sample()

    def record_load(self) -> dict[str, Any] | None:
        """The load since the previous record (at least the last :data:`MIN_WINDOW_S` s, or the whole job so far)."""
        now = self.sample()
        if now is None or self.first is None:
            return None
        start_t = min(self.last_record.t, now.t - MIN_WINDOW_S)
        start = max((s for s in self.samples if s.t <= start_t), key=lambda s: s.t, default=self.first)
        self.last_record = now
        self.samples = [s for s in self.samples if s.t >= now.t - 2 * MIN_WINDOW_S] or [now]
        return machine_load(start, now, self.cpus)

    def job_load(self) -> dict[str, Any] | None:
        now = self.sample()
        if now is None or self.first is None:
            return None
        return machine_load(self.first, now, self.cpus)
