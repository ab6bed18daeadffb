"""The README's generated blocks: in step with results/, and the sync that keeps them so."""

from __future__ import annotations

import pytest

from nopeek_repro import readme


def test_readme_tables_match_the_committed_results(root):
    """A README table copied by hand from an older run fails here: run `python -m nopeek_repro.readme`."""
    _, changed = readme.sync((root / "README.md").read_text(), readme.blocks(root))
    assert changed == [], f"README.md blocks {changed} differ from results/: run python -m nopeek_repro.readme"


def test_sync_replaces_only_the_block_and_names_what_changed():
    text = "intro\n<!-- generated:t -->\n| old |\n<!-- /generated:t -->\noutro\n"
    out, changed = readme.sync(text, {"t": "| new |\n|---|"})
    assert out == "intro\n<!-- generated:t -->\n| new |\n|---|\n<!-- /generated:t -->\noutro\n"
    assert changed == ["t"]
    assert readme.sync(out, {"t": "| new |\n|---|"}) == (out, [])  # idempotent
    empty = "<!-- generated:t -->\n<!-- /generated:t -->\n"
    assert readme.sync(empty, {"t": "| x |"})[0] == "<!-- generated:t -->\n| x |\n<!-- /generated:t -->\n"


def test_sync_names_a_missing_block():
    with pytest.raises(ValueError, match="README.md has no block <!-- generated:claims -->"):
        readme.sync("no markers here", {"claims": "| x |"})


def test_first_table_after_a_heading():
    md = "# r\n| a |\n|---|\n\n## The paper's claims\n\n| claim |\n|---|\n| one |\n\ntext\n"
    assert readme._first_table(md) == "| a |\n|---|"
    assert readme._first_table(md, after="## The paper's claims") == "| claim |\n|---|\n| one |"
