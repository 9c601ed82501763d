"""The reference's side of the parity gate in a child process, for the gate run inside a benchmark worker.

The benchmark worker of an adapter runs the gate on its own, already built runner (no second worker that
starts and imports the framework again, and a compiled runner's graphs compiled once for the gate, the
timings and the training). The reference (JAX) is kept out of that worker's process: importing it there
would add its libraries to the memory the adapter's phases are measured by. :class:`ReferenceProcess`
starts a child (``spawn``: a fresh interpreter, nothing inherited from the framework) that builds
reference runners on request; :class:`RemoteRunner` stands for one of them with the methods the gate
calls (``set_weights``, ``forward``, ``forward_backward``), their results pickled across a pipe.
The child lives only for the gate and is closed before anything is timed.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
from typing import Any


class RemoteError(RuntimeError):
    """A call failed in the reference's process (its type and first line are in the message)."""


def _serve(conn) -> None:
    """The child: build reference runners, answer calls, until the parent closes the pipe. A
    ``prepare`` request (:meth:`ReferenceProcess.prefetch`) builds the reference and finds the gate's
    conclusive input ahead of time, and for a runner that declares deviations the deviated reference with
    its results on that input; the gate's own requests for the same then take them as they are. Every
    reference is :class:`~.parity.Remembered`: the gate's comparison takes the spikes and gradients
    that choosing the input already computed."""
    from .parity import Remembered, Skip, _build, conclusive_input

    runners: dict[int, Any] = {}
    prebuilt: dict[bytes, int] = {}  # a prefetched build, taken by the first build request with its arguments
    chosen: dict[bytes, Any] = {}  # a prefetched conclusive input, by (runner id, case, batch, seed)

    def build(args: tuple) -> int:
        rid = prebuilt.pop(pickle.dumps(args), None)
        if rid is None:
            runners[len(runners)] = Remembered(_build(*args))
            rid = len(runners) - 1
        return rid

    def prepare(name, case, device, seed, batch, deviated=None) -> None:
        rid = build((name, case, device, seed))
        prebuilt[pickle.dumps((name, case, device, seed))] = rid
        found = chosen[pickle.dumps((rid, case, batch, seed))] = conclusive_input(runners[rid], case, batch, seed)
        if deviated is None or "why" in found:
            return
        try:  # what proving the deviation will ask for; a failure here is the gate's to meet and report
            did = build((name, deviated, device, seed))
        except Exception:
            return
        prebuilt[pickle.dumps((name, deviated, device, seed))] = did
        runners[did].set_weights(found["weights"])
        runners[did].forward(found["x"])
        runners[did].forward_backward(found["x"], found["y"])

    def conclusive(rid: int, case, batch: int, seed: int) -> Any:
        key = pickle.dumps((rid, case, batch, seed))
        if key not in chosen:
            chosen[key] = conclusive_input(runners[rid], case, batch, seed)
        return chosen.pop(key)

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        op, args = request
        try:
            if op == "build":
                result: Any = build(args)
            elif op == "prepare":  # (name, case, device, seed, batch, deviated case): built and chosen, kept
                result = prepare(*args)
            elif op == "conclusive":
                result = conclusive(*args)
            else:
                rid, method, call_args = args
                result = getattr(runners[rid], method)(*call_args)
            conn.send(("ok", result))
        except Skip as exc:
            conn.send(("skip", str(exc)))
        except Exception as exc:  # the parent raises it as RemoteError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            conn.send(("error", f"{type(exc).__name__}: {first}"[:500]))


class ReferenceProcess:
    """A child process building and running reference runners for the gate (a context manager)."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="snnbench-parity-reference")
        self.proc.start()
        child.close()
        self._pending = 0  # replies to prefetches not yet read

    def prefetch(self, name: str, case, device: str, seed: int, batch: int, deviated=None) -> None:
        """Start building reference ``name`` for ``case`` and choosing the gate's input at ``batch``
        now, without waiting: the child works while this process imports and builds its framework.
        ``deviated``: the case as the runner's declared deviations make it (None: it declares none), whose
        reference the gate builds to prove them, built and run on the chosen input here too.
        Call :meth:`ready` before anything is timed (the child's work would compete for the cores)."""
        self.conn.send(("prepare", (name, case, device, seed, batch, deviated)))
        self._pending += 1

    def ready(self) -> None:
        """Wait until the child has finished every prefetch. Nothing is raised here, not even for a child
        that died: the gate's own request for the same work raises it (a parity record, never the job's
        failure), or does the work."""
        while self._pending:
            try:
                self.conn.recv()
            except (EOFError, OSError):
                self._pending = 0
                return
            self._pending -= 1

    def request(self, op: str, *args: Any) -> Any:
        from .parity import Skip

        self.ready()
        self.conn.send((op, args))
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise RemoteError(f"the reference's process died (exit code {self.proc.exitcode})") from None
        if status == "skip":
            raise Skip(value)
        if status == "error":
            raise RemoteError(value)
        return value

    def build(self, name: str, case, device: str, seed: int) -> "RemoteRunner":
        return RemoteRunner(self, self.request("build", name, case, device, seed))

    def conclusive_input(self, ref: "RemoteRunner", case, batch: int, seed: int) -> dict[str, Any]:
        """:func:`.parity.conclusive_input` for ``ref``, found in the child (prefetched, or now)."""
        return self.request("conclusive", ref.rid, case, batch, seed)

    def close(self) -> None:
        """End the child: at once if it is still working on a prefetch nobody will read (a skipped job)."""
        if self.conn.closed:
            return
        self.conn.close()
        if self._pending and self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()

    def __enter__(self) -> "ReferenceProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RemoteRunner:
    """One reference runner in the child: the calls the gate makes, by name."""

    def __init__(self, process: ReferenceProcess, rid: int):
        self.process, self.rid = process, rid

    def _call(self, method: str, *args: Any) -> Any:
        return self.process.request("call", self.rid, method, args)

    def set_weights(self, weights):
        return self._call("set_weights", weights)

    def forward(self, x):
        return self._call("forward", x)

    def forward_backward(self, x, y):
        return self._call("forward_backward", x, y)
