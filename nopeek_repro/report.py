"""The replication report: the paper's claims, this run's numbers and a computed verdict for each.

:func:`replication_report` turns the tidy summary table (one row per trained model and seed, see
:mod:`nopeek_repro.summary`) and a :class:`ReportContext` into Markdown; :func:`claims` gives the
claims table as a DataFrame (columns ``claim, paper, this_run, verdict, criterion``, index
``dcor``, ``reconstruction``, ``noise``) for tests and notebooks.

Every verdict is computed from the numbers by the criteria below, which are module constants
fixed before any result was looked at; none is written by hand. A verdict is one of
``reproduced``, ``partly``, ``not reproduced``, or ``not measured`` when the table lacks the
numbers a claim needs (e.g. a table with no NoPeek runs).

Means and standard deviations are over seeds (``ddof=0``, as :func:`nopeek_repro.summary.aggregate`).
Optional columns (``leakage_dcor_unbiased``, ``recon_*``, ``attack_accuracy``,
``authors_recon_*``) may be missing from older tables; the report then says "not measured".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

# --- criteria (fixed in advance; do not tune to data) -------------------------------------------

SIMILAR_ACCURACY_DROP = 0.02
"""A defended run has "similar accuracy" when its mean test accuracy is at least the baseline's
mean minus this (absolute, in accuracy units: 0.02 = 2 points)."""

RECON_SUCCEEDS_FRACTION = 0.5
"""Reconstruction "succeeds" when the mean attack accuracy (a clean-image classifier run on the
reconstructions) is at least chance + this fraction of (clean accuracy - chance)."""

RECON_FAILS_FRACTION = 0.25
"""Reconstruction "fails" when the mean attack accuracy is at most chance + this fraction of
(clean accuracy - chance); between this and :data:`RECON_SUCCEEDS_FRACTION` it is "partial"."""

SSIM_SUCCEEDS = 0.5
"""Fallback when attack accuracy is not measured: reconstruction succeeds at mean SSIM >= this."""

SSIM_FAILS = 0.2
"""Fallback when attack accuracy is not measured: reconstruction fails at mean SSIM <= this."""

DCOR_TARGET = 0.35
"""Claim 1 is reproduced when the chosen NoPeek run's mean leakage DCOR is at most this (the
paper reports 0.19 and 0.33)."""

DCOR_MIN_DROP = 0.10
"""Claim 1 is partly reproduced when the chosen NoPeek run's mean DCOR is at least this much below
the baseline's mean."""

MSE_RATIO = 2.0
"""Claim 2 is partly reproduced when the chosen NoPeek run's mean reconstruction MSE is at least
this many times the baseline's."""

NEAR_CHANCE_FRACTION = 0.25
"""Claim 3: a run is "near chance" when its mean test accuracy is at most
chance + this fraction of (baseline accuracy - chance)."""

PAPER_DCOR = ((0.95, 0.19), (0.92, 0.33))
"""The workshop paper's DCOR before -> after NoPeek on its two image data sets."""

_EPS = 1e-9  # float slack so that a number printed equal to a threshold is judged equal to it

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "partly", "not reproduced", "not measured"

REQUIRED = ("run", "defence", "test_accuracy")
"""Columns the report cannot do without."""

METRICS = (
    "test_accuracy", "leakage_dcor", "leakage_dcor_unbiased", "recon_mse", "recon_psnr", "recon_ssim",
    "attack_accuracy", "authors_recon_mse", "authors_recon_ssim",
)
"""Every metric the per-run table shows, in order; absent ones are shown as "not measured"."""

NOT_MEASURED_TEXT = "not measured"


@dataclass(kw_only=True)
class ReportContext:
    """What was run, for the report's header and the chance-relative thresholds.

    ``clean_accuracy`` is the attack classifier's accuracy on clean test images (None when it was
    not measured; the reconstruction criteria then fall back to SSIM).
    """

    dataset: str
    n_classes: int
    arch: str
    cut_layer: int | str
    epochs: int
    seeds: list[int]
    leak_fraction: float
    clean_accuracy: float | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_classes < 2:
            raise ValueError(f"ReportContext.n_classes must be >= 2, got {self.n_classes}")

    @property
    def chance(self) -> float:
        """Chance accuracy, 1 / n_classes."""
        return 1.0 / self.n_classes


# --- numbers -------------------------------------------------------------------------------------

def _isnum(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and not pd.isna(x)


def _digits(metric: str) -> int:
    return 4 if metric.endswith("mse") else 3


def fmt(mean, std=None, digits: int = 3) -> str:
    """``mean ± std`` with ``digits`` decimals, or "not measured" when the mean is absent."""
    if not _isnum(mean):
        return NOT_MEASURED_TEXT
    if std is None or not _isnum(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def aggregate(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=0) over seeds of every metric in :data:`METRICS`, one row per run.

    Like :func:`nopeek_repro.summary.aggregate` but tolerant of missing metric columns (they come
    out as all-NaN ``<m>`` and ``<m>_std``) and of missing ``alpha_dcor`` / ``noise`` columns.
    Runs keep their first-appearance order.
    """
    _check(summary)
    df = summary.copy()
    for m in METRICS:
        if m not in df.columns:
            df[m] = float("nan")
        df[m] = pd.to_numeric(df[m], errors="coerce")
    for c in ("alpha_dcor", "noise"):
        if c not in df.columns:
            df[c] = float("nan")
    g = df.groupby("run", sort=False)
    out = g[["defence", "alpha_dcor", "noise"]].first()
    out["n_seeds"] = g.size()
    out = out.join(g[list(METRICS)].mean()).join(g[list(METRICS)].std(ddof=0).add_suffix("_std"))
    return out.reset_index()


def _check(summary: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in summary.columns]
    if missing:
        raise ValueError(f"summary table lacks column(s) {', '.join(missing)}; "
                         f"the report needs at least {', '.join(REQUIRED)}")
    if summary.empty:
        raise ValueError("summary table has no rows: nothing to report")


def _baseline(agg: pd.DataFrame) -> pd.Series:
    base = agg[agg.defence == "none"]
    if base.empty:
        present = ", ".join(f"{r} ({d})" for r, d in zip(agg.run, agg.defence))
        raise ValueError("summary table has no baseline row (defence 'none', run 'baseline'); "
                         f"runs present: {present}. Every claim compares a defence with the "
                         "undefended baseline, so the baseline must be trained and attacked first")
    if len(base) > 1:
        raise ValueError(f"summary table has more than one undefended run ({', '.join(base.run)}); "
                         "expected exactly one baseline")
    return base.iloc[0]


@dataclass(frozen=True)
class ReconMeasure:
    """Which number decides whether a reconstruction succeeds, and its two thresholds."""

    column: str
    succeeds_at: float
    fails_at: float
    why: str

    @property
    def label(self) -> str:
        return "attack accuracy" if self.column == "attack_accuracy" else "SSIM"

    def outcome(self, row: pd.Series) -> str | None:
        """"succeeds", "partial", "fails", or None when the run lacks the number."""
        v = row.get(self.column)
        if not _isnum(v):
            return None
        if v >= self.succeeds_at - _EPS:
            return "succeeds"
        if v <= self.fails_at + _EPS:
            return "fails"
        return "partial"


def recon_measure(agg: pd.DataFrame, context: ReportContext) -> ReconMeasure:
    """Attack accuracy when the table has it and the context gives a clean accuracy above chance,
    otherwise the SSIM fallback (with the reason)."""
    chance, clean = context.chance, context.clean_accuracy
    has_attack = "attack_accuracy" in agg.columns and agg["attack_accuracy"].notna().any()
    if has_attack and _isnum(clean) and clean > chance:
        span = clean - chance
        return ReconMeasure("attack_accuracy", chance + RECON_SUCCEEDS_FRACTION * span,
                            chance + RECON_FAILS_FRACTION * span,
                            f"attack accuracy (chance {chance:.3f}, clean-image accuracy {clean:.3f})")
    if not has_attack:
        why = "attack accuracy was not measured in this table"
    elif not _isnum(clean):
        why = "the attack classifier's clean accuracy is not given"
    else:
        why = f"the attack classifier's clean accuracy {clean:.3f} is not above chance {chance:.3f}"
    return ReconMeasure("recon_ssim", SSIM_SUCCEEDS, SSIM_FAILS, f"SSIM, because {why}")


def _similar(row: pd.Series, base: pd.Series) -> bool:
    return _isnum(row.test_accuracy) and row.test_accuracy >= base.test_accuracy - SIMILAR_ACCURACY_DROP - _EPS


def chosen_nopeek_run(agg: pd.DataFrame) -> pd.Series | None:
    """The NoPeek run with the lowest mean leakage DCOR among those with similar accuracy (None if none)."""
    base = _baseline(agg)
    cand = agg[(agg.defence == "nopeek") & agg.leakage_dcor.notna()]
    cand = cand[[_similar(r, base) for _, r in cand.iterrows()]]
    if cand.empty:
        return None
    return cand.loc[cand.leakage_dcor.idxmin()]


# --- claims --------------------------------------------------------------------------------------

def _m(row: pd.Series, metric: str) -> str:
    return fmt(row.get(metric), row.get(metric + "_std"), _digits(metric))


def _acc_vs(row: pd.Series, base: pd.Series) -> str:
    return f"accuracy {_m(row, 'test_accuracy')} vs baseline {_m(base, 'test_accuracy')}"


def _claim_dcor(agg: pd.DataFrame, base: pd.Series) -> tuple[str, str]:
    nopeek = agg[agg.defence == "nopeek"]
    if nopeek.empty:
        return NOT_MEASURED, "no NoPeek runs in the table"
    if not _isnum(base.leakage_dcor) or nopeek.leakage_dcor.isna().all():
        return NOT_MEASURED, "leakage DCOR not measured"
    chosen = chosen_nopeek_run(agg)
    reached = nopeek[nopeek.leakage_dcor <= DCOR_TARGET + _EPS]
    lowest = nopeek.loc[nopeek.leakage_dcor.idxmin()]
    similar_at = f"similar accuracy: ≥ {base.test_accuracy - SIMILAR_ACCURACY_DROP:.3f}"
    if chosen is None:
        text = (f"no NoPeek run keeps similar accuracy (baseline {_m(base, 'test_accuracy')}, {similar_at}); "
                f"baseline DCOR {_m(base, 'leakage_dcor')}")
    else:
        text = (f"DCOR {_m(base, 'leakage_dcor')} → {_m(chosen, 'leakage_dcor')} ({chosen.run}, "
                f"{_acc_vs(chosen, base)}, {similar_at}); bias-corrected dCor² {_m(base, 'leakage_dcor_unbiased')} → "
                f"{_m(chosen, 'leakage_dcor_unbiased')}")
    if chosen is None or lowest.run != chosen.run:
        text += (f"; lowest DCOR at any accuracy: {lowest.run} {_m(lowest, 'leakage_dcor')} "
                 f"({_acc_vs(lowest, base)})")
    if chosen is not None and chosen.leakage_dcor <= DCOR_TARGET + _EPS:
        return REPRODUCED, text
    if chosen is not None and chosen.leakage_dcor <= base.leakage_dcor - DCOR_MIN_DROP + _EPS:
        return PARTLY, text
    if not reached.empty:
        return PARTLY, text
    return NOT_REPRODUCED, text


def _recon_text(row: pd.Series, measure: ReconMeasure) -> str:
    outcome = measure.outcome(row) or f"{measure.label} {NOT_MEASURED_TEXT}"
    return (f"{row.run}: attack accuracy {_m(row, 'attack_accuracy')}, MSE {_m(row, 'recon_mse')}, "
            f"SSIM {_m(row, 'recon_ssim')} → {outcome}")


def _claim_recon(agg: pd.DataFrame, base: pd.Series, measure: ReconMeasure) -> tuple[str, str]:
    nopeek = agg[agg.defence == "nopeek"]
    if nopeek.empty:
        return NOT_MEASURED, "no NoPeek runs in the table"
    chosen = chosen_nopeek_run(agg)
    parts = [_recon_text(base, measure)]
    if chosen is not None:
        parts.append("chosen " + _recon_text(chosen, measure))
    else:
        why = ("leakage DCOR not measured" if nopeek.leakage_dcor.isna().all()
               else "no NoPeek run with similar accuracy")
        parts.append(f"chosen NoPeek run undefined: {why}")
    dissimilar_fail = [r.run for _, r in nopeek.iterrows()
                       if not _similar(r, base) and measure.outcome(r) == "fails"]
    if dissimilar_fail:
        parts.append(f"fails only without similar accuracy: {', '.join(dissimilar_fail)}")
    parts.append(f"judged by {measure.label}")
    text = "; ".join(parts)

    b_out = measure.outcome(base)
    c_out = measure.outcome(chosen) if chosen is not None else None
    mse_up = (chosen is not None and _isnum(base.get("recon_mse")) and _isnum(chosen.get("recon_mse"))
              and chosen.recon_mse >= MSE_RATIO * base.recon_mse - _EPS)
    if b_out == "succeeds" and c_out == "fails":
        return REPRODUCED, text
    if b_out == "succeeds" and (c_out == "partial" or (c_out != "fails" and dissimilar_fail)):
        return PARTLY, text
    if mse_up:
        return PARTLY, text
    if b_out is None or (chosen is not None and c_out is None):
        return NOT_MEASURED, text
    return NOT_REPRODUCED, text


def _noise_label(row: pd.Series) -> str:
    return f"b = {row.noise:g}" if _isnum(row.noise) else row.run


def _claim_noise(agg: pd.DataFrame, base: pd.Series, measure: ReconMeasure, chance: float) -> tuple[str, str]:
    noise = agg[agg.defence == "noise"]
    if noise.empty:
        return NOT_MEASURED, "no uniform-noise runs in the table"
    near_at = chance + NEAR_CHANCE_FRACTION * (base.test_accuracy - chance)
    items, protecting = [], []
    for _, r in noise.iterrows():
        out = measure.outcome(r)
        items.append(f"{_noise_label(r)}: accuracy {_m(r, 'test_accuracy')}, attack accuracy "
                     f"{_m(r, 'attack_accuracy')}, SSIM {_m(r, 'recon_ssim')} → "
                     f"{'protects' if out == 'fails' else (out or measure.label + ' ' + NOT_MEASURED_TEXT)}")
        if out == "fails":
            protecting.append(r)
    text = (f"{'; '.join(items)} (near chance: accuracy ≤ {near_at:.3f}; protects = reconstruction "
            f"fails by {measure.label})")
    if noise[measure.column].isna().all():
        return NOT_MEASURED, text
    if not protecting:
        return NOT_REPRODUCED, "cannot be judged: no noise level made the attack fail; " + text
    if any(_similar(r, base) for r in protecting):
        return NOT_REPRODUCED, text
    near = sum(r.test_accuracy <= near_at + _EPS for r in protecting)
    if near == len(protecting):
        return REPRODUCED, text
    if near > len(protecting) / 2:
        return PARTLY, text
    return NOT_REPRODUCED, text


def _criteria(measure: ReconMeasure, context: ReportContext) -> dict[str, str]:
    recon = (f"reconstruction *succeeds* for a run when its mean attack accuracy ≥ chance + "
             f"{RECON_SUCCEEDS_FRACTION:g}·(clean accuracy − chance), *fails* when ≤ chance + "
             f"{RECON_FAILS_FRACTION:g}·(clean accuracy − chance), and is *partial* in between; "
             f"without attack accuracy it succeeds at mean SSIM ≥ {SSIM_SUCCEEDS:g} and fails at ≤ "
             f"{SSIM_FAILS:g}. This report uses {measure.why}: succeeds at ≥ {measure.succeeds_at:.3f}, "
             f"fails at ≤ {measure.fails_at:.3f}")
    similar = (f"*similar accuracy* = mean test accuracy ≥ baseline mean − {SIMILAR_ACCURACY_DROP:g}")
    return {
        "dcor": (f"{similar}. D = the lowest mean leakage DCOR among NoPeek runs with similar accuracy "
                 f"(the *chosen NoPeek run*). Reproduced when D ≤ {DCOR_TARGET:g}; partly when "
                 f"D ≤ baseline mean − {DCOR_MIN_DROP:g}, or when some NoPeek run reaches ≤ "
                 f"{DCOR_TARGET:g} but not at similar accuracy; not reproduced otherwise (also when no "
                 f"NoPeek run has similar accuracy and none reaches {DCOR_TARGET:g})."),
        "reconstruction": (f"{recon}. Reproduced when the baseline's reconstruction succeeds and the "
                           f"chosen NoPeek run's fails; partly when the baseline's succeeds and either the "
                           f"chosen run's is partial or the chosen run's does not fail but that of a NoPeek "
                           f"run without similar accuracy does, or (regardless of the outcomes) when the "
                           f"chosen run's mean reconstruction MSE is at least {MSE_RATIO:g}× the baseline's; "
                           f"not reproduced otherwise."),
        "noise": (f"A noise run *protects* when its reconstruction fails (as above); it is *near chance* "
                  f"when its mean test accuracy ≤ chance + {NEAR_CHANCE_FRACTION:g}·(baseline accuracy − "
                  f"chance), chance = 1/{context.n_classes} = {context.chance:.3f}. Reproduced when at "
                  f"least one noise run protects and every protecting one is near chance; not reproduced "
                  f"when a protecting noise run keeps similar accuracy ({similar}); partly when some "
                  f"protecting run is not near chance but most (more than half) are; not reproduced "
                  f"otherwise, and when no noise run protects (the claim cannot be judged then)."),
    }


CLAIMS = {
    "dcor": ("NoPeek lowers DCOR from about 0.95 to 0.2–0.3 at similar accuracy",
             "0.95 → 0.19 and 0.92 → 0.33 on two image data sets, \"maintaining a similar "
             "classification accuracy\" (workshop version)"),
    "reconstruction": ("Decoder reconstructions succeed before NoPeek and fail after it",
                       "shown as images (decoder trained on 90% of the leaked test pairs, scored on "
                       "10%); no number given"),
    "noise": ("Uniform noise on the activations protects only at about chance accuracy",
              "UTKFace privacy-utility figure: the noise baseline protects only once the model is at "
              "chance accuracy; no number given"),
}
"""id -> (claim, what the paper reports)."""


def claims(summary: pd.DataFrame, context: ReportContext) -> pd.DataFrame:
    """One row per claim (index ``dcor``, ``reconstruction``, ``noise``); columns
    ``claim, paper, this_run, verdict, criterion``. Raises ValueError without a baseline run."""
    agg = aggregate(summary)
    base = _baseline(agg)
    measure = recon_measure(agg, context)
    results = {
        "dcor": _claim_dcor(agg, base),
        "reconstruction": _claim_recon(agg, base, measure),
        "noise": _claim_noise(agg, base, measure, context.chance),
    }
    crit = _criteria(measure, context)
    rows = [{"claim": CLAIMS[k][0], "paper": CLAIMS[k][1], "this_run": results[k][1],
             "verdict": results[k][0], "criterion": crit[k]} for k in CLAIMS]
    return pd.DataFrame(rows, index=pd.Index(list(CLAIMS), name="id"))


# --- Markdown ------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows])


def replication_report(summary: pd.DataFrame, context: ReportContext) -> str:
    """The replication report as Markdown (see the module doc)."""
    agg = aggregate(summary)
    _baseline(agg)  # one clear error when the table has no baseline
    measure = recon_measure(agg, context)
    cl = claims(summary, context)
    n_seeds = sorted(set(agg.n_seeds.astype(int)))
    seeds_txt = " or ".join(map(str, n_seeds))
    nopeek = agg[agg.defence == "nopeek"]
    noise = agg[agg.defence == "noise"]
    clean = fmt(context.clean_accuracy) if _isnum(context.clean_accuracy) else NOT_MEASURED_TEXT

    out = [f"# Replication report: NoPeek on {context.dataset}", ""]
    out += [
        "Generated by `nopeek_repro.report` from the summary table; every verdict below is computed "
        "from the numbers by criteria fixed in advance (stated under the table), none is written by hand.",
        "",
        "## What was run",
        "",
        f"- Data: {context.dataset}, {context.n_classes} classes (chance accuracy {context.chance:.3f}).",
        f"- Model: {context.arch}, cut_layer {context.cut_layer!r}; {context.epochs} "
        f"epoch{'s' if context.epochs != 1 else ''}; seed{'s' if len(context.seeds) != 1 else ''} "
        f"{', '.join(map(str, context.seeds))}.",
        "- Runs: baseline; "
        + (f"NoPeek at alpha_dcor = {', '.join(f'{a:g}' if _isnum(a) else r for a, r in zip(nopeek.alpha_dcor, nopeek.run))}"
           if len(nopeek) else "no NoPeek runs")
        + "; "
        + (f"uniform noise at b = {', '.join(f'{b:g}' if _isnum(b) else r for b, r in zip(noise.noise, noise.run))}"
           if len(noise) else "no uniform-noise runs")
        + ".",
        f"- Attack: decoder trained on the (Z, X) pairs of {context.leak_fraction:.0%} of the training "
        f"set, scored on held-out test images; attack classifier's accuracy on clean test images: {clean}.",
        f"- Reconstruction success is judged by {measure.why}.",
    ]
    out += [f"- {n}" for n in context.notes]
    out += ["", "## The paper's claims", ""]
    out += _table(["claim", "paper", f"this run (mean ± std over {seeds_txt} seeds)", "verdict"],
                  [[r.claim, r.paper, r.this_run, f"**{r.verdict}**"] for _, r in cl.iterrows()])
    out += ["", "How each verdict is computed:", ""]
    out += [f"{i}. **{r.claim}.** {r.criterion}" for i, (_, r) in enumerate(cl.iterrows(), 1)]
    out += ["", "Means and standard deviations are over seeds (ddof = 0). \"Not measured\" means the "
            "table lacks that number.", ""]

    out += ["## Per run (mean ± std over seeds)", ""]
    rows = []
    for _, r in agg.iterrows():
        rows.append([r.run, str(int(r.n_seeds)), *(_m(r, m) for m in METRICS),
                     measure.outcome(r) or NOT_MEASURED_TEXT])
    out += _table(["run", "seeds", *METRICS, f"reconstruction (by {measure.label})"], rows)
    out += ["", "`authors_recon_*` follow the authors' protocol (decoder trained on 90% of the test-set "
            "pairs, scored on the other 10%); the other `recon_*` and `attack_accuracy` score a decoder "
            f"trained on {context.leak_fraction:.0%} of the training pairs on the held-out test images.", ""]

    out += ["## Leakage: the paper's estimator and the bias-corrected one", ""]
    out += _table(["run", "DCOR, V-statistic (paper's estimator)", "dCor², bias-corrected (U-statistic)"],
                  [[r.run, _m(r, "leakage_dcor"), _m(r, "leakage_dcor_unbiased")] for _, r in agg.iterrows()])
    out += ["",
            "The paper's V-statistic DCOR is biased upwards: when the dimension is much larger than the "
            "sample size it is close to 1 even for independent X and Z. The bias-corrected dCor² "
            "(U-statistic, Székely & Rizzo 2014) is about 0 for independent data at any dimension, so a "
            "high V-statistic alone does not show dependence.",
            "",
            "The first is dCor (a square root), the second dCor² (a square): compare the second with "
            "the square of the first."]
    both = agg.dropna(subset=["leakage_dcor", "leakage_dcor_unbiased"])
    if not both.empty:
        gap = both.leakage_dcor ** 2 - both.leakage_dcor_unbiased
        r = both.loc[gap.idxmax()]
        out += ["", f"Largest gap in this run: {r.run}, DCOR {_m(r, 'leakage_dcor')} (squared "
                f"{r.leakage_dcor ** 2:.3f}) against bias-corrected dCor² {_m(r, 'leakage_dcor_unbiased')}."]
    return "\n".join(out) + "\n"
