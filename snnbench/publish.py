"""Published results: run a named profile of suites on this machine class, keep the runs under
``results/<machine class>/`` and render them as one page, ``reports/<machine class>.html`` (+ .md, .csv).

A profile (``suites/publish/<name>.yaml``) lists the suites to run and, per suite, the runners, the
cases and the sizes that this kind of machine finishes in reasonable time: a CPU profile trims the
training sets of the large suites, a GPU profile can run them whole. Trimming changes only how many
samples and epochs a case trains for, never its network, T or batch, and the run's manifest records it.

The page is rendered from the committed run directories alone, in the order ``snnbench report
results/<class>/*`` reads them, so re-rendering the committed runs gives the committed page.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SnnbenchError
from .naming import parse_list
from .spec import Suite, load_suite, select_cases, validate_case

#: the case fields a profile may set: how much a case trains, never what it computes
TRIM_FIELDS = {"train_samples": int, "test_samples": int, "epochs": int, "timeout_s": float}
PROFILE_FIELDS = {"profile", "description", "runs"}
RUN_FIELDS = {"suite", "runners", "cases", "quick", "nir_check", *TRIM_FIELDS}
HEADLINE_START = "<!-- headline:start -->"
HEADLINE_END = "<!-- headline:end -->"


@dataclass(frozen=True)
class PublishRun:
    """One suite of a profile: which runners and cases, and the trims applied to every case."""

    suite: str
    runners: str | None = None  # comma-separated, 'all', or None for the suite's own list
    cases: str | None = None  # comma-separated ids or globs, None for every case
    quick: bool = False
    trims: tuple[tuple[str, Any], ...] = ()
    #: after the run, the NIR check (snnbench nir-check) on the reference's trained network
    nir_check: bool = False

    def load(self) -> Suite:
        """The suite with its cases selected and trimmed (validated as a suite file would be)."""
        suite = select_cases(load_suite(self.suite, quick=self.quick), self.cases, flag=f"{self.suite}: cases")
        if not self.trims:
            return suite
        cases = []
        for case in suite.cases:
            spec = case.spec
            if spec.epochs == 0:  # a timing-only case has no training set to trim
                cases.append(case)
                continue
            spec = dataclasses.replace(spec, **dict(self.trims))
            validate_case(spec, f"publish {self.suite}.{case.id}")
            cases.append(dataclasses.replace(case, spec=spec))
        return dataclasses.replace(suite, cases=tuple(cases))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    runs: tuple[PublishRun, ...]
    path: str = ""


def profiles_dir() -> Path:
    from .spec import default_suites_dir

    return default_suites_dir() / "publish"


def _parse_run(raw: Any, where: str) -> PublishRun:
    if not isinstance(raw, dict):
        raise SnnbenchError(f"{where}: expected a mapping with 'suite'")
    unknown = sorted(set(raw) - RUN_FIELDS)
    if unknown:
        raise SnnbenchError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(RUN_FIELDS))})")
    suite = raw.get("suite")
    if not isinstance(suite, str) or not suite:
        raise SnnbenchError(f"{where}.suite: expected a suite name")
    text = {}
    for key in ("runners", "cases"):
        value = raw.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if value is not None and not isinstance(value, str):
            raise SnnbenchError(f"{where}.{key}: expected a name, a list of names or 'all'")
        parse_list(value, f"{where}.{key}")  # given, it names something, and nothing twice
        text[key] = value
    quick, nir = raw.get("quick", False), raw.get("nir_check", False)
    for key, value in (("quick", quick), ("nir_check", nir)):
        if not isinstance(value, bool):
            raise SnnbenchError(f"{where}.{key}: expected true or false")
    trims = []
    for key, kind in TRIM_FIELDS.items():
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or \
                    (kind is int and not isinstance(value, int)):
                raise SnnbenchError(f"{where}.{key}: expected a positive {'integer' if kind is int else 'number'}, "
                                    f"got {value!r}")
            trims.append((key, kind(value)))
    return PublishRun(suite=suite, runners=text["runners"], cases=text["cases"], quick=quick, trims=tuple(trims),
                      nir_check=nir)


def load_profile(name_or_path: str) -> Profile:
    """``suites/publish/<name>.yaml`` or a YAML path, validated (every suite it names is loaded); read within
    the bounds of :func:`snnbench.limits.load_yaml`."""
    from .limits import load_yaml

    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        candidate = profiles_dir() / f"{name_or_path}.yaml"
        if not candidate.exists():
            known = ", ".join(sorted(p.stem for p in profiles_dir().glob("*.yaml"))) or "none"
            raise SnnbenchError(f"unknown publish profile {name_or_path!r} (known: {known})")
        path = candidate
    data = load_yaml(path, "publish profile")
    where = path.name
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise SnnbenchError(f"{where}: a publish profile is a mapping with 'profile' and a non-empty 'runs' list")
    unknown = sorted(set(data) - PROFILE_FIELDS)
    if unknown:
        raise SnnbenchError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(PROFILE_FIELDS))})")
    runs = tuple(_parse_run(raw, f"{where}.runs[{i}]") for i, raw in enumerate(data["runs"]))
    names = [r.suite for r in runs]
    if len(set(names)) != len(names):
        raise SnnbenchError(f"{where}: each suite may appear once (the page keeps one run per suite)")
    for run in runs:
        run.load()  # every suite, case pattern and trim is checked before anything runs
    return Profile(name=str(data.get("profile") or path.stem), description=str(data.get("description", "")),
                   runs=runs, path=str(path))


def machine_class(gpus: list[dict[str, str]] | None = None) -> str:
    """The kind of machine results are published for: ``x86_64-2cpu`` on a CPU machine, with the
    GPU's model appended on a GPU machine (``x86_64-16cpu-nvidia-h200``). The same CPU name as the
    Makefile's benchmark baselines."""
    from .harness.env import _gpus

    gpus = _gpus() if gpus is None else gpus
    name = f"{platform.machine()}-{os.cpu_count()}cpu"
    if gpus:
        model = str(gpus[0].get("name", "gpu")).lower()
        model = re.sub(r"[^a-z0-9]+", "-", model.replace("nvidia", "nvidia ")).strip("-")
        model = re.sub(r"-(\d+gb|sxm\d*|pcie|nvl|hbm\w*)\b", "", model)  # the model, not its memory or form
        name += f"-{model or 'gpu'}"
    return name


def published_runs(class_dir: Path) -> list[Path]:
    """The run directories of a machine class, in the order ``snnbench report class_dir/*`` gives."""
    return sorted(p for p in class_dir.iterdir() if (p / "manifest.json").is_file()) if class_dir.is_dir() else []


def _suite_of(run_path: Path) -> str | None:
    import json

    try:
        return json.loads((run_path / "manifest.json").read_text()).get("suite")
    except (OSError, ValueError, AttributeError):
        return None


def replace_older(class_dir: Path, new_run: Path) -> list[Path]:
    """Remove the class's earlier runs of ``new_run``'s suite (the page keeps one run per suite)."""
    suite = _suite_of(new_run)
    removed = []
    for path in published_runs(class_dir):
        if path != new_run and _suite_of(path) == suite:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def headline_markdown(markdown_text: str, suite: str = "shd") -> str:
    """The results table of ``suite``'s section of a rendered summary (``report.html.markdown``)."""
    lines = markdown_text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## ") and line.endswith(f"({suite})"):
            table = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                table.append(row)
            if table:
                return "\n".join(table)
    raise SnnbenchError(f"the report has no {suite!r} section to take the headline table from")


def check_readme(readme: Path) -> None:
    """The README exists, is a file and has the headline block: checked before a publish runs or writes
    anything, so that it cannot fail after writing the page."""
    if not readme.is_file():
        raise SnnbenchError(f"--readme {readme}: no such file")
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SnnbenchError(f"--readme {readme}: cannot be read ({exc})") from None
    start, end = text.find(HEADLINE_START), text.find(HEADLINE_END)
    if start < 0 or end < start:
        raise SnnbenchError(f"--readme {readme}: no '{HEADLINE_START}' ... '{HEADLINE_END}' block to write the "
                            "headline table into; nothing was run or written")


def update_readme(readme: Path, table: str, page: str) -> None:
    """Put ``table`` between the README's headline markers, with a link to the page it comes from."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(HEADLINE_START), text.find(HEADLINE_END)
    if start < 0 or end < start:
        raise SnnbenchError(f"{readme}: no '{HEADLINE_START}' ... '{HEADLINE_END}' block to write the table into")
    block = f"{HEADLINE_START}\n{table}\n\nFull page: [{page}]({page}).\n{HEADLINE_END}"
    readme.write_text(text[:start] + block + text[end + len(HEADLINE_END):], encoding="utf-8")


def readme_headline(readme: Path) -> str:
    """The table between the README's headline markers (what :func:`update_readme` wrote)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(HEADLINE_START), text.find(HEADLINE_END)
    if start < 0 or end < start:
        raise SnnbenchError(f"{readme}: no headline block")
    return "\n".join(line for line in text[start + len(HEADLINE_START):end].splitlines() if line.startswith("|"))
