"""Every rejection code the intake can give is documented in the README's error table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    *sorted((ROOT / "layers" / "orderbridge" / "orderbridge").rglob("*.py")),
    ROOT / "functions" / "intake" / "app.py",
]
RAISED = re.compile(r"(?:IntakeRejectedError|SignatureError)\(\s*(?:\d+,\s*)?\"([A-Z][A-Z_]+)\"")


def _raised_codes() -> set[str]:
    return {code for path in SOURCES for code in RAISED.findall(path.read_text())}


def _documented_codes() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Errors", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    return {code for row in rows for code in re.findall(r"`([A-Z][A-Z_]+)`", row.split("|")[2])}


def test_every_raised_code_is_in_the_readme_error_table():
    raised = _raised_codes()
    assert len(raised) >= 12, raised  # the pattern still finds the raises
    missing = raised - _documented_codes()
    assert not missing, f"add these codes to README.md's error table: {sorted(missing)}"
