"""Worker process entry: ``python -m snnbench.harness.worker JOB.json``.

One worker per (case, runner): fresh imports, its own memory peak, and a crash or hang that cannot
take the run down. Events go to the parent as ``@@snnbench <json>`` lines on a private copy of the
original stdout; the worker's own stdout is redirected to stderr, which the parent logs, so that a
framework's prints can never corrupt the protocol.

A worker dies with its parent, at once and whatever it is doing (:func:`die_with_parent`): the kernel
sends it ``SIGKILL`` when the parent dies (``PR_SET_PDEATHSIG``), so a worker stuck in a framework call
that holds the GIL, where no thread of its own could run, goes too; and a small reaper process, forked
first thing into the worker's process group, kills that group (the helper processes a framework
started) the moment the worker is gone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

PREFIX = "@@snnbench "
#: the fallback's poll interval, where the kernel's parent-death signal is not available
WATCH_S = 0.05
PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux); False elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError, TypeError):
        return False


def _kill_group_and_self() -> None:
    if os.getpgrp() == os.getpid():  # started in its own session: the group is this job alone
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _start_reaper() -> None:
    """Fork a reaper into the worker's process group: it waits for the worker to die (its own
    parent-death signal) and then kills the group, helpers and itself included. It holds no descriptor
    of the worker's (the parent reads the protocol pipe to its end), and costs one sleeping process."""
    worker = os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # inherited by the child, for sigwait
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        return
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        return
    try:  # the reaper
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 4096)
        if _parent_death_signal(signal.SIGUSR1):
            if os.getppid() == worker:
                signal.sigwait({signal.SIGUSR1})
        else:
            while os.getppid() == worker:
                time.sleep(WATCH_S)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(0)


def die_with_parent(parent: int) -> None:
    """End this worker the moment ``parent`` (the process that started it) dies, even by ``kill -9``,
    and the processes it started with it (module docstring). Where the kernel has no parent-death
    signal, a daemon thread watches the parent instead (every :data:`WATCH_S` s)."""
    if os.getpgrp() == os.getpid():
        _start_reaper()
    armed = _parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        _kill_group_and_self()
    if armed:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        _kill_group_and_self()

    threading.Thread(target=watch, daemon=True, name="snnbench-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent(int(os.environ.get("SNNBENCH_PARENT_PID", os.getppid())))
    with open(argv[0]) as f:
        job = json.load(f)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: dict) -> None:
        proto.write(PREFIX + json.dumps(event, default=str) + "\n")
        proto.flush()

    from .phases import CLOCK

    with CLOCK.phase("start-up"):
        from .execute import execute
    execute(job, emit)
    emit({"event": "phases", "phases": CLOCK.seconds})  # where this worker's time went (the parent adds the rest)
    emit({"event": "done"})
    return 0


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: the job is done and reported, and a framework's
    finalisation (freeing a large network's arrays, shutting down XLA's or PyTorch's thread pools)
    took up to a second of every job's wall time. The streams are flushed first; the helper processes
    a framework started go with the worker's process group (the reaper, :func:`die_with_parent`)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
