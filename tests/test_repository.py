"""Checks on the repository's own files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A line that git writes around the two sides of a conflict it could not merge.
CONFLICT_LINE = re.compile(r"^\s*(<{7} |>{7} |={7}$)", re.MULTILINE)


def test_no_merge_conflict_lines_left():
    texts = [
        path
        for folder in ("src", "tests", "docs", "benchmarks", "scripts")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".md", ".sh", ".yaml", ".toml", ".txt"}
    ]
    texts += [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / ".ci" / "run"]

    found = [
        f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}"
        for path in texts
        if path.is_file()
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for match in CONFLICT_LINE.finditer(text)
    ]

    assert len(texts) > 100
    assert found == []
