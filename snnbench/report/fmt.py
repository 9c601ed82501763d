"""Numbers and text as the report prints them: plain numbers (never ``2.35e+03``), escaped text."""

from __future__ import annotations

import html
import math
import re
from typing import Any

e = html.escape


def plain(v: float | None, sig: int = 3) -> str:
    """``v`` to ``sig`` significant figures without an exponent: 2349.1 -> '2349', 0.000123 -> '0.000123',
    9.0 -> '9' (as ``{:.3g}`` prints what it can print without an exponent); '' for None."""
    if v is None:
        return ""
    if not math.isfinite(v):
        return str(v)
    text = f"{v:.{sig}g}"
    if "e" not in text:
        return text
    if abs(v) >= 1:
        return f"{v:.0f}"
    decimals = sig - 1 - math.floor(math.log10(abs(v)))
    return f"{v:.{decimals}f}"


def num(v: Any, fmt: str | None = None) -> str:
    """'' for None; ``fmt`` when given (fixed formats: ``{:.2f}x``, ``{:.1f}%``), else :func:`plain`."""
    if v is None:
        return ""
    return fmt.format(v) if fmt else plain(v)


def seconds(v: float | None) -> str:
    """A duration for a chart label: '2.16 s', '131 s', '0.62 s'."""
    return "" if v is None else f"{plain(v)} s"


def points(delta: float | None) -> str:
    """An accuracy change in percentage points: '+0.4', '-12.7', '0.0'."""
    if delta is None:
        return ""
    text = f"{100 * delta:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


_FLIPS = re.compile(r"spike flips (\d+) \((\d+(?:\.\d+)?)%\)")


def parity_text(text: str) -> str:
    """A parity summary with its spike count said in words: 'spike flips 7026 (81.6%)' becomes
    '7026 spike mismatches (81.6% of the reference's spike count)': spike decisions where runner and
    reference differ, counted against the reference's spikes, so above 100% when the runner fires
    where the reference does not."""
    return _FLIPS.sub(lambda m: f"{m.group(1)} spike mismatches ({m.group(2)}% of the reference's spike count)",
                      str(text))


def short_data(text: str) -> str:
    """A manifest's data line without the cache path it was read from."""
    return re.sub(r" from /\S+?:", ";", str(text))


def cpu_id_text(ident: dict[str, str] | None) -> str:
    """A run's CPU identity (``environment.cpu_id``: family, model, SIMD extensions) as one phrase."""
    if not ident:
        return "not recorded"
    return f"family {ident.get('family')} model {ident.get('model')}; {ident.get('simd') or 'no SIMD flags'}"
