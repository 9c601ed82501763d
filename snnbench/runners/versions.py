"""One framework at several versions in one run (``snnbench run --versions 'snntorch==0.9.4,snntorch==1.0.0'``).

Each pinned version gets its own environment, made once and cached
(``$SNNBENCH_CACHE/versions/py<X.Y>-<dist>-<version>/``): the distribution alone, installed by ``uv``
from the package registry without its dependencies into a folder of its own (``uv pip install --target
DIR --no-deps``). It is an overlay: a worker running the version puts that folder first on its import
path before it builds the runner, so the framework comes from the overlay and everything else (torch,
JAX, numpy, snnbench) from the run's environment, the same for every version. Comparing two releases
of a framework on the same stack is what a maintainer asks; a version whose own requirements differ
from the stack's and cannot import on it is skipped with its error.

Every registered runner whose ``packages`` include a pinned distribution gets one *variant* per version,
named ``<runner>@<version>`` (``snntorch@0.9.4``): the runner's own class with the overlay activated when
it is made (before ``supports`` or ``build`` can import the framework). The parent prepares the overlays and hands them to its workers in ``$SNNBENCH_VERSIONS``
(JSON), from which every process's registry builds the same variants.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import SnnbenchError
from .base import Runner, Support

VERSIONS_ENV = "SNNBENCH_VERSIONS"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def parse(text: str) -> list[tuple[str, str]]:
    """``'snntorch==0.9.4,snntorch==1.0.0'`` -> ``[('snntorch', '0.9.4'), ('snntorch', '1.0.0')]``."""
    pins = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        m = _PIN.match(item)
        if not m:
            raise SnnbenchError(f"--versions: {item!r} is not a pinned requirement NAME==VERSION (e.g. snntorch==0.9.4)")
        pin = (m.group(1).lower().replace("_", "-"), m.group(2))
        if pin in pins:
            raise SnnbenchError(f"--versions: {item} is named twice")
        pins.append(pin)
    if not pins:
        raise SnnbenchError("--versions names no version")
    return pins


def overlay_dir(dist: str, version: str) -> Path:
    from ..data.shd import cache_dir

    return cache_dir() / "versions" / f"py{sys.version_info[0]}.{sys.version_info[1]}-{dist}-{version}"


def _uv() -> list[str]:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if Path(found).exists():
        return [found]
    raise SnnbenchError("--versions needs uv (pip install uv), which makes each version's environment")


def _tail(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-n:]) or "no output"


def ensure(dist: str, version: str, log=lambda text: None) -> tuple[Path, str]:
    """The overlay for ``dist==version`` (made once, then reused); returns (folder, error), the error
    being the installer's or the import's message when the version cannot be had here."""
    target = overlay_dir(dist, version)
    if (target / ".complete").exists():
        return target, (target / ".complete").read_text().strip()
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    log(f"making the environment of {dist}=={version} with uv (once; cached in {target})")
    p = subprocess.run([*_uv(), "pip", "install", "--quiet", "--no-deps", "--target", str(scratch),
                        "--python", sys.executable, f"{dist}=={version}"], capture_output=True, text=True, timeout=1800)
    error = "" if p.returncode == 0 else f"{dist}=={version} cannot be installed: {_tail(p.stderr or p.stdout)}"
    if not error:
        error = _import_error(dist, version, scratch)
    if error and "cannot be installed" in error:  # nothing to keep: try again next time
        shutil.rmtree(scratch, ignore_errors=True)
        return target, error
    shutil.rmtree(target, ignore_errors=True)
    os.replace(scratch, target)
    (target / ".complete").write_text(error + "\n")
    return target, error


def _import_error(dist: str, version: str, folder: Path) -> str:
    """'' when ``dist`` imports from ``folder`` at ``version`` on this environment, else why not."""
    probe = ("import importlib, importlib.metadata as m, sys\n"
             f"d = m.distribution({dist!r})\n"
             "top = (d.read_text('top_level.txt') or '').split() or [d.metadata['Name'].replace('-', '_')]\n"
             "importlib.import_module(top[0])\n"
             "print(d.version)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PIP_NO_INDEX": "1"}
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        return f"{dist}=={version} does not import on this environment: {_tail(p.stderr, 1)}"
    got = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "?"
    return "" if got == version else f"{dist}=={version} imports as version {got}"


def prepare(pins: list[tuple[str, str]], log=lambda text: None) -> None:
    """Make (or find) every pinned version's overlay and hand them to this process's registry and to
    its workers (``$SNNBENCH_VERSIONS``)."""
    entries = []
    for dist, version in pins:
        folder, error = ensure(dist, version, log)
        entries.append({"dist": dist, "version": version, "path": str(folder), "error": error})
    os.environ[VERSIONS_ENV] = json.dumps(entries)
    from . import reset_registry

    reset_registry()


def activate(folder: str, dist: str) -> None:
    """Put a version's overlay first on this process's import path (before the framework is imported)."""
    import importlib

    if folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()
    top = dist.replace("-", "_")
    loaded = sys.modules.get(top)
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(folder):
        raise RuntimeError(f"{dist} was already imported from {loaded.__file__} in this process; a version "
                           "overlay must come first")


def _variant(base: type[Runner], entry: dict) -> type[Runner]:
    """``base`` at one pinned version of one of its packages."""
    folder, dist, error = entry["path"], entry["dist"], entry["error"]

    def available(cls) -> Support:
        # Not the base's check, which may import the framework (from the run's environment, before
        # build could put the overlay first): the overlay was installed and imported when it was made.
        return Support.no(error) if error else Support.yes()

    def __init__(self, *args, **kwargs):
        # first: supports(), build() and the rest may import the framework, which must be this version's
        activate(folder, dist)
        base.__init__(self, *args, **kwargs)

    attrs = {"name": f"{base.name}@{entry['version']}", "available": classmethod(available), "__init__": __init__,
             "pinned": (dist, entry["version"]), "__doc__": f"{base.name} with {dist}=={entry['version']}",
             "eager_twin": f"{base.eager_twin}@{entry['version']}" if base.eager_twin else ""}
    return type(f"{base.__name__}_{dist}_{entry['version']}".replace(".", "_").replace("-", "_"), (base,), attrs)


def variants(runners: dict[str, type[Runner]]) -> dict[str, type[Runner]]:
    """The variants ``$SNNBENCH_VERSIONS`` asks for, of every runner that uses a pinned distribution."""
    raw = os.environ.get(VERSIONS_ENV)
    if not raw:
        return {}
    out = {}
    for entry in json.loads(raw):
        for cls in runners.values():
            if entry["dist"] in {p.lower().replace("_", "-") for p in cls.packages} and "@" not in cls.name:
                v = _variant(cls, entry)
                out[v.name] = v
    return out


def expand(names: list[str], pins: list[tuple[str, str]], runners: dict[str, type[Runner]]) -> list[str]:
    """Each named runner that uses a pinned distribution -> its variants, one per version."""
    out = []
    for name in names:
        cls = runners[name]
        uses = {p.lower().replace("_", "-") for p in cls.packages}
        pinned = [f"{name}@{version}" for dist, version in pins if dist in uses and "@" not in name]
        out += pinned or [name]
    if out == names and not any("@" in n for n in names):  # (a resumed run's names are expanded already)
        raise SnnbenchError(f"--versions: none of the runners ({', '.join(names)}) uses "
                            f"{', '.join(sorted({d for d, _ in pins}))}")
    return list(dict.fromkeys(out))
