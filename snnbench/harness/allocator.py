"""The host memory allocator's configuration, the same for every worker and recorded in each run.

Why it matters: glibc's ``malloc`` serves a block above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and unmaps it on ``free``, so the next call of the same step maps and zero-fills the
same memory again: page faults and kernel time that a steady training loop may or may not pay,
depending on which thread allocates. Measured on the SHD network (forward+backward per call):
PyTorch 3,039 minor faults per call, Spyx 13,101, the reference 17,046 (37 ms of kernel time).

Every worker runs with:

* ``MALLOC_MMAP_MAX_=0``: never ``mmap`` a block from an arena that can grow instead;
* ``MALLOC_TRIM_THRESHOLD_``: never give the heap's top back to the kernel;

so freed blocks stay in the process and are reused, as most allocators (jemalloc, tcmalloc,
PyTorch's CUDA cache) do: 0 faults per call for PyTorch and Spyx. What remains: a thread other than
the main one allocates from a per-thread arena whose heaps are at most 64 MiB, and glibc maps a
larger block fresh whatever the settings. XLA:CPU runs programs on its own threads, so the
reference's 70 MB block of temporaries still costs 17,000 faults per separately dispatched call;
its per-call figure shows that (with the fault count), and its per-step figure, K steps in one
program as its epoch runs them, does not. ``MALLOC_ARENA_MAX=1`` would remove that too, but it
sends every thread's allocations through one lock: Spyx's epochs were 25% slower with it (3.0-3.4 s
-> 3.6-4.6 s), so it is not used. These settings changed no epoch time beyond noise.

The cost is that a worker's resident memory does not shrink on its own after a peak; the memory
measurement hands free pages back (``malloc_trim``) before each phase, so peaks stay per phase.
"""

from __future__ import annotations

GLIBC_MALLOC: dict[str, str] = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30),
}


def allocator_env() -> dict[str, str]:
    """Environment variables every worker process is started with."""
    return dict(GLIBC_MALLOC)


def worker_environ(base: dict[str, str]) -> dict[str, str]:
    """``base`` (a process environment) with any inherited ``MALLOC_*`` variable dropped and
    :func:`allocator_env` set: what a worker process is started with."""
    env = {k: v for k, v in base.items() if not k.startswith("MALLOC_")}
    env.update(allocator_env())
    return env


def describe() -> dict[str, object]:
    """What a run's manifest records about the allocator (inherited ``MALLOC_*`` variables are
    dropped from the workers' environment; ``GLIBC_TUNABLES`` is passed on and recorded)."""
    import os

    return {"library": "glibc malloc", "env": allocator_env(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
            "why": "freed blocks reused from the heap instead of mmap + zero-fill on every call"}


def ensure_worker_environ(module: str) -> None:
    """Re-start this process as ``python -m module`` (same arguments) with :func:`worker_environ` unless it
    already runs with it: for tools that time or profile in their own process, as the harness's workers
    do (glibc reads its ``MALLOC_*`` settings once, at start)."""
    import os
    import sys

    if all(os.environ.get(k) == v for k, v in allocator_env().items()):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], worker_environ(dict(os.environ)))
