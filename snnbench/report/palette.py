"""One colour per runner, the same in every plot of a page; a compiled twin (``<runner>-compile``)
drawn in its eager twin's colour, hatched (bars) or dashed (lines)."""

from __future__ import annotations

import colorsys

def _declared() -> tuple[dict[str, str], dict[str, str]]:
    """(runner -> its declared colour, compiled runner -> its eager twin), from the registry: each
    runner states both in its own file (``Runner.colour``, ``Runner.eager_twin``)."""
    from ..runners import registry

    runners = registry()  # a class's own declaration only: a subclass under another name is another runner
    return ({n: vars(c)["colour"] for n, c in runners.items() if vars(c).get("colour")},
            {n: vars(c)["eager_twin"] for n, c in runners.items() if vars(c).get("eager_twin")})


#: the registered runners' own colours (well apart in hue and lightness; none too pale on white), and
#: which runner is which one's compiled twin
KNOWN, TWINS = _declared()
#: for runners the table above does not name, handed out in sorted-name order
EXTRA = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
         "#636363"]
#: for what is not a runner (a network's layers): shades of one blue, dark to light
SHADES = ["#08519c", "#4292c6", "#9ecae1", "#c6dbef"]
TWIN_SUFFIX = "-compile"

_assigned: dict[str, str] = {}


def eager_twin(runner: str) -> str | None:
    """``torch`` for ``torch-compile`` (as the runner declares it, or by the ``-compile`` naming rule
    for runners not in the registry; ``snntorch@0.9.4`` for ``snntorch-compile@0.9.4``); None for a
    runner that is not a compiled twin."""
    if "@" in runner:
        base, version = runner.split("@", 1)
        twin = eager_twin(base)
        return f"{twin}@{version}" if twin else None
    if runner in TWINS:
        return TWINS[runner]
    if runner.endswith(TWIN_SUFFIX) and len(runner) > len(TWIN_SUFFIX):
        return runner[: -len(TWIN_SUFFIX)]
    return None


def _golden(i: int) -> str:
    """The i-th colour past :data:`EXTRA`: hues a golden angle apart, mid lightness."""
    r, g, b = colorsys.hls_to_rgb((0.13 + 0.618034 * i) % 1.0, 0.42, 0.65)
    return f"#{round(255 * r):02x}{round(255 * g):02x}{round(255 * b):02x}"


def _shade(hex_colour: str, k: int, n: int) -> str:
    """The ``k``-th of ``n`` shades of a colour, from darker (k 0) to lighter, for a runner's versions."""
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, lightness, s = colorsys.rgb_to_hls(r, g, b)
    lightness = min(0.78, max(0.22, lightness + (k - (n - 1) / 2) * 0.5 / max(n, 2)))
    r, g, b = colorsys.hls_to_rgb(h, lightness, s)
    return f"#{round(255 * r):02x}{round(255 * g):02x}{round(255 * b):02x}"


def _version_key(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version), "")
    except InvalidVersion:
        return (1, None, version)


def register(runners) -> None:
    """Give every runner of a page that :data:`KNOWN` does not name its own colour, deterministically:
    the unknown base names (a compiled twin counts as its eager twin) sorted, then handed
    :data:`EXTRA`'s colours in order, then golden-angle hues. A runner at pinned versions
    (``<runner>@<version>``) gets shades of its runner's colour, oldest darkest. Call once per page."""
    _assigned.clear()
    runners = [str(r) for r in runners]
    bases = sorted({eager_twin(r.split("@", 1)[0]) or r.split("@", 1)[0] for r in runners} - set(KNOWN))
    for i, name in enumerate(bases):
        _assigned[name] = EXTRA[i] if i < len(EXTRA) else _golden(i - len(EXTRA))
    versions: dict[str, list[str]] = {}
    for r in runners:
        if "@" in r and eager_twin(r) is None:  # a compiled twin's version takes its eager twin's shade
            versions.setdefault(r.split("@", 1)[0], []).append(r.split("@", 1)[1])
    for base, found in versions.items():
        ordered = sorted(set(found), key=_version_key)
        for k, version in enumerate(ordered):
            _assigned[f"{base}@{version}"] = _shade(colour(base), k, len(ordered))


def colour(runner: str) -> str:
    """The runner's colour: its own, or its eager twin's for a compiled twin."""
    if str(runner) in _assigned:  # a version's shade, or a runner register() named
        return _assigned[str(runner)]
    base = eager_twin(str(runner)) or str(runner)
    if base in KNOWN:
        return KNOWN[base]
    if base not in _assigned:  # drawn before register() named it: still stable for this process
        _assigned[base] = (EXTRA + [_golden(i) for i in range(64)])[len(_assigned) % (len(EXTRA) + 64)]
    return _assigned[base]


def is_twin(runner: str) -> bool:
    """Whether ``runner`` is a compiled twin (``<eager>-compile``)."""
    return eager_twin(str(runner)) is not None


def linestyle(runner: str) -> str:
    """Dashed for a compiled twin, solid otherwise (matplotlib names)."""
    return "--" if is_twin(runner) else "-"
