"""README blocks generated from the committed results, so no table in the README is copied by hand.

A block is the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
``README.md``. Each block's text comes from one result file:

- ``results-table``: the table of ``results/summary.md`` (median [min, max] over seeds per model);
- ``claims``: the claims table of ``results/report.md`` (each claim, this run's numbers, the verdict);
- ``key-numbers``: the facts the README's reading of the verdicts rests on, computed here from
  ``results/summary.csv`` and ``results/leak_sweep.csv`` (:func:`key_numbers`);
- ``every-seed``: the per-seed table of ``results/report.md``;
- ``collapse``: the collapse diagnostics at the last epoch, per seed of the baseline and every
  NoPeek run, from ``results/summary.csv`` (:func:`collapse_table`);
- ``study``: the design-space study's findings, ``results/study.md`` from its chosen setting up to
  (not including) its table of every point;
- ``collapse-epochs``: every epoch of the runs with a collapsed seed, from ``results/history.csv``
  (:func:`collapse_epochs`).

``python -m nopeek_repro.readme`` rewrites the blocks (``python3 kit.py repro`` runs it after the
pipeline); ``python -m nopeek_repro.readme --check`` exits 1 and names each stale block, and a test
runs that check, so a README whose tables differ from ``results/`` fails the test suite.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from . import paths, report


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


def _med(rows: pd.DataFrame, col: str, digits: int = 3) -> str:
    return report.fmt(float(rows[col].median()), digits) if col in rows and rows[col].notna().any() else "–"


def _seeds(rows: pd.DataFrame, cols: dict[str, int]) -> str:
    """Every seed of ``rows``: ``seed s: col v, col v``; ``; ``-separated."""
    return "; ".join(
        f"seed {int(r.seed)}: "
        + ", ".join(f"{c.replace('_', ' ')} {report.fmt(r[c], d)}" for c, d in cols.items() if c in r)
        for _, r in rows.iterrows()
    )


def key_numbers(table: pd.DataFrame, sweep: pd.DataFrame | None) -> str:
    """Bullet points of the numbers behind the README's reading of the verdicts, all computed from results."""
    agg = report.aggregate(table)
    base = table[table.run == "baseline"]
    chosen = report.chosen_nopeek_run(agg)
    n_runs, n_seeds = table.run.nunique(), table.seed.nunique()
    out = [f"- {n_runs} models × {n_seeds} seeds ({', '.join(str(int(s)) for s in sorted(table.seed.unique()))})."]
    every = {"test_accuracy": 3, "leakage_dcor": 3, "attack_accuracy": 3, "recon_mse": 4}
    out.append(
        f"- Baseline, median: test accuracy {_med(base, 'test_accuracy')}, DCOR {_med(base, 'leakage_dcor')}, "
        f"attack accuracy {_med(base, 'attack_accuracy')}, strongest-attack MSE {_med(base, 'recon_mse', 4)} "
        f"(the mean image: {_med(base, 'mean_recon_mse', 4)})."
    )
    if chosen is not None:
        rows = table[table.run == chosen.run]
        out.append(f"- The NoPeek run chosen on validation, **{chosen.run}**, every seed: {_seeds(rows, every)}.")
    if "floor_label_dcor" in base and base.floor_label_dcor.notna().any():
        out.append(
            f"- DCOR floors at the same n (baseline's test images): a Z that carries only the class "
            f"{_med(base, 'floor_label_dcor')} over the test set, {_med(base, 'floor_label_batch_dcor')} per "
            f"batch; the baseline's own Z in a shuffled pairing {_med(base, 'leakage_dcor_shuffled')}."
        )
    collapsed = {
        r: int(g.collapsed.sum())
        for r, g in table.groupby("run", sort=False)
        if "collapsed" in g and g.collapsed.sum() > 0
    }
    if collapsed:
        out.append(
            "- Collapsed seeds (test accuracy within 0.05 of chance): "
            + ", ".join(f"{r} {n} of {int((table.run == r).sum())}" for r, n in collapsed.items())
            + "."
        )
    if "strongest_attack" in table:
        counts = table.strongest_attack.value_counts()
        worse = int((table.recon_mse > table.mean_recon_mse).sum()) if "mean_recon_mse" in table else 0
        caps = {
            r: int(g.decoder_hit_cap.sum())
            for r, g in table.groupby("run", sort=False)
            if "decoder_hit_cap" in g and g.decoder_hit_cap.sum() > 0
        }
        out.append(
            "- Strongest attack: "
            + ", ".join(f"{a} on {n}" for a, n in counts.items())
            + f" of {len(table)} models and seeds; worse than the mean image on test on {worse}; "
            + (
                "the decoder hit `attack.max_steps` on " + ", ".join(f"{r} {n}" for r, n in caps.items())
                if caps
                else "the decoder stopped by its rule on every one"
            )
            + "."
        )
    if sweep is not None and not sweep.empty:
        swept = sweep[sweep.leak_fraction != sweep.leak_fraction.mode().iloc[0]].seed.unique()  # seeds with a sweep
        for run in ["baseline", *([chosen.run] if chosen is not None else [])]:
            part = sweep[(sweep.run == run) & sweep.seed.isin(swept)]
            rows = part.groupby("leak_fraction")[["recon_mse", "attack_accuracy"]].median()
            if len(rows):
                seeds = ", ".join(str(int(s)) for s in sorted(part.seed.unique()))
                out.append(
                    f"- Leak sweep, {run} (seed{'s' if len(part.seed.unique()) > 1 else ''} {seeds}): "
                    + "; ".join(
                        f"{f:.0%} of the training set leaked: MSE {report.fmt(r.recon_mse, 4)}, "
                        f"attack accuracy {report.fmt(r.attack_accuracy, 3)}"
                        for f, r in rows.iterrows()
                    )
                    + "."
                )
    return "\n".join(out)


def collapse_table(table: pd.DataFrame) -> str:
    """Per seed of the baseline and the NoPeek runs: test accuracy and the last epoch's diagnostics."""
    rows = table[table.defence != "noise"]
    lines = [
        "| run | seed | test accuracy | dead channels at the cut | std(Z) | alpha·\\|∇DCOR\\| / \\|∇CE\\| |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in rows.iterrows():
        cells = [report.fmt(r.test_accuracy, 3), report.fmt(r.dead_channels, 3), report.fmt(r.z_std, 3)]
        lines.append(f"| {r.run} | {int(r.seed)} | " + " | ".join(cells) + f" | {float(r.grad_ratio):.3g} |")
    return "\n".join(lines)


def collapse_epochs(table: pd.DataFrame, history: pd.DataFrame) -> str:
    """Every epoch of every seed of the NoPeek run with the lowest single-seed test accuracy, when that seed
    lost accuracy (more than ``report.SIMILAR_ACCURACY_DROP`` below the baseline's median)."""
    nopeek = table[table.defence == "nopeek"]
    base = table.test_accuracy[table.defence == "none"].median()
    worst = nopeek.loc[nopeek.test_accuracy.idxmin()] if len(nopeek) else None
    if worst is None or worst.test_accuracy >= base - report.SIMILAR_ACCURACY_DROP:
        return "No NoPeek seed lost accuracy in this run."
    runs = [worst.run]
    lines = [
        "| run | seed | epoch | test accuracy | test DCOR | dead channels | std(Z) | alpha·\\|∇DCOR\\| / \\|∇CE\\| |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = history[history.run.isin(runs)].sort_values(["run", "seed", "epoch"])
    for _, r in rows.iterrows():
        cells = [
            report.fmt(r[c], d) for c, d in (("test_accuracy", 3), ("test_dcor", 3), ("dead_channels", 3), ("z_std", 4))
        ]
        lines.append(
            f"| {r.run} | {int(r.seed)} | {int(r.epoch)} | " + " | ".join(cells) + f" | {float(r.grad_ratio):.3g} |"
        )
    return "\n".join(lines)


def blocks(root: Path) -> dict[str, str]:
    """Each block's text, from the result files under ``root``."""
    results = root / "results"
    sweep = results / "leak_sweep.csv"
    return {
        "results-table": _first_table((results / "summary.md").read_text()),
        "claims": _first_table((results / "report.md").read_text(), after="## The paper's claims"),
        "key-numbers": key_numbers(
            pd.read_csv(results / "summary.csv"), pd.read_csv(sweep) if sweep.is_file() else None
        ),
        "every-seed": _first_table((results / "report.md").read_text(), after="## Every seed"),
        "collapse": collapse_table(pd.read_csv(results / "summary.csv")),
        "collapse-epochs": collapse_epochs(pd.read_csv(results / "summary.csv"), pd.read_csv(results / "history.csv")),
        "study": study_findings((results / "study.md").read_text()),
    }


def study_findings(text: str) -> str:
    """The study section from ``### The chosen setting`` up to ``### Every point``, headings one level down."""
    start, end = text.index("### The chosen setting"), text.index("### Every point")
    return text[start:end].replace("### ", "#### ").strip()


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
            readme = readme[: match.start(2)] + text + readme[match.end(2) :]
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
            print(
                f"README.md: block(s) {', '.join(changed)} differ from results/; run python -m nopeek_repro.readme",
                file=sys.stderr,
            )
            return 1
        return 0
    if changed:
        path.write_text(text)
        print(f"README.md: updated {', '.join(changed)} from results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
