"""The README's results summary is generated from the ledger and must be current (CI runs this test)."""

from pathlib import Path

import pytest

from skipvae.cli import main
from skipvae.errors import DataError
from skipvae.report.claims import README_END, README_START, readme_with_verdicts, verdict_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_verdict_table_is_current(monkeypatch):
    monkeypatch.delenv("SKIPVAE_RESULTS", raising=False)
    text = README.read_text()
    assert readme_with_verdicts(text, verdict_table()) == text, \
        "README's verdict table is stale: run `python -m skipvae verdicts --write README.md`"


def test_the_verdict_block_is_replaced_and_a_stale_one_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIPVAE_RESULTS", raising=False)
    path = tmp_path / "README.md"
    path.write_text(f"intro\n{README_START}\n| old |\n{README_END}\nrest\n")
    assert main(["verdicts", "--write", str(path), "--check"]) == 1  # stale
    assert main(["verdicts", "--write", str(path)]) == 0
    assert "| old |" not in path.read_text() and "| C1 |" in path.read_text()
    assert path.read_text().startswith("intro\n") and path.read_text().endswith(f"{README_END}\nrest\n")
    assert main(["verdicts", "--write", str(path), "--check"]) == 0
    with pytest.raises(DataError, match="no verdict block"):
        readme_with_verdicts("no block here", "| x |")
