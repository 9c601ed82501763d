"""The CPU image, built and run for real: ``docker/cpu.Dockerfile`` built with podman on a base image
made here from Debian's packages (no registry is reachable), then ``snnbench run --suite shd --quick
--runners reference`` inside the container, offline, writing into a mounted directory.

What this machine needs to run containers stays in this test, not in the image: podman builds with
``--isolation chroot``, runs with the ``runc`` runtime, the ``cgroupfs`` cgroup manager and no
default ulimits (the default ``crun`` fails here on the hybrid cgroups and RLIMIT_NOFILE), and the
build reads pip's local wheel directories and CA bundle of this machine through read-only mounts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE_TAG = "localhost/snnbench-test-base:bookworm"
IMAGE_TAG = "localhost/snnbench-test:cpu"
BASE_PACKAGES = "python3,python3-venv,ca-certificates,passwd"
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""

pytestmark = pytest.mark.slow


def _missing_tools() -> list[str]:
    return [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]


def _run(cmd: list[str], env: dict[str, str], timeout: float, log: Path) -> subprocess.CompletedProcess:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, text=True)
    if proc.returncode:
        tail = log.read_text()[-4000:]
        pytest.fail(f"{cmd[0]} {cmd[1]} exited {proc.returncode}; end of {log}:\n{tail}")
    return proc


def _pip_settings() -> tuple[list[str], list[str]]:
    """Build args and read-only mounts that give the build this machine's pip sources: its local
    wheel directories and indexes (``file://`` paths) and its CA bundle."""
    out = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1].replace("-", "_")
        settings.setdefault(name, value.strip().strip("'\""))
    args, mounts = [], set()
    for name in ("find_links", "extra_index_url", "index_url"):
        value = os.environ.get(f"PIP_{name.upper()}") or settings.get(name)
        if not value:
            continue
        args.append(f"PIP_{name.upper()}={value}")
        for item in value.split():
            path = item.removeprefix("file://")
            if path.startswith("/") and Path(path).exists():  # a local directory: give it to the build
                mounts.add(str(Path(path).parent if path.endswith("/simple") else path))
    cert = os.environ.get("PIP_CERT") or settings.get("cert")
    if cert and Path(cert).is_file():
        args.append("PIP_CERT=/etc/ssl/snnbench-host-ca.crt")
        return args, [f"{m}:{m}:ro" for m in sorted(mounts)] + [f"{cert}:/etc/ssl/snnbench-host-ca.crt:ro"]
    return args, [f"{m}:{m}:ro" for m in sorted(mounts)]


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory) -> dict[str, str]:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages podman, runc, debootstrap; .ci/run installs them)")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="module")
def base_image(podman_env, tmp_path_factory) -> str:
    """A Debian bookworm image with Python, made by debootstrap and imported (once per machine)."""
    log = tmp_path_factory.mktemp("logs") / "base.log"
    have = subprocess.run(["podman", "image", "exists", BASE_TAG], env=podman_env).returncode == 0
    if not have:
        rootfs = tmp_path_factory.mktemp("rootfs")
        _run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs)],
             podman_env, 1200, log)
        archive = rootfs.parent / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        _run(["podman", "import", str(archive), BASE_TAG], podman_env, 600, log)
        shutil.rmtree(rootfs, ignore_errors=True)
        archive.unlink()
    return BASE_TAG


@pytest.fixture(scope="module")
def cpu_image(podman_env, base_image, tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("logs") / "build.log"
    args, mounts = _pip_settings()
    cmd = ["podman", "build", "--isolation", "chroot", "-f", "docker/cpu.Dockerfile", "-t", IMAGE_TAG,
           "--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", "TORCH_INDEX_URL="]
    for arg in args:
        cmd += ["--build-arg", arg]
    for mount in mounts:
        cmd += ["--volume", mount]
    _run(cmd + [str(REPO)], podman_env, 2400, log)
    return IMAGE_TAG


def test_the_base_image_runs_python_with_the_runtime_set_by_the_test(podman_env, base_image):
    out = subprocess.run(["podman", "run", "--rm", "--network", "none", base_image, "python3", "-c",
                          "import sys, venv; print(sys.version_info[:2])"],
                         env=podman_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "(3, 11)", out.stdout + out.stderr


def test_cpu_image_lists_every_cpu_runner_available(podman_env, cpu_image, tmp_path):
    out = subprocess.run(["podman", "run", "--rm", "--network", "none", cpu_image, "list", "runners"],
                         env=podman_env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("│") or line.startswith("|")]
    unavailable = [r for r in rows if " no " in r]
    assert rows and not unavailable, out.stdout


def test_cpu_image_runs_the_quick_shd_suite_into_a_mounted_directory(podman_env, cpu_image, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o777)  # the image runs as its own non-root user
    cmd = ["podman", "run", "--rm", "--network", "none", "--volume", f"{results}:/work/results", cpu_image,
           "run", "--suite", "shd", "--quick", "--cases", "shd-h128-b128", "--epochs", "1", "--runners", "reference",
           "--no-report"]
    out = subprocess.run(cmd, env=podman_env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    (run_dir,) = [p for p in results.iterdir() if p.name.startswith("shd-")]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["quick"] is True
    assert manifest["environment"]["packages"]["snnbench"]
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert records and {r["runner"] for r in records} == {"reference"}
    assert all(r["status"] == "ok" for r in records), [(r["metric"], r["status"], r.get("reason")) for r in records]
    metrics = {r["metric"] for r in records}
    assert {"compile_s", "epoch_s", "fwd_ms", "fwdbwd_ms", "test_acc", "job"} <= metrics, metrics
    accuracy = [r["accuracy"] for r in records if r.get("accuracy") is not None]
    assert accuracy and 0.0 <= accuracy[-1] <= 1.0
