"""The replication report: verdicts computed from hand-made tables, and rendering of the real one."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from nopeek_repro import report, summary
from nopeek_repro.report import ReportContext, claims, replication_report

CTX = ReportContext(dataset="toy", n_classes=10, clean_accuracy=0.99, arch="split CNN", cut_layer=1,
                    epochs=5, seeds=[0, 1, 2], leak_fraction=0.5, notes=["a note"])
# chance 0.1, clean 0.99: reconstruction succeeds at attack accuracy >= 0.545, fails at <= 0.3225.
# With a baseline accuracy of 0.95: similar accuracy >= 0.93, near chance <= 0.3125.

SPREAD = (-0.004, 0.0, 0.004)  # per-seed offsets: three seeds, mean = the value given


def run(name: str, acc: float, dcor: float, attack: float = 0.9, mse: float = 0.01, ssim: float = 0.9,
        unbiased: float | None = None) -> list[dict]:
    """Three seed rows of one run; the defence and its parameter come from the run name."""
    spec = {"baseline": ("none", 0.0, 0.0)}.get(name)
    if spec is None:
        kind, val = name.split("-")
        spec = ("nopeek", float(val[1:]), 0.0) if kind == "nopeek" else ("noise", 0.0, float(val[1:]))
    return [{"run": name, "defence": spec[0], "alpha_dcor": spec[1], "noise": spec[2], "seed": s,
             "test_accuracy": acc + d, "leakage_dcor": dcor + d,
             "leakage_dcor_unbiased": (dcor ** 2 if unbiased is None else unbiased) + d,
             "recon_mse": mse * (1 + d), "recon_psnr": 20.0 + d, "recon_ssim": ssim + d,
             "attack_accuracy": attack + d, "authors_recon_mse": mse, "authors_recon_ssim": ssim}
            for s, d in enumerate(SPREAD)]


def table(*runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for r in runs for row in r])


BASE = run("baseline", 0.95, 0.95, attack=0.95, mse=0.01, ssim=0.9)
NOISE_OK = (run("noise-b1", 0.93, 0.9, attack=0.9), run("noise-b8", 0.1, 0.5, attack=0.1, ssim=0.05))


def verdicts(df: pd.DataFrame, ctx: ReportContext = CTX) -> dict[str, str]:
    return claims(df, ctx).verdict.to_dict()


# --- claim 1: DCOR ---------------------------------------------------------------------------------

@pytest.mark.parametrize("nopeek, verdict", [
    ([run("nopeek-a100", 0.94, 0.2, attack=0.1)], "reproduced"),
    ([run("nopeek-a100", 0.94, 0.8, attack=0.1)], "partly"),  # 0.8 <= 0.95 - 0.10
    ([run("nopeek-a10", 0.945, 0.93), run("nopeek-a1000", 0.1, 0.1, attack=0.1)], "partly"),  # 0.35 only at low accuracy
    ([run("nopeek-a10", 0.945, 0.93)], "not reproduced"),
    ([run("nopeek-a1000", 0.5, 0.6, attack=0.1)], "not reproduced"),  # no similar accuracy, nothing <= 0.35
])
def test_dcor_claim(nopeek, verdict):
    assert verdicts(table(BASE, *nopeek, *NOISE_OK))["dcor"] == verdict


def test_dcor_claim_picks_lowest_dcor_with_similar_accuracy():
    df = table(BASE, run("nopeek-a10", 0.945, 0.6), run("nopeek-a30", 0.935, 0.3), run("nopeek-a100", 0.5, 0.1))
    agg = report.aggregate(df)
    assert report.chosen_nopeek_run(agg).run == "nopeek-a30"
    text = claims(df, CTX).loc["dcor", "this_run"]
    assert "0.950 ± 0.003 → 0.300 ± 0.003 (nopeek-a30" in text
    assert "lowest DCOR at any accuracy: nopeek-a100" in text
    assert "bias-corrected dCor²" in text


# --- claim 2: reconstruction ------------------------------------------------------------------------

@pytest.mark.parametrize("nopeek, verdict", [
    ([run("nopeek-a100", 0.94, 0.3, attack=0.12, mse=0.05)], "reproduced"),
    ([run("nopeek-a100", 0.94, 0.3, attack=0.4, mse=0.012)], "partly"),  # chosen run partial
    ([run("nopeek-a10", 0.94, 0.8, attack=0.9, mse=0.011),
      run("nopeek-a1000", 0.2, 0.2, attack=0.1, mse=0.05)], "partly"),  # only a low-accuracy run fails
    ([run("nopeek-a100", 0.94, 0.8, attack=0.9, mse=0.025)], "partly"),  # MSE x2.5
    ([run("nopeek-a100", 0.94, 0.8, attack=0.9, mse=0.012)], "not reproduced"),
])
def test_reconstruction_claim(nopeek, verdict):
    df = table(BASE, *nopeek, *NOISE_OK)
    assert verdicts(df)["reconstruction"] == verdict
    text = claims(df, CTX).loc["reconstruction", "this_run"]
    assert "baseline: attack accuracy 0.950 ± 0.003" in text and "judged by attack accuracy" in text


def test_reconstruction_claim_not_reproduced_when_baseline_is_not_reconstructable():
    base = run("baseline", 0.95, 0.95, attack=0.4)
    df = table(base, run("nopeek-a100", 0.94, 0.3, attack=0.12, mse=0.015), *NOISE_OK)
    assert verdicts(df)["reconstruction"] == "not reproduced"


# --- claim 3: uniform noise ---------------------------------------------------------------------------

NOPEEK = run("nopeek-a100", 0.94, 0.2, attack=0.1)


@pytest.mark.parametrize("noise, verdict", [
    (NOISE_OK, "reproduced"),
    ((run("noise-b4", 0.5, 0.6, attack=0.2), run("noise-b8", 0.1, 0.5, attack=0.1),
      run("noise-b16", 0.1, 0.5, attack=0.1)), "partly"),  # 2 of 3 protecting runs near chance
    ((run("noise-b4", 0.5, 0.6, attack=0.2), run("noise-b8", 0.1, 0.5, attack=0.1)), "not reproduced"),  # half
    ((run("noise-b1", 0.94, 0.9, attack=0.2), run("noise-b8", 0.1, 0.5, attack=0.1)), "not reproduced"),
])
def test_noise_claim(noise, verdict):
    assert verdicts(table(BASE, NOPEEK, *noise))["noise"] == verdict


def test_noise_claim_without_protection_cannot_be_judged():
    df = table(BASE, NOPEEK, run("noise-b1", 0.93, 0.9, attack=0.9), run("noise-b2", 0.6, 0.8, attack=0.6))
    row = claims(df, CTX).loc["noise"]
    assert row.verdict == "not reproduced"
    assert row.this_run.startswith("cannot be judged: no noise level made the attack fail")
    assert "b = 1: accuracy 0.930 ± 0.003, attack accuracy 0.900 ± 0.003" in row.this_run


# --- the Markdown ---------------------------------------------------------------------------------

def assert_no_nan(md: str) -> None:
    assert not re.search(r"\bnan\b", md, re.IGNORECASE), md


def test_report_has_every_section():
    df = table(BASE, NOPEEK, *NOISE_OK)
    md = replication_report(df, CTX)
    assert md.startswith("# Replication report: NoPeek on toy")
    assert "| claim | paper | this run (mean ± std over 3 seeds) | verdict |" in md
    assert md.count("**reproduced**") == 3
    for crit in ("mean test accuracy ≥ baseline mean − 0.02", "Reproduced when D ≤ 0.35",
                 "D ≤ baseline mean − 0.1", "at least 2× the baseline's", "chance + 0.5·(clean accuracy − chance)",
                 "≤ chance + 0.25·(clean accuracy − chance)", "chance + 0.25·(baseline accuracy − chance)",
                 "This report uses attack accuracy (chance 0.100, clean-image accuracy 0.990): succeeds at ≥ 0.545, "
                 "fails at ≤ 0.323"):
        assert crit in md, crit
    assert "| run | seeds | test_accuracy | leakage_dcor |" in md
    assert "| baseline | 3 | 0.950 ± 0.003 | 0.950 ± 0.003 | 0.902 ± 0.003 | 0.0100 ± 0.0000 |" in md
    assert "## Leakage: the paper's estimator and the bias-corrected one" in md
    assert "| nopeek-a100 | 0.200 ± 0.003 | 0.040 ± 0.003 |" in md
    assert "near 1" not in md and "close to 1 even for independent X and Z" in md
    assert "about 0 for independent data at any dimension" in md and "Székely & Rizzo 2014" in md
    assert "- a note" in md
    assert_no_nan(md)


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
    ctx = ReportContext(dataset="toy", n_classes=10, arch="a", cut_layer=1, epochs=1, seeds=[0, 1, 2],
                        leak_fraction=0.5)
    md = replication_report(table(BASE, NOPEEK, *NOISE_OK), ctx)
    assert "SSIM, because the attack classifier's clean accuracy is not given" in md


def test_old_table_renders_with_not_measured():
    df = table(BASE, NOPEEK, *NOISE_OK)[["run", "defence", "seed", "test_accuracy", "leakage_dcor"]]
    md = replication_report(df, CTX)
    assert "not measured" in md and "## Per run" in md
    v = verdicts(df)
    assert v["dcor"] == "reproduced" and v["reconstruction"] == "not measured" and v["noise"] == "not measured"
    assert_no_nan(md)


def test_missing_baseline_is_one_clear_error():
    df = table(NOPEEK, *NOISE_OK)
    with pytest.raises(ValueError, match=r"no baseline row \(defence 'none', run 'baseline'\); runs present: "
                                         r"nopeek-a100 \(nopeek\), noise-b1 \(noise\), noise-b8 \(noise\)"):
        replication_report(df, CTX)
    with pytest.raises(ValueError, match="lacks column.s. test_accuracy"):
        claims(table(BASE).drop(columns="test_accuracy"), CTX)


def test_criteria_constants_are_the_agreed_ones():
    assert report.SIMILAR_ACCURACY_DROP == 0.02
    assert (report.RECON_SUCCEEDS_FRACTION, report.RECON_FAILS_FRACTION) == (0.5, 0.25)
    assert (report.SSIM_SUCCEEDS, report.SSIM_FAILS) == (0.5, 0.2)
    assert (report.DCOR_TARGET, report.DCOR_MIN_DROP, report.MSE_RATIO) == (0.35, 0.10, 2.0)
    assert report.NEAR_CHANCE_FRACTION == 0.25


# --- the real table -----------------------------------------------------------------------------

def test_real_summary_renders(root):
    df = pd.read_csv(root / "results" / "summary.csv")
    ctx = ReportContext(dataset="mnist-sample", n_classes=10, arch="split CNN", cut_layer=1, epochs=5,
                        seeds=[0, 1, 2], leak_fraction=0.5)
    md = replication_report(df, ctx)
    for r in df.run.unique():
        assert f"| {r} |" in md
    if "attack_accuracy" not in df.columns:
        assert "judged by SSIM" in md
    assert set(claims(df, ctx).verdict) <= {"reproduced", "partly", "not reproduced", "not measured"}
    assert_no_nan(md)
    # the means and stds agree with summary.aggregate where the columns overlap
    ours = report.aggregate(df).set_index("run")
    theirs = summary.aggregate(df[[c for c in summary.COLUMNS if c in df.columns]]).set_index("run") \
        if set(summary.COLUMNS) <= set(df.columns) else None
    if theirs is not None:
        for m in report.METRICS:
            pd.testing.assert_series_equal(ours[m], theirs[m], check_names=False)
            pd.testing.assert_series_equal(ours[m + "_std"], theirs[m + "_std"], check_names=False)


def test_no_similar_accuracy_nopeek_run():
    df = table(BASE, run("nopeek-a1000", 0.5, 0.6, attack=0.1), *NOISE_OK)
    c = claims(df, CTX)
    assert c.loc["dcor", "this_run"].startswith("no NoPeek run keeps similar accuracy")
    assert "chosen NoPeek run undefined: no NoPeek run with similar accuracy" in c.loc["reconstruction", "this_run"]
    assert c.loc["reconstruction", "verdict"] == "partly"  # baseline succeeds, a low-accuracy NoPeek run fails
