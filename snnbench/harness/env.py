"""The environment a run was measured in, captured into every run's manifest."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: what every environment records; each runner adds its own (``Runner.packages``, :func:`packages`)
CORE_PACKAGES = ("snnbench", "numpy", "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "torch", "tonic",
                 "h5py", "nir")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SIMD_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx", "asimd", "sve")


def cpu_id(cpuinfo: str | None = None) -> dict[str, str] | None:
    """The first CPU's family, model and SIMD extensions from ``/proc/cpuinfo`` (its text may be passed):
    two hosts sold under one model name ("AMD EPYC") can differ by a CPU generation and by AVX-512,
    which moves every kernel's speed. None where the file is missing."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block only
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    simd = sorted({f for f in flags if f.startswith(SIMD_PREFIXES)})
    return {"family": fields.get("cpu family", "?"), "model": fields.get("model", "?"), "simd": " ".join(simd)}


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _governor() -> str | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return p.read_text().strip()
    except OSError:
        return None


def _gpus() -> list[dict[str, str]]:
    if not shutil.which("nvidia-smi"):
        return []
    fields = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [dict(zip(fields.split(","), (v.strip() for v in line.split(",")))) for line in out.strip().splitlines()]


def accelerator() -> str:
    """The best accelerator this machine has, without importing a framework (a parent process must
    not take a GPU's memory): 'gpu' where the NVIDIA driver reports a GPU (``nvidia-smi``), 'tpu'
    where the kernel exposes TPU chips (``/dev/accel*``, or a TPU VM's environment), else 'cpu'."""
    if _gpus():
        return "gpu"
    if any(Path("/dev").glob("accel[0-9]*")) or os.environ.get("TPU_ACCELERATOR_TYPE"):
        return "tpu"
    return "cpu"


def resolve_device(requested: str | None) -> str | None:
    """``requested`` with 'auto' replaced by :func:`accelerator` (None stays None: the cases decide)."""
    return accelerator() if requested == "auto" else requested


@functools.lru_cache(maxsize=None)
def device_label(requested: str) -> str:
    """How records name a device before a runner resolves it: ``cpu``, or ``gpu: <name>`` when
    ``requested`` is 'gpu' or 'auto' and the machine has an NVIDIA GPU; never 'auto'."""
    if requested in ("gpu", "auto"):
        gpus = _gpus()
        if gpus:
            return f"gpu: {gpus[0].get('name', 'unknown')}"
        return "cpu" if requested == "auto" else "gpu"
    return requested


def _git() -> dict[str, str | bool | None]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def packages() -> tuple[str, ...]:
    """The distributions a run records: the core ones and every registered runner's (plugins too)."""
    from ..runners import registry

    names = dict.fromkeys(CORE_PACKAGES)
    for cls in registry().values():
        names.update(dict.fromkeys(cls.packages))
    return tuple(names)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in packages():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def capture() -> dict:
    """Machine, software and git facts (cheap: no framework is imported)."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "cpu_governor": _governor(),
        "gpus": _gpus(),
        "packages": package_versions(),
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "git": _git(),
    }
