"""The replication report: verdicts computed from hand-made tables, and rendering of the real one."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

from nopeek_repro import report, summary
from nopeek_repro.report import VERDICTS, ReportContext, claims, replication_report

CTX = ReportContext(
    dataset="toy",
    n_classes=10,
    clean_accuracy=0.99,
    arch="split CNN",
    cut_layer=1,
    epochs=5,
    seeds=[0, 1, 2],
    leak_fraction=0.5,
    notes=["a note"],
)
CHANCE = 0.1
# chance 0.1, clean 0.99: reconstruction succeeds at attack accuracy >= 0.545, fails at <= 0.3225.
# With a baseline accuracy of 0.95: similar accuracy >= 0.93, near chance <= 0.3125.

SPREAD = (-0.008, 0.0, 0.004)  # per-seed offsets: three seeds, MEDIAN = the value given (the mean is 0.00133 lower)


def run(
    name: str,
    acc: float,
    dcor: float,
    attack: float = 0.9,
    mse: float = 0.01,
    ssim: float = 0.9,
    unbiased: float | None = None,
    val_acc: float | None = None,
    val_dcor: float | None = None,
    strongest: str = "ridge",
) -> list[dict]:
    """Three seed rows of one run; the defence and its parameter come from the run name.

    Validation numbers default to the test ones; ``collapsed`` is what summary.build(chance=0.1) gives."""
    spec = {"baseline": ("none", 0.0, 0.0)}.get(name)
    if spec is None:
        kind, val = name.split("-")
        spec = ("nopeek", float(val[1:]), 0.0) if kind == "nopeek" else ("noise", 0.0, float(val[1:]))
    va = acc if val_acc is None else val_acc
    vd = dcor if val_dcor is None else val_dcor
    return [
        {
            "run": name,
            "defence": spec[0],
            "alpha_dcor": spec[1],
            "noise": spec[2],
            "seed": s,
            "collapsed": int(acc + d <= CHANCE + summary.COLLAPSE_MARGIN),
            "val_accuracy": va + d,
            "test_accuracy": acc + d,
            "val_leakage_dcor": vd + d,
            "leakage_dcor": dcor + d,
            "leakage_dcor_unbiased": (dcor**2 if unbiased is None else unbiased) + d,
            "recon_mse": mse * (1 + d),
            "recon_psnr": 20.0 + d,
            "recon_ssim": ssim + d,
            "attack_accuracy": attack + d,
            "strongest_attack": strongest,
            "authors_recon_mse": mse,
            "authors_recon_ssim": ssim,
        }
        for s, d in enumerate(SPREAD)
    ]


def with_seeds(rows: list[dict], **cols) -> list[dict]:
    """``rows`` with some columns set: a tuple gives one value per seed, anything else the same for every seed."""
    return [{**r, **{k: (v[i] if isinstance(v, tuple) else v) for k, v in cols.items()}} for i, r in enumerate(rows)]


def table(*runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for r in runs for row in r])


BASE = run("baseline", 0.95, 0.95, attack=0.95, mse=0.01, ssim=0.9, unbiased=0.9)
NOISE_OK = (run("noise-b1", 0.93, 0.9, attack=0.9), run("noise-b8", 0.1, 0.5, attack=0.1, ssim=0.05))


def verdicts(df: pd.DataFrame, ctx: ReportContext = CTX) -> dict[str, str]:
    return claims(df, ctx).verdict.to_dict()


# --- claim 1: DCOR ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nopeek, verdict",
    [
        ([run("nopeek-a100", 0.94, 0.2, attack=0.1)], "reproduced"),
        ([run("nopeek-a100", 0.94, 0.8, attack=0.1)], "partly"),  # 0.8 <= 0.95 - 0.10
        (
            [run("nopeek-a10", 0.945, 0.93), run("nopeek-a1000", 0.1, 0.1, attack=0.1)],
            "partly",
        ),  # 0.35 only at low accuracy
        ([run("nopeek-a10", 0.945, 0.93)], "not reproduced"),
        ([run("nopeek-a1000", 0.5, 0.6, attack=0.1)], "not reproduced"),  # no similar accuracy, nothing <= 0.35
    ],
)
def test_dcor_claim(nopeek, verdict):
    assert verdicts(table(BASE, *nopeek, *NOISE_OK))["dcor"] == verdict


def test_dcor_claim_picks_lowest_dcor_with_similar_accuracy():
    df = table(BASE, run("nopeek-a10", 0.945, 0.6), run("nopeek-a30", 0.935, 0.3), run("nopeek-a100", 0.5, 0.1))
    agg = report.aggregate(df)
    assert report.chosen_nopeek_run(agg).run == "nopeek-a30"
    text = claims(df, CTX).loc["dcor", "this_run"]
    assert "DCOR 0.950 [0.942, 0.954] → 0.300 [0.292, 0.304] (nopeek-a30" in text
    assert "selected on validation: similar validation accuracy ≥ 0.930, lowest validation DCOR" in text
    assert "lowest DCOR at any accuracy: nopeek-a100 0.100 [0.092, 0.104]" in text
    assert "bias-corrected dCor² 0.900 [0.892, 0.904] → 0.090 [0.082, 0.094]" in text


def test_chosen_run_is_selected_on_validation_not_test():
    """Test and validation disagree: the choice follows validation; the numbers reported for it are test's."""
    df = table(
        BASE,
        run("nopeek-a10", 0.945, 0.6, val_dcor=0.2),  # lowest validation DCOR at similar validation accuracy
        run("nopeek-a30", 0.94, 0.3, val_dcor=0.5),  # lowest test DCOR ... if a100 did not exist
        run("nopeek-a100", 0.94, 0.1, val_acc=0.85, val_dcor=0.05),  # similar on test only
        *NOISE_OK,
    )
    agg = report.aggregate(df)
    assert report.selection_columns(agg) == ("val_accuracy", "val_leakage_dcor")
    assert report.chosen_nopeek_run(agg).run == "nopeek-a10"
    c = claims(df, CTX)
    assert c.loc["dcor", "verdict"] == "partly"  # test DCOR 0.6 of the chosen run: <= 0.95 - 0.10, not <= 0.35
    text = c.loc["dcor", "this_run"]
    assert text.startswith(
        "DCOR 0.950 [0.942, 0.954] → 0.600 [0.592, 0.604] (nopeek-a10, accuracy "
        "0.945 [0.937, 0.949] vs baseline 0.950 [0.942, 0.954], selected on validation"
    )
    assert "lowest DCOR at any accuracy: nopeek-a100 0.100 [0.092, 0.104]" in text
    # had the selection used test numbers, nopeek-a100 would have been chosen and claim 1 reproduced
    on_test = df.drop(columns=["val_accuracy", "val_leakage_dcor"])
    agg_test = report.aggregate(on_test)
    assert report.selection_columns(agg_test) == ("test_accuracy", "leakage_dcor")
    assert report.chosen_nopeek_run(agg_test).run == "nopeek-a100"
    assert verdicts(on_test)["dcor"] == "reproduced"
    assert (
        "selected on test: similar test accuracy ≥ 0.930, lowest test DCOR"
        in claims(on_test, CTX).loc["dcor", "this_run"]
    )


def test_selection_falls_back_to_test_when_a_run_lacks_validation_numbers():
    noise_old = [with_seeds(r, val_accuracy=float("nan"), val_leakage_dcor=float("nan")) for r in NOISE_OK]
    df = table(
        BASE, run("nopeek-a10", 0.945, 0.6, val_dcor=0.2), run("nopeek-a30", 0.94, 0.3, val_dcor=0.5), *noise_old
    )
    agg = report.aggregate(df)
    assert report.selection_columns(agg) == ("test_accuracy", "leakage_dcor")
    assert report.chosen_nopeek_run(agg).run == "nopeek-a30"


def test_baselines_validation_accuracy_sets_the_similar_threshold():
    base = with_seeds(BASE, val_accuracy=(0.96, 0.97, 0.98))  # median 0.97: similar on validation means >= 0.95
    df = table(
        base, run("nopeek-a10", 0.945, 0.6, val_acc=0.955), run("nopeek-a30", 0.945, 0.3, val_acc=0.945), *NOISE_OK
    )
    assert report.chosen_nopeek_run(report.aggregate(df)).run == "nopeek-a10"


def test_verdicts_read_medians_not_means():
    """A two-mode run (one seed of three collapses): the median describes the other two; a mean describes none."""
    nopeek = with_seeds(
        run("nopeek-a100", 0.94, 0.2, attack=0.1),
        val_accuracy=(0.94, 0.945, 0.11),
        test_accuracy=(0.94, 0.945, 0.11),
        collapsed=(0, 0, 1),
        leakage_dcor=(0.2, 0.3, 0.05),
        attack_accuracy=(0.12, 0.1, 0.95),
    )
    df = table(BASE, nopeek, *NOISE_OK)
    agg = report.aggregate(df).set_index("run")
    assert agg.loc["nopeek-a100", "test_accuracy"] == pytest.approx(0.94)  # the mean, 0.665, is not similar
    assert agg.loc["nopeek-a100", "n_collapsed"] == 1
    # median accuracy similar, median DCOR 0.2 <= 0.35; median attack accuracy 0.12 fails (mean 0.39: partial)
    assert verdicts(df) == {"dcor": "reproduced", "reconstruction": "reproduced", "noise": "reproduced"}
    assert (
        "chosen nopeek-a100: attack accuracy 0.120 [0.100, 0.950]" in claims(df, CTX).loc["reconstruction", "this_run"]
    )
    md = replication_report(df, CTX)
    assert "| nopeek-a100 | 3 | 1 | 0.940 [0.110, 0.945] | 0.940 [0.110, 0.945] |" in md


# --- claim 2: reconstruction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nopeek, verdict",
    [
        ([run("nopeek-a100", 0.94, 0.3, attack=0.12, mse=0.05)], "reproduced"),
        ([run("nopeek-a100", 0.94, 0.3, attack=0.4, mse=0.012)], "partly"),  # chosen run partial
        (
            [run("nopeek-a10", 0.94, 0.8, attack=0.9, mse=0.011), run("nopeek-a1000", 0.2, 0.2, attack=0.1, mse=0.05)],
            "partly",
        ),  # only a low-accuracy run fails
        ([run("nopeek-a100", 0.94, 0.8, attack=0.9, mse=0.025)], "partly"),  # MSE x2.5
        ([run("nopeek-a100", 0.94, 0.8, attack=0.9, mse=0.012)], "not reproduced"),
    ],
)
def test_reconstruction_claim(nopeek, verdict):
    df = table(BASE, *nopeek, *NOISE_OK)
    assert verdicts(df)["reconstruction"] == verdict
    text = claims(df, CTX).loc["reconstruction", "this_run"]
    assert "baseline: attack accuracy 0.950 [0.942, 0.954]" in text and "judged by attack accuracy" in text


def test_reconstruction_claim_not_reproduced_when_baseline_is_not_reconstructable():
    base = run("baseline", 0.95, 0.95, attack=0.4)
    df = table(base, run("nopeek-a100", 0.94, 0.3, attack=0.12, mse=0.015), *NOISE_OK)
    assert verdicts(df)["reconstruction"] == "not reproduced"


def test_reconstruction_is_judged_on_the_strongest_attack():
    """recon_* / attack_accuracy hold the strongest attack's numbers; one attack's own columns do not decide."""
    base = with_seeds(BASE, decoder_attack_accuracy=0.2, decoder_recon_mse=0.05)  # the decoder alone would fail here
    nopeek = with_seeds(
        run("nopeek-a100", 0.94, 0.3, attack=0.12, mse=0.05), decoder_attack_accuracy=0.9, decoder_recon_mse=0.011
    )  # ... and succeed here
    df = table(base, nopeek, *NOISE_OK)
    assert verdicts(df)["reconstruction"] == "reproduced"
    text = claims(df, CTX).loc["reconstruction", "this_run"]
    assert "baseline: attack accuracy 0.950 [0.942, 0.954], MSE 0.0100 [0.0099, 0.0100]" in text
    assert "chosen nopeek-a100: attack accuracy 0.120 [0.112, 0.124], MSE 0.0500 [0.0496, 0.0502]" in text


# --- claim 3: uniform noise ---------------------------------------------------------------------------

NOPEEK = run("nopeek-a100", 0.94, 0.2, attack=0.1)


@pytest.mark.parametrize(
    "noise, verdict",
    [
        (NOISE_OK, "reproduced"),
        (
            (
                run("noise-b4", 0.5, 0.6, attack=0.2),
                run("noise-b8", 0.1, 0.5, attack=0.1),
                run("noise-b16", 0.1, 0.5, attack=0.1),
            ),
            "partly",
        ),  # 2 of 3 protecting runs near chance
        ((run("noise-b4", 0.5, 0.6, attack=0.2), run("noise-b8", 0.1, 0.5, attack=0.1)), "not reproduced"),  # half
        ((run("noise-b1", 0.94, 0.9, attack=0.2), run("noise-b8", 0.1, 0.5, attack=0.1)), "not reproduced"),
    ],
)
def test_noise_claim(noise, verdict):
    assert verdicts(table(BASE, NOPEEK, *noise))["noise"] == verdict


def test_noise_claim_without_protection_cannot_be_judged():
    df = table(BASE, NOPEEK, run("noise-b1", 0.93, 0.9, attack=0.9), run("noise-b2", 0.6, 0.8, attack=0.6))
    row = claims(df, CTX).loc["noise"]
    assert row.verdict == "cannot be judged"
    assert row.this_run.startswith("no noise level made the attack fail")
    assert "b = 1: accuracy 0.930 [0.922, 0.934], attack accuracy 0.900 [0.892, 0.904]" in row.this_run


# --- the Markdown ---------------------------------------------------------------------------------


def assert_no_nan(md: str) -> None:
    assert not re.search(r"\bnan\b", md, re.IGNORECASE), md


def test_report_has_every_section():
    df = table(BASE, NOPEEK, *NOISE_OK)
    md = replication_report(df, CTX)
    assert md.startswith("# Replication report: NoPeek on toy")
    assert "| claim | paper | this run (median [min, max] over 3 seeds) | verdict |" in md
    assert md.count("**reproduced**") == 3
    for crit in (
        "*similar accuracy* = median accuracy ≥ baseline median − 0.02",
        "lowest median validation DCOR among NoPeek runs with similar validation accuracy",
        "Reproduced when D ≤ 0.35",
        "D ≤ baseline median − 0.1",
        "at least 2× the baseline's",
        "chance + 0.5·(clean accuracy − chance)",
        "≤ chance + 0.25·(clean accuracy − chance)",
        "chance + 0.25·(baseline accuracy − chance)",
        "This report uses attack accuracy (chance 0.100, clean-image accuracy 0.990): succeeds at ≥ 0.545, "
        "fails at ≤ 0.323",
    ):
        assert crit in md, crit
    sections = [
        "## What was run",
        "## The paper's claims",
        "### When the criteria were fixed",
        "## Per run (median [min, max] over seeds)",
        "## The attacks: strongest, no-information baseline and budget",
        "## Leakage beside its floors",
        "## Every seed",
    ]
    assert [md.index(s) for s in sections] == sorted(md.index(s) for s in sections)
    assert (
        "| run | seeds | collapsed | val_accuracy | test_accuracy | val_leakage_dcor | leakage_dcor | "
        "leakage_dcor_unbiased | recon_mse | recon_ssim | attack_accuracy | authors_recon_mse | strongest attack | "
        "reconstruction (by attack accuracy) |"
    ) in md
    assert (
        "| baseline | 3 | 0 | 0.950 [0.942, 0.954] | 0.950 [0.942, 0.954] | 0.950 [0.942, 0.954] | "
        "0.950 [0.942, 0.954] | 0.900 [0.892, 0.904] | 0.0100 [0.0099, 0.0100] | 0.900 [0.892, 0.904] | "
        "0.950 [0.942, 0.954] | 0.0100 [0.0100, 0.0100] | ridge 3 | succeeds |"
    ) in md
    assert "| noise-b8 | 3 | 3 | 0.100 [0.092, 0.104] |" in md  # every seed within 0.05 of chance
    # this table has neither per-attack numbers nor floors
    assert "Per-attack numbers not measured in this table." in md and "Floors not measured in this table." in md
    assert "near 1" not in md and "close to 1 even for independent X and Z" in md
    assert "about 0 for independent data at any dimension" in md and "Székely & Rizzo 2014" in md
    assert "- a note" in md
    assert_no_nan(md)


def test_report_prints_the_criteria_history():
    history = report.CRITERIA_HISTORY
    assert history and all(len(entry) == 2 and all(entry) for entry in history)
    # the changes of 2026-12-02, each with its reason, are on record
    later = " ".join(what for when, what in history if when == "2026-12-02")
    for change in ("median", "validation", "strongest of three attacks", "independent judge"):
        assert change in later, change
    md = replication_report(table(BASE, NOPEEK, *NOISE_OK), CTX)
    start, end = md.index("### When the criteria were fixed"), md.index("## Per run")
    block = md[start:end]
    positions = [block.index(f"- {when}: {what}") for when, what in history]
    assert positions == sorted(positions)  # oldest first, as recorded


def test_report_has_the_per_seed_table():
    df = table(BASE, NOPEEK, *NOISE_OK)
    md = replication_report(df, CTX)
    every = md[md.index("## Every seed") :]
    assert (
        "| run | seed | val_accuracy | test_accuracy | val_leakage_dcor | leakage_dcor | recon_mse | recon_ssim | "
        "attack_accuracy | strongest attack | collapsed |"
    ) in every
    assert "| baseline | 0 | 0.942 | 0.942 | 0.942 | 0.942 | 0.0099 | 0.892 | 0.942 | ridge |  |" in every
    assert "| baseline | 2 | 0.954 | 0.954 | 0.954 | 0.954 | 0.0100 | 0.904 | 0.954 | ridge |  |" in every
    assert "| noise-b8 | 1 | 0.100 | 0.100 | 0.500 | 0.500 | 0.0100 | 0.050 | 0.100 | ridge | yes |" in every
    assert sum(line.startswith("| nopeek-a100 | ") for line in every.splitlines()) == 3
    assert sum(line.startswith("| ") for line in every.splitlines()) == 1 + len(df)  # the head, one row per seed


FLOORS = dict(floor_label_dcor=0.31, floor_label_batch_dcor=0.62, leakage_dcor_shuffled=0.45, batch_dcor_shuffled=0.9)


def test_report_has_the_floors_table():
    base = with_seeds(BASE, batch_dcor=(0.975, 0.98, 0.985), **FLOORS)
    nopeek = with_seeds(NOPEEK, batch_dcor=(0.7, 0.72, 0.71), **{**FLOORS, "leakage_dcor_shuffled": 0.15})
    noise = [with_seeds(r, batch_dcor=0.9, **FLOORS) for r in NOISE_OK]
    ctx = dataclasses.replace(CTX, notes=[], batch_size=64, n_test=1000)
    md = replication_report(table(base, nopeek, *noise), ctx)
    floors = md[md.index("## Leakage beside its floors") : md.index("## Every seed")]
    assert (
        "| Z | DCOR per batch (n = 64, mean over test batches) | DCOR, whole test set (n = 1000) | "
        "bias-corrected dCor², whole test set |"
    ) in floors
    assert "| label only (one-hot class, nothing else of X) | 0.620 | 0.310 | – |" in floors
    assert (
        "| baseline | 0.980 [0.975, 0.985] (shuffled 0.900 [0.900, 0.900]) | 0.950 [0.942, 0.954] "
        "(shuffled 0.450 [0.450, 0.450]) | 0.900 [0.892, 0.904] |"
    ) in floors
    assert (
        "| nopeek-a100 | 0.710 [0.700, 0.720] (shuffled 0.900 [0.900, 0.900]) | 0.200 [0.192, 0.204] "
        "(shuffled 0.150 [0.150, 0.150]) | 0.040 [0.032, 0.044] |"
    ) in floors
    assert "at n = 64 the label-only floor is 0.620, over the test set 0.310." in floors
    assert "The paper's 0.19, 0.33" in floors
    assert_no_nan(md)
    # the per-seed table then shows the per-batch DCOR too
    assert "| nopeek-a100 | 1 | 0.940 | 0.940 | 0.200 | 0.200 | 0.720 |" in md
    # without the sample sizes in the context the headers say what n is
    md2 = replication_report(table(base, nopeek, *noise), CTX)
    assert "DCOR per batch (n = the training batch size, mean over test batches)" in md2
    assert "DCOR, whole test set (n = the test set)" in md2


def test_report_has_the_attacks_table():
    per_attack = dict(
        decoder_recon_mse=(0.011, 0.012, 0.013),
        ridge_recon_mse=0.01,
        mean_recon_mse=0.06,
        decoder_steps=(400, 500, 600),
        decoder_hit_cap=(0, 1, 0),
        ridge_on_edge=0,
        decoder_budget_25=(1.2, 1.1, 1.3),
        decoder_budget_50=1.0,
    )
    base = with_seeds(BASE, **per_attack)
    # a collapsed model: the strongest attack on the held-out slice is worse than the mean image on test in one seed
    worse = with_seeds(
        run("nopeek-a1000", 0.1, 0.1, attack=0.1, strongest="mean"),
        recon_mse=(0.05, 0.07, 0.05),
        strongest_attack=("mean", "decoder", "mean"),
        **{**per_attack, "mean_recon_mse": 0.05, "ridge_on_edge": (1, 1, 0)},
    )
    noise = [with_seeds(r, **per_attack) for r in NOISE_OK]
    md = replication_report(table(base, with_seeds(NOPEEK, **per_attack), worse, *noise), CTX)
    attacks = md[md.index("## The attacks") : md.index("## Leakage beside its floors")]
    assert (
        "| run | decoder MSE | ridge MSE | mean-image MSE (no information) | strongest (held-out slice) | "
        "seeds where the strongest is worse than the mean image on test | decoder steps | decoder hit its step cap | "
        "ridge r at a grid end | decoder budget ¼ | decoder budget ½ |"
    ) in attacks
    assert (
        "| baseline | 0.0120 [0.0110, 0.0130] | 0.0100 [0.0100, 0.0100] | 0.0600 [0.0600, 0.0600] | ridge 3 | "
        "0 of 3 | 500 [400, 600] | 1 of 3 | 0 of 3 | 1.200 [1.100, 1.300] | 1.000 [1.000, 1.000] |"
    ) in attacks
    assert (
        "| nopeek-a1000 | 0.0120 [0.0110, 0.0130] | 0.0100 [0.0100, 0.0100] | 0.0500 [0.0500, 0.0500] | "
        "mean 2, decoder 1 | 1 of 3 | 500 [400, 600] | 1 of 3 | 2 of 3 |" in attacks
    )
    assert_no_nan(md)


def test_report_header_describes_the_judge():
    judge = {"seed": 7, "val_accuracy": 0.993, "best_epoch": 4, "epochs": 20, "hit_cap": False}
    ctx = dataclasses.replace(CTX, clean_accuracy=0.991, notes=[], judge=judge)
    md = replication_report(table(BASE, NOPEEK, *NOISE_OK), ctx)
    assert (
        "- Judge (attack accuracy): accuracy on clean test images 0.991; its own network and seed 7, best "
        "validation accuracy 0.993 at epoch 4 of 20 (early stopping)."
    ) in md
    capped = ReportContext(**{**ctx.__dict__, "judge": {**ctx.judge, "best_epoch": 20, "hit_cap": True}})
    assert "at epoch 20 of 20 (stopped by its epoch cap)" in replication_report(table(BASE, NOPEEK, *NOISE_OK), capped)
    assert "- Judge (attack accuracy): accuracy on clean test images 0.990.\n" in replication_report(
        table(BASE, NOPEEK, *NOISE_OK), CTX
    )


def test_claims_frame():
    c = claims(table(BASE, NOPEEK, *NOISE_OK), CTX)
    assert list(c.columns) == ["claim", "paper", "this_run", "verdict", "criterion"]
    assert list(c.index) == ["dcor", "reconstruction", "noise"]
    assert set(c.verdict) <= {"reproduced", "partly", "not reproduced", "not measured"}


def test_without_attack_accuracy_falls_back_to_ssim():
    df = table(BASE, run("nopeek-a100", 0.94, 0.2, ssim=0.1), *NOISE_OK).drop(columns="attack_accuracy")
    md = replication_report(df, CTX)
    assert "SSIM, because attack accuracy was not measured in this table" in md
    assert "judged by SSIM" in md and "reconstruction (by SSIM)" in md
    assert "not measured" in md
    # baseline SSIM 0.9 succeeds, chosen 0.1 fails; noise-b8 SSIM 0.05 protects at chance
    assert verdicts(df) == {"dcor": "reproduced", "reconstruction": "reproduced", "noise": "reproduced"}
    assert_no_nan(md)


def test_without_clean_accuracy_falls_back_to_ssim():
    ctx = ReportContext(
        dataset="toy", n_classes=10, arch="a", cut_layer=1, epochs=1, seeds=[0, 1, 2], leak_fraction=0.5
    )
    md = replication_report(table(BASE, NOPEEK, *NOISE_OK), ctx)
    assert "SSIM, because the attack classifier's clean accuracy is not given" in md


def test_old_table_renders_with_not_measured():
    df = table(BASE, NOPEEK, *NOISE_OK)[["run", "defence", "seed", "test_accuracy", "leakage_dcor"]]
    md = replication_report(df, CTX)
    assert "not measured" in md and "## Per run" in md
    assert "| baseline | 3 | – | 0.950 [0.942, 0.954] | 0.950 [0.942, 0.954] | – | not measured |" in md
    v = verdicts(df)
    assert v["dcor"] == "reproduced" and v["reconstruction"] == "not measured" and v["noise"] == "not measured"
    assert "selected on test" in claims(df, CTX).loc["dcor", "this_run"]
    assert_no_nan(md)


def test_missing_baseline_is_one_clear_error():
    df = table(NOPEEK, *NOISE_OK)
    with pytest.raises(
        ValueError,
        match=r"no baseline row \(defence 'none', run 'baseline'\); runs present: "
        r"nopeek-a100 \(nopeek\), noise-b1 \(noise\), noise-b8 \(noise\)",
    ):
        replication_report(df, CTX)
    with pytest.raises(ValueError, match="lacks column.s. test_accuracy"):
        claims(table(BASE).drop(columns="test_accuracy"), CTX)


def test_aggregate_is_summary_aggregate_after_the_checks():
    df = table(BASE, NOPEEK, *NOISE_OK)
    pd.testing.assert_frame_equal(report.aggregate(df), summary.aggregate(df))
    with pytest.raises(ValueError, match="summary table has no rows"):
        report.aggregate(df.iloc[:0])


def test_fmt():
    assert report.fmt(0.123456) == "0.123"
    assert report.fmt(0.123456, 4) == "0.1235"
    assert report.fmt(512.0, 0) == "512"
    for missing in (None, float("nan"), pd.NA):
        assert report.fmt(missing) == "not measured"
        assert report.fmt(missing, 4) == "not measured"


def test_criteria_constants_are_the_agreed_ones():
    assert report.SIMILAR_ACCURACY_DROP == 0.02
    assert (report.RECON_SUCCEEDS_FRACTION, report.RECON_FAILS_FRACTION) == (0.5, 0.25)
    assert (report.SSIM_SUCCEEDS, report.SSIM_FAILS) == (0.5, 0.2)
    assert (report.DCOR_TARGET, report.DCOR_MIN_DROP, report.MSE_RATIO) == (0.35, 0.10, 2.0)
    assert report.NEAR_CHANCE_FRACTION == 0.25
    assert summary.COLLAPSE_MARGIN == 0.05


# --- the real table -----------------------------------------------------------------------------


def test_real_summary_renders(root):
    df = pd.read_csv(root / "results" / "summary.csv")
    ctx = ReportContext(
        dataset="mnist-sample",
        n_classes=10,
        arch="split CNN",
        cut_layer=1,
        epochs=5,
        seeds=sorted(df.seed.unique().tolist()),
        leak_fraction=0.5,
    )
    md = replication_report(df, ctx)
    for r in df.run.unique():
        assert f"| {r} |" in md
    for _, r in df.iterrows():
        assert f"| {r.run} | {int(r.seed)} |" in md[md.index("## Every seed") :]
    if "attack_accuracy" not in df.columns:
        assert "judged by SSIM" in md
    assert set(claims(df, ctx).verdict) <= set(VERDICTS)
    assert_no_nan(md)
    # the medians and sample stds are pandas' own over the seeds of each run
    ours = report.aggregate(df).set_index("run")
    by_run = df.groupby("run", sort=False)
    for m in (m for m in report.METRICS if m in df.columns):
        pd.testing.assert_series_equal(ours[m], by_run[m].median().reindex(ours.index), check_names=False)
        pd.testing.assert_series_equal(ours[m + "_std"], by_run[m].std(ddof=1).reindex(ours.index), check_names=False)


def test_no_similar_accuracy_nopeek_run():
    df = table(BASE, run("nopeek-a1000", 0.5, 0.6, attack=0.1), *NOISE_OK)
    c = claims(df, CTX)
    assert c.loc["dcor", "this_run"].startswith("no NoPeek run keeps similar accuracy")
    assert "chosen NoPeek run undefined: no NoPeek run with similar accuracy" in c.loc["reconstruction", "this_run"]
    assert c.loc["reconstruction", "verdict"] == "partly"  # baseline succeeds, a low-accuracy NoPeek run fails
