"""Downloading the real SHD and N-MNIST, with tonic's own file names, URLs and checksums.

tonic knows where each dataset lives (``tonic.datasets.SHD.base_url`` + ``train_zip``,
``tonic.datasets.NMNIST.train_url``), what the archives are called and their md5 sums; snnbench reads
all three from tonic's dataset classes and lays the files out as tonic does (``DIR/SHD/shd_train.h5``
beside ``shd_train.h5.zip``; ``DIR/NMNIST/Train/<digit>/*.bin`` beside ``train.zip``), so that
``tonic.datasets.SHD(DIR)`` finds them too. What snnbench adds to tonic's ``download_url``:

* a download goes to a scratch folder (``DIR/<name>/.fetch-<archive>/``), is verified (md5, then the
  archive's own CRCs on extraction, then the extracted files' structure) and only then moved into
  place, the archive last: a cut, corrupt or foreign download never becomes the dataset, and the
  archive's presence marks a split as complete, so a second fetch downloads nothing;
* a reachability probe with a short connect time-out first (:data:`CONNECT_TIMEOUT_S`), so that an
  offline machine is told so in seconds (:class:`Unreachable`), and a read time-out on a server that
  accepts and never answers (``$SNNBENCH_FETCH_TIMEOUT``, default :data:`READ_TIMEOUT_S`);
* ``mirror``: a base URL serving the archives under tonic's file names (a lab's copy).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import SnnbenchError

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
OFFLINE_ENV = "SNNBENCH_OFFLINE"
MIRROR_ENV = "SNNBENCH_DATA_MIRROR"
CHUNK = 1 << 20


class Unreachable(SnnbenchError):
    """The server could not be reached at all (no DNS, no route, refused, connect time-out)."""


@dataclass(frozen=True)
class Archive:
    """One downloadable split, as tonic names it."""

    filename: str  # tonic's file name; also its name under a mirror
    url: str  # tonic's URL
    md5: str  # tonic's checksum
    member: str  # what it extracts to, relative to the dataset folder: 'shd_train.h5', 'Train'


@dataclass(frozen=True)
class RemoteDataset:
    name: str  # tonic's class name, which is also its folder: 'SHD', 'NMNIST'
    archives: tuple[Archive, ...]


def remote(dataset: str) -> RemoteDataset:
    """tonic's description of ``dataset`` ('shd' | 'nmnist'): file names, URLs, md5 sums."""
    from tonic.datasets import NMNIST, SHD

    if dataset == "shd":
        return RemoteDataset("SHD", tuple(
            Archive(name, SHD.base_url + name, md5, name[: -len(".zip")])
            for name, md5 in ((SHD.train_zip, SHD.train_md5), (SHD.test_zip, SHD.test_md5))))
    if dataset == "nmnist":
        return RemoteDataset("NMNIST", (
            Archive(NMNIST.train_filename, NMNIST.train_url, NMNIST.train_md5, NMNIST.train_folder),
            Archive(NMNIST.test_filename, NMNIST.test_url, NMNIST.test_md5, NMNIST.test_folder)))
    raise SnnbenchError(f"no download for dataset {dataset!r} (shd or nmnist)")


def offline_requested() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_fetched(dataset: str, out: Path) -> bool:
    """Every split of ``dataset`` was fetched to the end into ``out`` (archive and its contents)."""
    spec = remote(dataset)
    folder = Path(out) / spec.name
    return all((folder / a.filename).is_file() and (folder / a.member).exists() for a in spec.archives)


def fetch(dataset: str, out: Path, *, mirror: str | None = None, verify: bool = True,
          log=lambda text: print(text, file=sys.stderr)) -> Path:
    """Download ``dataset`` into ``out/<NAME>/`` unless it is already complete; returns ``out``.

    Raises :class:`Unreachable` when the server cannot be reached, :class:`SnnbenchError` (one line)
    on an HTTP error, a time-out, a checksum mismatch or a truncated archive; in every case the
    dataset folder holds nothing new that a run would take for the dataset."""
    spec = remote(dataset)
    folder = Path(out) / spec.name
    if is_fetched(dataset, out):
        log(f"{spec.name} is already complete in {folder}; nothing to download")
        return Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for archive in spec.archives:
        if (folder / archive.filename).is_file() and (folder / archive.member).exists():
            continue
        url = mirror.rstrip("/") + "/" + archive.filename if mirror else archive.url
        _fetch_archive(dataset, archive, url, folder, verify, log)
    return Path(out)


def _fetch_archive(dataset: str, archive: Archive, url: str, folder: Path, verify: bool, log) -> None:
    scratch = folder / f".fetch-{archive.filename}"
    shutil.rmtree(scratch, ignore_errors=True)  # a killed fetch's leftovers
    scratch.mkdir()
    try:
        download = scratch / archive.filename
        _probe(url)  # an offline machine is told so before anything says 'downloading'
        log(f"downloading {url}")
        _download(url, download)
        if verify:
            got = _md5(download)
            if got != archive.md5:
                raise SnnbenchError(f"{url}: checksum mismatch (md5 {got}, tonic expects {archive.md5}); a private "
                                    "mirror whose files differ needs --no-verify")
        extracted = scratch / "extracted"
        _extract(download, extracted, url)
        member = extracted / archive.member
        if not member.exists():
            raise SnnbenchError(f"{url}: the archive holds no '{archive.member}' (not tonic's {archive.filename})")
        _check_member(dataset, member, url)
        target = folder / archive.member
        if target.exists():  # a split moved in by a fetch that was killed before its archive followed
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(member, target)
        os.replace(download, folder / archive.filename)  # last: the split is complete
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _probe(url: str) -> None:
    """Connect to the server (or the proxy that would carry ``url``) within the connect time-out."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else parts
    host = target.hostname
    if not host:
        raise SnnbenchError(f"{url}: not a download URL")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except socket.gaierror:
        raise Unreachable(f"cannot resolve {host} (no DNS: offline?)") from None
    except (TimeoutError, socket.timeout):
        raise Unreachable(f"no connection to {host}:{port} within {CONNECT_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise Unreachable(f"cannot connect to {host}:{port} ({exc.strerror or exc})") from None


def _read_timeout() -> float:
    raw = os.environ.get("SNNBENCH_FETCH_TIMEOUT")
    try:
        value = float(raw) if raw else READ_TIMEOUT_S
    except ValueError:
        raise SnnbenchError(f"SNNBENCH_FETCH_TIMEOUT={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise SnnbenchError(f"SNNBENCH_FETCH_TIMEOUT={raw!r} must be a positive number of seconds")
    return value


def _download(url: str, dest: Path) -> None:
    """``url`` -> ``dest`` with a progress bar (on a terminal); every failure one line."""
    from tqdm.auto import tqdm  # tonic's own progress bar

    timeout = _read_timeout()
    request = urllib.request.Request(url, headers={"User-Agent": "snnbench (tonic datasets)"})
    written = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as fh, \
                tqdm(total=response.length, unit="B", unit_scale=True, desc=dest.name, disable=None,
                     file=sys.stderr, leave=False) as bar:
            total = response.length
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise SnnbenchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise SnnbenchError(f"{url}: no answer within {timeout:g} s") from None
        raise SnnbenchError(f"{url}: {getattr(reason, 'strerror', None) or reason}") from None
    except (TimeoutError, socket.timeout):
        raise SnnbenchError(f"{url}: no answer within {timeout:g} s (after {written} bytes)") from None
    except http.client.IncompleteRead as exc:
        raise SnnbenchError(f"{url}: the download was cut short ({written + len(exc.partial)} bytes, "
                            f"{exc.expected} more expected)") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise SnnbenchError(f"{url}: the connection failed ({type(exc).__name__}: {exc})") from None
    if total is not None and written != total:
        raise SnnbenchError(f"{url}: the download was cut short ({written} of {total} bytes)")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive: Path, to: Path, url: str) -> None:
    """Unzip with tonic's extractor; zip's CRCs catch a truncated or corrupt archive."""
    from tonic.download_utils import extract_archive

    try:
        extract_archive(str(archive), str(to))
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise SnnbenchError(f"{url}: the archive is truncated or corrupt ({exc})") from None


def _check_member(dataset: str, member: Path, url: str) -> None:
    """What the archive held has the dataset's structure (an SHD HDF5 file; N-MNIST ``.bin`` files)."""
    if dataset == "shd":
        from .shd import describe_source

        describe_source(member)  # raises one line for a foreign or cut HDF5 file
    elif next(member.glob("*/*.bin"), None) is None:
        raise SnnbenchError(f"{url}: the archive's {member.name}/ holds no <digit>/*.bin files")
