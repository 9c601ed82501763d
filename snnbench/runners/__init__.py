"""Runner registry: every module in this package that defines a :class:`Runner` subclass with a
``name`` is an adapter. Adding a framework is adding one file here; nothing else changes.

Adapters import their framework lazily (inside methods), so discovering them is cheap and a missing
package only makes that runner unavailable. Adapters that live outside this package are loaded from
the modules named in ``$SNNBENCH_PLUGINS`` (comma-separated), in the parent and in every worker.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from ..errors import SnnbenchError
from .base import Runner, Support

_REGISTRY: dict[str, type[Runner]] | None = None


def _discover() -> dict[str, type[Runner]]:
    found: dict[str, type[Runner]] = {}
    names = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name != "base"]
    plugins = [p.strip() for p in os.environ.get("SNNBENCH_PLUGINS", "").split(",") if p.strip()]
    for name in names + plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if name in plugins:
                raise SnnbenchError(f"SNNBENCH_PLUGINS: cannot import {name} ({exc})") from None
            raise
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Runner) and obj is not Runner and obj.name:
                found.setdefault(obj.name, obj)
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != "reference", kv[0])))


def registry() -> dict[str, type[Runner]]:
    """Runner classes by name, the reference first."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _discover()
    return _REGISTRY


def get_runner_class(name: str) -> type[Runner]:
    runners = registry()
    if name not in runners:
        raise SnnbenchError(f"unknown runner {name!r} (known: {', '.join(runners)})")
    return runners[name]


def parse_runner_list(text: str | None, default: tuple[str, ...]) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, each checked against the registry; ``"all"`` -> every runner."""
    if not text:
        names = list(default)
    elif text.strip() == "all":
        names = list(registry())
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        get_runner_class(n)
    return names


__all__ = ["Runner", "Support", "registry", "get_runner_class", "parse_runner_list"]
