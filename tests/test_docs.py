"""The README and docs/ (and the folders' READMEs): every relative link leads somewhere (a file, and a
heading where it names one), every docs page is reachable from the README, and every command and option
of ``snnbench``'s parser is documented (in docs/cli.md, under the command's own heading)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from snnbench.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
CLI_PAGE = DOCS / "cli.md"
#: a front page, not a manual (issue 29); the manual lives in docs/
README_MAX_BYTES = 12 * 1024

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """The README, docs/ and the folders' own READMEs (docker/, results/, reports/)."""
    folders = sorted(p for p in REPO.glob("*/README.md") if not p.parent.name.startswith("."))
    return [README, *sorted(DOCS.glob("*.md")), *folders]


def prose_lines(path: Path):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation but ``-`` and ``_``
    removed, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks."""
    found = []
    for _, line in prose_lines(path):
        m = _HEADING.match(line)
        if m:
            found.append((len(m.group(1)), m.group(2)))
    return found


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub renders for ``path``: heading slugs (repeats numbered -1, -2, ...) and HTML anchors."""
    seen: dict[str, int] = {}
    out = set()
    for _, text in headings(path):
        slug = github_slug(text)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out.update(_HTML_ANCHOR.findall(path.read_text(encoding="utf-8")))
    return out


def links(path: Path):
    """(line number, target) of every Markdown link and image outside code."""
    for number, line in prose_lines(path):
        text = _CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), line)
        for m in _INLINE_LINK.finditer(text):
            yield number, m.group(1)
        m = _REF_DEF.match(text)
        if m:
            yield number, m.group(1)


def link_problem(source: Path, target: str, repo: Path = REPO) -> str | None:
    """Why the relative link ``target`` in ``source`` (a file of ``repo``) does not resolve, or None."""
    if _SCHEME.match(target) or target.startswith("//"):
        return None  # a URL: not checked here
    raw_path, _, anchor = target.partition("#")
    raw_path = unquote(raw_path.split("?", 1)[0])
    if raw_path.startswith("/"):
        dest = (repo / raw_path.lstrip("/")).resolve()
    elif raw_path:
        dest = (source.parent / raw_path).resolve()
    else:
        dest = source.resolve()
    if not dest.is_relative_to(repo.resolve()):
        return "points outside the repository"
    if not dest.exists():
        return "no such file or directory"
    if anchor:
        if dest.suffix.lower() != ".md" or not dest.is_file():
            return f"an anchor into {dest.name}, which is not a Markdown file"
        if unquote(anchor).lower() not in anchors(dest):
            return f"no heading with anchor #{anchor} in {dest.name}"
    return None


def test_docs_exist():
    assert README.is_file() and CLI_PAGE.is_file()
    assert len(list(DOCS.glob("*.md"))) >= 10


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    problems = [f"{path.relative_to(REPO)}:{number}: ({target}) {why}"
                for number, target in links(path) if (why := link_problem(path, target))]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_link_checker_catches_what_it_should(tmp_path):
    """The checker itself: a missing file, a missing anchor and a link out of the repo are caught; a
    heading's GitHub anchor, a repeated heading's numbered anchor, URLs and code are not."""
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "a.md"
    page.write_text("# A page\n\n## Compile time (`compile_s`)\n\n## Notes\n\n## Notes\n\n"
                    "[ok](#compile-time-compile_s) [ok](#notes-1) [ok](../docs/a.md#a-page) [url](https://x.org/y)\n"
                    "`[code](missing.md)`\n```\n[fenced](missing.md)\n```\n"
                    "[bad](missing.md) [bad](#nope) [bad](../../outside.md)\n", encoding="utf-8")
    found = [(t, link_problem(page, t, repo=tmp_path)) for _, t in links(page)]
    assert [t for t, why in found if why] == ["missing.md", "#nope", "../../outside.md"]
    assert github_slug("snnbench's own speed (pytest-benchmark)") == "snnbenchs-own-speed-pytest-benchmark"
    assert github_slug("Precision: float32, bfloat16, float16") == "precision-float32-bfloat16-float16"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for _, t in links(README) if not _SCHEME.match(t)}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link to: {missing}"


def test_readme_is_a_front_page():
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, (f"README.md is {size} bytes; keep it a front page under {README_MAX_BYTES} "
                                     "and put the details in docs/")


# ------------------------------------------------------------------------------------------ the CLI


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))


def cli_sections() -> dict[str, str]:
    """The text under each heading of docs/cli.md that names a command (``snnbench NAME``)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in CLI_PAGE.read_text(encoding="utf-8").splitlines():
        m = _HEADING.match(line)
        if m:
            name = re.fullmatch(r"snnbench ([\w-]+)", m.group(2).replace("`", "").strip())
            current = name.group(1) if name else None
            if current:
                sections[current] = []
            continue
        if current:
            sections[current].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


PARSER = build_parser()
COMMANDS = subcommands(PARSER)


def test_parser_has_commands():
    assert {"run", "parity", "report", "compare", "publish", "list", "env", "make-data"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_and_option_is_documented(command):
    sub = COMMANDS[command]
    text = docs_text()
    assert f"snnbench {command}" in text, f"docs/ never mentions 'snnbench {command}'"
    sections = cli_sections()
    assert command in sections, f"docs/cli.md has no '## snnbench {command}' section"
    section = sections[command]
    options = [s for a in sub._actions for s in a.option_strings if s not in ("-h", "--help")]
    missing = [s for s in options if not _mentions(section, s)]
    assert not missing, f"docs/cli.md's 'snnbench {command}' section does not document {missing}"
    assert all(_mentions(text, s) for s in options)
    choices = [str(c) for a in sub._actions if a.choices and not isinstance(a, argparse._SubParsersAction)
               for c in a.choices]
    missing = [c for c in choices if not _mentions(section, c)]
    assert not missing, f"docs/cli.md's 'snnbench {command}' section does not name the choices {missing}"


def test_help_option_is_documented():
    helps = {s for p in (PARSER, *COMMANDS.values()) for a in p._actions for s in a.option_strings
             if s in ("-h", "--help")}
    cli = CLI_PAGE.read_text(encoding="utf-8")
    assert helps and all(_mentions(cli, s) for s in helps)
