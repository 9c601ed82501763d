"""Worker process entry: ``python -m snnbench.harness.worker JOB.json``.

One worker per (case, runner): fresh imports, its own memory peak, and a crash or hang that cannot
take the run down. Events go to the parent as ``@@snnbench <json>`` lines on a private copy of the
original stdout; the worker's own stdout is redirected to stderr, which the parent logs, so that a
framework's prints can never corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys

PREFIX = "@@snnbench "


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
