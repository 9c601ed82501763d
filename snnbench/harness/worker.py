"""Worker process entry: ``python -m snnbench.harness.worker JOB.json``.

One worker per (case, runner): fresh imports, its own memory peak, and a crash or hang that cannot
take the run down. Events go to the parent as ``@@snnbench <json>`` lines on a private copy of the
original stdout; the worker's own stdout is redirected to stderr, which the parent logs, so that a
framework's prints can never corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

PREFIX = "@@snnbench "
WATCH_S = 0.25


def die_with_parent(parent: int) -> None:
    """Kill this worker's process group (the worker and any helper processes its framework started)
    once the parent is gone, even if the worker is hung: a killed ``snnbench run`` leaves nothing
    running. A daemon thread, so a worker stuck in a framework call (which releases the GIL) still
    notices."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        if os.getpgrp() == os.getpid():  # started in its own session: the group is this job alone
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

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

    from .execute import execute

    execute(job, emit)
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
