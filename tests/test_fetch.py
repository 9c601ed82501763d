"""Downloading the real datasets, against a loopback server serving archives in the real format.

The archives are what tonic downloads (SHD: ``shd_{train,test}.h5.zip`` holding one HDF5 file each;
N-MNIST: ``train.zip`` / ``test.zip`` holding ``Train/<digit>/*.bin`` / ``Test/...``), made from
``make-data`` output. The server (127.0.0.1, started and stopped here) can also answer 404, cut a
download short, or accept and never answer.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from .test_cli import snnbench, tiny_suite  # noqa: F401 (a fixture)


def _zip_tree(root: Path, members: list[Path], out: Path) -> bytes:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path in members:
            for f in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
                z.write(f, f.relative_to(root))
    return out.read_bytes()


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, bytes]:
    """tonic's archive names -> bytes, for a small synthetic SHD and N-MNIST."""
    from snnbench.data.synthetic_nmnist import write_synthetic_nmnist
    from snnbench.data.synthetic_shd import write_synthetic_shd

    tmp = tmp_path_factory.mktemp("archives")
    shd = write_synthetic_shd(tmp / "shd", n_train=128, n_test=64, seed=1) / "SHD"
    import h5py

    for split in ("train", "test"):  # as the real files: no synthetic marker
        with h5py.File(shd / f"shd_{split}.h5", "a") as f:
            del f.attrs["snnbench_synthetic"]
    nmnist = write_synthetic_nmnist(tmp / "nmnist", n_train=40, n_test=20, seed=2, workers=1) / "NMNIST"
    return {
        "shd_train.h5.zip": _zip_tree(shd, [shd / "shd_train.h5"], tmp / "a.zip"),
        "shd_test.h5.zip": _zip_tree(shd, [shd / "shd_test.h5"], tmp / "b.zip"),
        "train.zip": _zip_tree(nmnist, [nmnist / "Train"], tmp / "c.zip"),
        "test.zip": _zip_tree(nmnist, [nmnist / "Test"], tmp / "d.zip"),
    }


class _Server:
    """Serves ``files`` under ``/ok/``; ``/cut/`` announces the full length and sends half;
    ``/404/`` answers 404; ``/hang/`` accepts and never answers (until stopped)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests, self.stop_event = files, [], threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                mode, _, name = self.path.strip("/").partition("/")
                body = server.files.get(name)
                if mode == "hang":
                    server.stop_event.wait(30)
                    return
                if mode == "404" or body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if mode == "ok" else body[: len(body) // 2])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(archives):
    s = _Server(archives)
    yield s
    s.close()


def _leftovers(out: Path) -> list[str]:
    """What a failed fetch left that a later run could take for (part of) a dataset."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in (".h5", ".bin", ".zip")
                  or p.name.startswith(".fetch-"))


def test_fetch_through_a_mirror_then_run_on_it(tmp_path, server, tiny_suite):  # noqa: F811
    out = tmp_path / "data"
    p = snnbench("fetch-data", "shd", "--mirror", server.url + "/ok", "--no-verify", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert (out / "SHD" / "shd_train.h5").is_file() and (out / "SHD" / "shd_test.h5.zip").is_file()
    assert "128 train / 64 test samples" in p.stdout and f"--data-dir {out}" in p.stdout
    assert sorted(server.requests) == ["/ok/shd_test.h5.zip", "/ok/shd_train.h5.zip"]
    assert not list((out / "SHD").glob(".fetch-*"))
    # a second fetch of a complete set downloads nothing
    p = snnbench("fetch-data", "shd", "--mirror", server.url + "/ok", "--no-verify", "--out", str(out))
    assert p.returncode == 0 and "nothing to download" in p.stderr and len(server.requests) == 2
    # tonic itself reads what was fetched (its own existence check: the archive beside the .h5)
    import tonic

    assert len(tonic.datasets.SHD(str(out), train=False)) == 64
    # and a run trains on it: real (not synthetic) as far as snnbench can tell
    runs = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(out), "--out", str(runs),
                 "--no-report")
    assert p.returncode == 0, p.stderr + p.stdout
    assert f"data: SHD from {out}" in p.stdout and "Synthetic data" not in p.stdout
    (run_dir,) = runs.iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["synthetic_data"] is False


def test_verified_fetch_uses_tonics_checksums(tmp_path, server, archives, monkeypatch):
    """With verification on, the md5 sums are tonic's own: patched here to the served files' sums,
    the fetch passes; tonic's real sums (next test) refuse these files."""
    import tonic

    from snnbench.data.fetch import fetch

    for attr, name in (("train_md5", "shd_train.h5.zip"), ("test_md5", "shd_test.h5.zip")):
        monkeypatch.setattr(tonic.datasets.SHD, attr, hashlib.md5(archives[name]).hexdigest())
    fetch("shd", tmp_path, mirror=server.url + "/ok", log=lambda text: None)
    assert (tmp_path / "SHD" / "shd_test.h5").is_file()


def test_nmnist_through_a_mirror(tmp_path, server):
    from snnbench.data import FORMATS

    p = snnbench("fetch-data", "nmnist", "--mirror", server.url + "/ok", "--no-verify", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    info = FORMATS["nmnist"].describe(tmp_path)
    assert (info["samples"], info["test_samples"]) == (40, 20)
    assert (tmp_path / "NMNIST" / "train.zip").is_file() and sorted(server.requests) == ["/ok/test.zip", "/ok/train.zip"]


@pytest.mark.parametrize("mode, flags, message", [
    ("ok", [], "checksum mismatch (md5 "),  # tonic's md5 sums are not these files'
    ("cut", ["--no-verify"], "was cut short"),
    ("404", [], "HTTP 404"),
])
def test_a_bad_download_is_one_line_and_leaves_nothing(tmp_path, server, mode, flags, message):
    out = tmp_path / "data"
    p = snnbench("fetch-data", "shd", "--mirror", f"{server.url}/{mode}", "--out", str(out), *flags)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("snnbench: error:")]
    assert len(errors) == 1 and "Traceback" not in p.stderr
    assert _leftovers(out) == []


def test_a_truncated_archive_served_whole_is_refused(tmp_path, archives):
    """A cut archive that the server serves as if complete: the zip's own structure catches it."""
    files = {name: body[: len(body) * 2 // 3] for name, body in archives.items()}
    server = _Server(files)
    try:
        p = snnbench("fetch-data", "shd", "--mirror", server.url + "/ok", "--no-verify", "--out", str(tmp_path))
    finally:
        server.close()
    assert p.returncode == 2 and "truncated or corrupt" in p.stderr, p.stderr
    assert _leftovers(tmp_path) == []


def test_a_server_that_never_answers_times_out(tmp_path, server):
    start = time.monotonic()
    p = snnbench("fetch-data", "shd", "--mirror", server.url + "/hang", "--out", str(tmp_path),
                 env_extra={"SNNBENCH_FETCH_TIMEOUT": "1"})
    assert p.returncode == 2 and "no answer within 1 s" in p.stderr, p.stderr
    assert time.monotonic() - start < 20 and _leftovers(tmp_path) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_data_offline_is_one_line(tmp_path):
    p = snnbench("fetch-data", "shd", "--mirror", f"http://127.0.0.1:{_closed_port()}", "--out", str(tmp_path))
    assert p.returncode == 2 and "cannot connect to 127.0.0.1" in p.stderr and "--mirror URL" in p.stderr
    p = snnbench("fetch-data", "shd", "--mirror", "ftp://example.invalid/x", "--out", str(tmp_path))
    assert p.returncode == 2 and "is not an http(s) URL" in p.stderr


@pytest.mark.parametrize("how", ["refused", "no-dns", "flag", "env"])
def test_run_offline_falls_back_to_synthetic_and_says_why(tmp_path, tiny_suite, how):  # noqa: F811
    env = {"SNNBENCH_OFFLINE": "", "SNNBENCH_DATA_MIRROR": {
        "refused": f"http://127.0.0.1:{_closed_port()}", "no-dns": "http://snnbench-data.invalid"}.get(how, "")}
    if how == "env":
        env["SNNBENCH_OFFLINE"] = "1"
    flags = ["--offline"] if how == "flag" else []
    start = time.monotonic()
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--out", str(tmp_path / "r"), "--no-report",
                 "--runners", "reference", "--epochs", "1", *flags, env_extra=env)
    assert p.returncode == 0, p.stderr + p.stdout
    why = {"refused": "offline: cannot connect to 127.0.0.1", "no-dns": "offline: cannot resolve snnbench-data.invalid",
           "flag": "offline: --offline or $SNNBENCH_OFFLINE", "env": "offline: --offline or $SNNBENCH_OFFLINE"}[how]
    (data_line,) = [line for line in p.stdout.splitlines() if line.startswith("data: ")]
    assert "synthetic SHD" in data_line and why in data_line and "snnbench fetch-data shd" in data_line
    assert "Synthetic data:" in p.stdout  # under the results table, plainly
    assert time.monotonic() - start < 300


def test_run_fetches_on_first_use_into_the_default_data_dir(tmp_path, server, archives, monkeypatch):
    """No --data-dir, no real set in the cache, the network answers: the real set is downloaded
    (verified against tonic's sums, patched to the served files') and used."""
    import tonic

    from snnbench.data import default_data_dir, resolve_source

    for attr, name in (("train_md5", "shd_train.h5.zip"), ("test_md5", "shd_test.h5.zip")):
        monkeypatch.setattr(tonic.datasets.SHD, attr, hashlib.md5(archives[name]).hexdigest())
    monkeypatch.setenv("SNNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SNNBENCH_OFFLINE")
    monkeypatch.setenv("SNNBENCH_DATA_MIRROR", server.url + "/ok")
    source = resolve_source("shd", None, None, None)
    assert not source.synthetic and source.root == default_data_dir() and source.train_samples == 128
    assert resolve_source("shd", None, None, None).root == source.root and len(server.requests) == 2
    shutil.rmtree(tmp_path / "cache")
    # the server answers but the download fails: an error, not a silent synthetic fallback
    monkeypatch.setenv("SNNBENCH_DATA_MIRROR", server.url + "/404")
    from snnbench.errors import SnnbenchError

    with pytest.raises(SnnbenchError, match="HTTP 404"):
        resolve_source("shd", None, None, None)
