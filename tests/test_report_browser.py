"""The committed publish page as a researcher first sees it, measured in headless Chromium: at 1280 x 900
the first screen holds the SHD ranking chart with a bar for every runner of the SHD run, no two
runners share a colour, and at 800 px wide the SHD table's key columns (case, runner, epoch time,
test accuracy, parity) are on screen. Both screenshots are saved (and copied to
$SNNBENCH_SCREENSHOTS when it names a folder)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "results" / "x86_64-2cpu"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY_COLUMNS = ("case", "runner", "epoch s", "test acc", "parity")

# Written into the page's body as data-probe once the page has loaded: what the assertions need,
# measured by the browser at the window size it was opened with.
PROBE = r"""<script>
window.addEventListener('load', function () {
  var chart = document.querySelector('#shd svg.chart');
  var bars = chart ? Array.prototype.slice.call(chart.querySelectorAll('rect.bar[data-runner]')) : [];
  var fills = {};
  document.querySelectorAll('svg.chart rect.bar[data-runner]').forEach(function (r) {
    if ((r.getAttribute('data-style') || '').indexOf('pale') >= 0) { return; }  // a compile segment
    var key = r.getAttribute('data-runner'), fill = getComputedStyle(r).fill;
    var pattern = fill.match(/url\("?#([^")]+)"?\)/);
    if (pattern) {  // a hatched bar: the colour of its pattern's stripes
      fill = 'hatched ' + getComputedStyle(document.getElementById(pattern[1]).querySelector('rect:last-child')).fill;
    }
    (fills[key] = fills[key] || {})[fill] = 1;
  });
  var heads = {}, table = document.querySelector('#figures-shd');
  document.querySelectorAll('#figures-shd table.summary thead th').forEach(function (th) {
    heads[th.textContent.trim()] = th.getBoundingClientRect().right;
  });
  document.body.setAttribute('data-probe', JSON.stringify({
    view: [window.innerWidth, window.innerHeight],
    chart: chart ? {top: chart.getBoundingClientRect().top + window.scrollY,
                    bottom: chart.getBoundingClientRect().bottom + window.scrollY} : null,
    runners: bars.map(function (r) { return r.getAttribute('data-runner'); }),
    fills: fills, heads: heads, tableTop: table ? table.getBoundingClientRect().top + window.scrollY : null,
    minFont: Math.min.apply(null, Array.prototype.map.call(chart ? chart.querySelectorAll('text') : [],
      function (t) { return parseFloat(getComputedStyle(t).fontSize); }))
  }));
});
</script></body>"""


def _flags(profile: Path) -> list[str]:
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]


def _probe(page: Path, tmp_path: Path, width: int) -> dict:
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE, 1), encoding="utf-8")
    p = subprocess.run(_flags(tmp_path / "profile") + [f"--window-size={width},900", "--virtual-time-budget=5000",
                                                       "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', p.stdout)
    assert found, "the probe did not run"
    return json.loads(html.unescape(found.group(1)))


def _screenshot(page: Path, tmp_path: Path, width: int, top: int = 0) -> Path:
    """The 900 px of the page from ``top`` at ``width``: headless Chromium paints a screenshot from the
    page's top (a #fragment's scroll comes out blank), so a taller window is cut down to them."""
    from PIL import Image

    shot = tmp_path / f"report-{width}.png"
    p = subprocess.run(_flags(tmp_path / "profile") + [f"--window-size={width},{top + 900}",
                                                       "--virtual-time-budget=5000", f"--screenshot={shot}",
                                                       page.as_uri()], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    if top:
        with Image.open(shot) as im:
            im.crop((0, top, width, top + 900)).save(shot)
    assert shot.stat().st_size > 10_000, "a blank screenshot"
    return shot


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium')")
def test_the_committed_page_answers_on_the_first_screen(tmp_path):
    from snnbench.publish import published_runs
    from snnbench.report.html import write_report
    from snnbench.report.load import load_runs, summary_rows

    runs = load_runs(published_runs(RUNS))
    page, _, _ = write_report(runs, tmp_path / "page.html")
    shd = next(r for r in runs if r.manifest.get("suite") == "shd")
    expected = {r["runner"] for r in summary_rows(shd.records) if r.get("epoch_s")}

    wide = _probe(page, tmp_path, 1280)
    assert wide["view"][0] == 1280, wide["view"]
    # the top 900 px of the page, measured from the top of the document (the window's height in
    # --dump-dom mode is the window's, less what Chromium reserves around the page)
    assert wide["chart"] and 0 <= wide["chart"]["top"] and wide["chart"]["bottom"] <= 900, wide["chart"]
    assert set(wide["runners"]) == expected and len(wide["runners"]) == len(expected), wide["runners"]
    assert wide["minFont"] >= 10, wide["minFont"]
    styles = {runner: list(f) for runner, f in wide["fills"].items()}
    assert all(len(s) == 1 for s in styles.values()), styles  # one colour per runner in every chart
    assert len({s[0] for s in styles.values()}) == len(styles), styles  # no two runners share one
    for runner, (style,) in styles.items():  # a compiled twin: its eager twin's colour, hatched
        eager = runner.removesuffix("-compile")
        if eager != runner and eager in styles:
            assert style == "hatched " + styles[eager][0], (runner, style, styles[eager])

    narrow = _probe(page, tmp_path, 800)
    assert narrow["view"][0] == 800, narrow["view"]
    heads = narrow["heads"]
    assert set(KEY_COLUMNS) <= set(heads), heads
    assert all(0 < heads[c] <= 800 for c in KEY_COLUMNS), {c: heads[c] for c in KEY_COLUMNS}

    shots = [_screenshot(page, tmp_path, 1280), _screenshot(page, tmp_path, 800, int(narrow["tableTop"]))]
    keep = os.environ.get("SNNBENCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
