"""README blocks generated from the committed results, so no table in the README is copied by hand.

A block is the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
``README.md``. Each block's text comes from one result file:

- ``results-table``: the table of ``results/summary.md`` (median [min, max] over seeds per model);
- ``claims``: the claims table of ``results/report.md`` (each claim, this run's numbers, the verdict).

``python -m nopeek_repro.readme`` rewrites the blocks (``python3 kit.py repro`` runs it after the
pipeline); ``python -m nopeek_repro.readme --check`` exits 1 and names each stale block, and a test
runs that check, so a README whose tables differ from ``results/`` fails the test suite.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import paths


def _first_table(text: str, after: str | None = None) -> str:
    """The first Markdown table (consecutive lines starting with ``|``) in ``text``, after the line ``after``."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        heads = [i for i, line in enumerate(lines) if line.strip() == after]
        if not heads:
            raise ValueError(f"no line {after!r} found")
        start = heads[0] + 1
    rows: list[str] = []
    for line in lines[start:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    if not rows:
        raise ValueError("no Markdown table found")
    return "\n".join(rows)


def blocks(root: Path) -> dict[str, str]:
    """Each block's text, from the result files under ``root``."""
    results = root / "results"
    return {
        "results-table": _first_table((results / "summary.md").read_text()),
        "claims": _first_table((results / "report.md").read_text(), after="## The paper's claims"),
    }


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{re.escape(name)} -->\n)(.*?)(<!-- /generated:{re.escape(name)} -->)", re.S)


def sync(readme: str, new: dict[str, str]) -> tuple[str, list[str]]:
    """``readme`` with every block replaced by ``new``; also the names of the blocks that changed."""
    changed = []
    for name, text in new.items():
        text = text.rstrip("\n") + "\n"
        pat = _pattern(name)
        match = pat.search(readme)
        if match is None:
            raise ValueError(f"README.md has no block <!-- generated:{name} --> ... <!-- /generated:{name} -->")
        if match.group(2) != text:
            changed.append(name)
            readme = readme[: match.start(2)] + text + readme[match.end(2):]
    return readme, changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nopeek_repro.readme", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when a block is stale")
    args = ap.parse_args(argv)
    root = paths.find_root()
    path = root / "README.md"
    text, changed = sync(path.read_text(), blocks(root))
    if args.check:
        if changed:
            print(f"README.md: block(s) {', '.join(changed)} differ from results/; run python -m nopeek_repro.readme",
                  file=sys.stderr)
            return 1
        return 0
    if changed:
        path.write_text(text)
        print(f"README.md: updated {', '.join(changed)} from results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
