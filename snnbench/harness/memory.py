"""Peak memory per phase (fwd, fwd+bwd, GEMM floor, training), each from a reset peak.

Host memory: Linux keeps a resident-set high-water mark per process (``VmHWM``) that
``/proc/self/clear_refs`` resets (write ``5``), so every phase starts a new peak in the same worker;
records give the peak, the resident size at the phase's start and their difference (what the
phase itself added). ``getrusage``'s ``ru_maxrss`` is not used: it never goes down. Before the
reset, ``malloc_trim(0)`` hands the heap's free pages back to the kernel: the workers' allocator
keeps freed blocks (:mod:`.allocator`), and a phase reusing an earlier phase's freed memory would
otherwise not show it in its peak.

Device memory: the runner resets and reads its framework's own peak (``torch.cuda``). JAX has no
reset for ``peak_bytes_in_use``; there the harness measures each phase again in a worker process
that runs only that phase (``device_pending`` in the record says so, and a ``memory`` record per
phase follows). Where the device is the CPU, device memory is host memory and the host figures
are the measure.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

HOST_SOURCE = "VmHWM since a reset through /proc/self/clear_refs"
HOST_FALLBACK = "VmHWM over the worker's life (clear_refs unavailable)"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def host_rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def host_peak_bytes() -> int | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def trim_host_heap() -> None:
    """Return glibc's free heap pages to the kernel (no-op where the C library has no malloc_trim)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_host_peak() -> bool:
    """Restart the resident-set high-water mark at the current size; False where Linux does not let us."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class PhaseMemory:
    """The memory figures of one phase, as they go into its record's ``memory`` field."""

    phase: str
    host_start_bytes: int | None = None
    host_peak_bytes: int | None = None
    host_source: str = HOST_SOURCE
    device_peak_bytes: int | None = None
    device_source: str = ""
    device_pending: bool = False  # to be measured in a worker that runs only this phase

    def as_dict(self) -> dict[str, Any]:
        delta = None
        if self.host_peak_bytes is not None and self.host_start_bytes is not None:
            delta = self.host_peak_bytes - self.host_start_bytes
        return {"phase": self.phase, "host_start_bytes": self.host_start_bytes,
                "host_peak_bytes": self.host_peak_bytes, "host_delta_bytes": delta, "host_source": self.host_source,
                "device_peak_bytes": self.device_peak_bytes, "device_source": self.device_source,
                "device_pending": self.device_pending}


class phase_memory:
    """Context manager around one phase: resets the host and the runner's device peak on entry and
    reads both on exit into ``self.result``."""

    def __init__(self, runner, phase: str):
        self.runner, self.result = runner, PhaseMemory(phase)

    def __enter__(self) -> "phase_memory":
        self.device_reset = self.runner.reset_peak_memory()
        gc.collect()
        trim_host_heap()
        if not reset_host_peak():
            self.result.host_source = HOST_FALLBACK
        self.result.host_start_bytes = host_rss_bytes()
        return self

    def __exit__(self, *exc) -> None:
        self.result.host_peak_bytes = host_peak_bytes()
        device = self.runner.peak_memory_bytes()
        if device is None:
            self.result.device_source = "none apart from the host's (the device is the CPU)"
        elif self.device_reset:
            self.result.device_peak_bytes = device
            self.result.device_source = self.runner.device_memory_source
        else:
            self.result.device_pending = True
            self.result.device_source = (f"{self.runner.device_memory_source} cannot be reset: measured in a "
                                         "worker that runs only this phase (see the 'memory' records)")
