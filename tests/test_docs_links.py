"""The documentation holds together: every relative link of README.md and docs/*.md leads to a file
that exists and, with an anchor, to a heading of that file; and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

LINK = re.compile(r"(?<!\\)\[(?P<text>[^\]]*)\]\((?P<target><[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\)")
"""An inline markdown link or image, ``[text](target)`` or ``[text](target "title")``."""
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
"""A target with a scheme (http:, https:, mailto:, ...): not checked here."""


def outside_code(text: str, drop_code_spans: bool) -> list[str]:
    """The lines of ``text`` with fenced code blocks blanked (and inline code spans removed), where
    brackets are not links and ``#`` lines are not headings."""
    lines, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if marker and fence is None:
            fence = marker.group(1)
            lines.append("")
        elif marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
            fence = None
            lines.append("")
        elif fence is not None:
            lines.append("")
        else:
            lines.append(re.sub(r"(`+)(?:(?!\1).)+?\1", "", line) if drop_code_spans else line)
    return lines


def shown(path: Path) -> str:
    """A path as the messages name it: relative to the repository where it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)  # keeps letters, digits, _, - and spaces
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, numbered as GitHub numbers repeated headings."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in outside_code(path.read_text(), drop_code_spans=False):
        match = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    # explicit HTML anchors (<a id="..."> / name="...")
    found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", path.read_text()))
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every relative link of a markdown file."""
    links = []
    for number, line in enumerate(outside_code(path.read_text(), drop_code_spans=True), start=1):
        for match in LINK.finditer(line):
            target = match.group("target").strip("<>")
            if target and not EXTERNAL.match(target):
                links.append((number, target))
    return links


def broken(path: Path, target: str) -> str | None:
    """Why a relative link of ``path`` does not resolve, or None when it does."""
    file_part, _, anchor = target.partition("#")
    linked = (path.parent / unquote(file_part)).resolve() if file_part else path
    if not linked.exists():
        return f"{shown(linked)} does not exist"
    if anchor:
        if linked.is_dir() or linked.suffix.lower() != ".md":
            return f"anchor #{anchor} on {linked.name}, which is not a markdown file"
        if unquote(anchor).lower() not in anchors(linked):
            return f"{shown(linked)} has no heading with the anchor #{anchor}"
    return None


def test_the_documents_exist():
    assert (ROOT / "README.md").is_file()
    assert len(DOCUMENTS) > 1, "docs/*.md is empty"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path):
    problems = []
    for number, target in relative_links(document):
        why = broken(document, target)
        if why:
            problems.append(f"{shown(document)}:{number}: link ({target}): {why}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, at most {README_MAX_LINES}: move details to docs/")


def test_the_checker_finds_broken_links(tmp_path: Path):
    """The checks themselves: a missing file, a missing anchor, links in code ignored, slugs as GitHub's."""
    (tmp_path / "other.md").write_text("# Title\n\n## Scores comparable with papers\n\n## Job status: `squeue`, not `sacct`\n"
                                       "## Repeated\n## Repeated\n```sh\n# not a heading\n```\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](other.md) [b](other.md#scores-comparable-with-papers) [c](other.md#job-status-squeue-not-sacct)\n"
                   "[d](other.md#repeated-1) [e](#local) [f](https://example.com/x.md) [g](mailto:a@b.c)\n"
                   "## Local\n"
                   "`[not](a-link.md)`\n```\n[not](a-link-either.md)\n```\n"
                   "[h](missing.md) [i](other.md#no-such-heading) [j](other.md#not-a-heading)\n")
    targets = [target for _, target in relative_links(doc)]
    assert targets == ["other.md", "other.md#scores-comparable-with-papers", "other.md#job-status-squeue-not-sacct",
                       "other.md#repeated-1", "#local", "missing.md", "other.md#no-such-heading",
                       "other.md#not-a-heading"]
    problems = {target: broken(doc, target) for target in targets}
    assert [t for t, why in problems.items() if why] == ["missing.md", "other.md#no-such-heading",
                                                           "other.md#not-a-heading"]
    assert "does not exist" in problems["missing.md"]
