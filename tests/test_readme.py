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


def test_key_numbers_come_from_the_table_and_show_every_seed_of_the_chosen_run():
    import pandas as pd

    rows = []
    for run, defence, acc, dcor in (("baseline", "none", 0.95, 0.98), ("nopeek-a30", "nopeek", 0.94, 0.90)):
        for seed in (0, 1):
            rows.append(
                dict(
                    run=run,
                    defence=defence,
                    alpha_dcor=30.0 if defence == "nopeek" else 0.0,
                    noise=0.0,
                    seed=seed,
                    collapsed=0,
                    test_accuracy=acc,
                    val_accuracy=acc,
                    leakage_dcor=dcor + seed / 100,
                    val_leakage_dcor=dcor,
                    attack_accuracy=0.9,
                    recon_mse=0.001,
                    mean_recon_mse=0.066,
                    strongest_attack="decoder",
                    decoder_hit_cap=seed,
                )
            )
    table = pd.DataFrame(rows)
    sweep = pd.DataFrame(
        dict(
            run=["baseline"] * 3,
            seed=[0, 0, 1],
            leak_fraction=[0.01, 0.5, 0.5],
            recon_mse=[0.004, 0.001, 0.001],
            attack_accuracy=[0.5, 0.9, 0.9],
        )
    )
    text = readme.key_numbers(table, sweep)
    assert "2 models × 2 seeds (0, 1)" in text
    assert "**nopeek-a30**, every seed: seed 0: test accuracy 0.940, leakage dcor 0.900" in text
    assert "seed 1: test accuracy 0.940, leakage dcor 0.910" in text
    assert "decoder on 4 of 4 models and seeds; worse than the mean image on test on 0" in text
    assert "the decoder hit `attack.max_steps` on baseline 1, nopeek-a30 1" in text
    assert "Leak sweep, baseline (seed 0): 1% of the training set leaked: MSE 0.0040" in text  # swept seeds only
