"""docs/security.md cannot rot: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_named_in_the_security_doc_exists():
    references = REFERENCE.findall(DOC.read_text())
    assert len(references) >= 20
    missing = [
        f"{file}::{name}"
        for file, name in references
        if not (ROOT / file).exists() or name not in _test_names(ROOT / file)
    ]
    assert missing == [], "docs/security.md names tests that do not exist"


def test_every_table_row_names_a_test():
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    body = rows[1:]  # below the header
    assert body and all(REFERENCE.search(row) for row in body), [r for r in body if not REFERENCE.search(r)]
