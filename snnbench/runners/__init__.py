"""Runner registry: every module in this package that defines a :class:`Runner` subclass with a
``name`` is an adapter. Adding a framework is adding one file here; nothing else changes.

Adapters import their framework lazily (inside methods), so discovering them is cheap and a missing
package only makes that runner unavailable. Adapters that live outside this package come from other
installed packages through the ``snnbench.runners`` entry-point group (``[project.entry-points.
"snnbench.runners"] mine = "my_package.snnbench_runner"``: a module, or a Runner class as
``module:Class``), or from the modules named in ``$SNNBENCH_PLUGINS`` (comma-separated, for tests);
both are loaded in the parent and in every worker (each worker discovers the registry afresh). A
plugin that fails to import costs one warning line and becomes an unavailable runner whose reason is
the error, so a run that asks for it records it as skipped and goes on.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from importlib import metadata

from ..errors import SnnbenchError
from .base import Runner, Support

_REGISTRY: dict[str, type[Runner]] | None = None


ENTRY_POINT_GROUP = "snnbench.runners"


def _runner_classes(obj) -> list[type[Runner]]:
    """The named Runner subclasses in a module (or ``obj`` itself, when it is one)."""
    items = [obj] if isinstance(obj, type) else list(vars(obj).values())
    return [o for o in items if isinstance(o, type) and issubclass(o, Runner) and o is not Runner and o.name]


def _broken_plugin(name: str, source: str, exc: BaseException) -> type[Runner]:
    """A stand-in for a plugin that cannot be imported: listed, never available, its reason the error."""
    reason = f"plugin {source} failed to import: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    class BrokenPlugin(Runner):
        framework = "plugin"

        @classmethod
        def available(cls) -> Support:
            return Support.no(reason)

    BrokenPlugin.name = name
    for method in BrokenPlugin.__abstractmethods__:  # never built: available() says no first
        setattr(BrokenPlugin, method, lambda *a, **k: None)
    BrokenPlugin.__abstractmethods__ = frozenset()
    return BrokenPlugin


def _plugins() -> list[tuple[str, str, object]]:
    """(name, where it comes from, loader) of every plugin: entry points, then $SNNBENCH_PLUGINS."""
    found = [(ep.name, f"{ep.value} (entry point {ep.name!r} of {ep.dist.name if ep.dist else '?'})", ep.load)
             for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    for module in (p.strip() for p in os.environ.get("SNNBENCH_PLUGINS", "").split(",") if p.strip()):
        found.append((module.rsplit(".", 1)[-1], f"{module} ($SNNBENCH_PLUGINS)",
                      lambda module=module: importlib.import_module(module)))
    return found


def _discover() -> dict[str, type[Runner]]:
    found: dict[str, type[Runner]] = {}
    for m in pkgutil.iter_modules(__path__):
        if m.name != "base":
            for cls in _runner_classes(importlib.import_module(f"{__name__}.{m.name}")):
                found.setdefault(cls.name, cls)
    for name, source, load in _plugins():
        try:
            classes = _runner_classes(load())
        except Exception as exc:  # a plugin's own bug must not take the registry down
            print(f"snnbench: warning: runner plugin {source} failed to import ({type(exc).__name__}: {exc}); "
                  "it is skipped", file=sys.stderr)
            classes = [_broken_plugin(name, source, exc)]
        for cls in classes:
            found.setdefault(cls.name, cls)
    from .versions import variants  # pinned versions of some runners' frameworks ($SNNBENCH_VERSIONS)

    found.update(variants(found))
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != "reference", kv[0])))


def registry() -> dict[str, type[Runner]]:
    """Runner classes by name, the reference first."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _discover()
    return _REGISTRY


def reset_registry() -> None:
    """Discover again on next use (after ``$SNNBENCH_VERSIONS`` or the plugins changed)."""
    global _REGISTRY
    _REGISTRY = None


def get_runner_class(name: str) -> type[Runner]:
    runners = registry()
    if name not in runners:
        raise SnnbenchError(f"unknown runner {name!r} (known: {', '.join(runners)})")
    return runners[name]


def parse_runner_list(text: str | None, default: tuple[str, ...]) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, each checked against the registry; ``"all"`` (given, or as a suite's
    ``runners: all``) -> every runner in the registry, plugins included."""
    if not text:
        names = list(registry()) if tuple(default) == ("all",) else list(default)
    elif text.strip() == "all":
        names = list(registry())
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        get_runner_class(n)
    return names


__all__ = ["Runner", "Support", "registry", "reset_registry", "get_runner_class", "parse_runner_list"]
