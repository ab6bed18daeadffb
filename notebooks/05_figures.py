# %% [markdown]
# # 5. Results and figures
#
# This notebook joins every model's training and attack metrics into `results/summary.csv` (one
# row per model and seed), draws the figures the README shows, and writes the **replication
# report** `results/report.md`: the paper's claims, this run's numbers and a verdict computed from
# them. Every seed is a point; lines join the medians over seeds (a mean of a two-mode outcome
# describes no run). Reconstruction numbers are the strongest attack's (notebook 4).
#
# What to look for (the paper's claims, on this data):
# - with a moderate `alpha_dcor`, NoPeek lowers the leakage DCOR(X, Z) and raises the decoder's
#   reconstruction error, at a small cost in accuracy;
# - uniform noise reaches the same reconstruction error only at a much larger accuracy loss.

# %% tags=["parameters"]
runs = ["baseline", "nopeek-a30"]
results = "results/smoke"
figures_dir = "results/smoke/figures"

# %%
# %matplotlib inline
import pandas as pd

from nopeek_repro import stages
from nopeek_repro.defences import RunSpec

pd.set_option("display.width", 200)
layout = stages.make_layout(results, figures_dir)
agg, figs = stages.make_figures(layout, [RunSpec.from_name(r) for r in runs])
table = pd.read_csv(layout.summary)
cols = ["run", "n_seeds", "n_collapsed", "test_accuracy", "leakage_dcor", "leakage_dcor_unbiased", "recon_mse",
        "recon_ssim", "attack_accuracy", "strongest"]

# %% [markdown]
# ## a. Privacy-utility trade-off
# Test accuracy against the strongest attack's reconstruction error on held-out images, every
# seed a point. Up and right is better: accurate and hard to invert.

# %%
# NBVAL_CHECK_OUTPUT
print(table[["run", "seed", "recon_mse", "strongest_attack", "test_accuracy", "collapsed"]].round(4).to_string(index=False))
figs["tradeoff"]

# %% [markdown]
# ## b. Reconstructions
# The same held-out test digits, as the attacker's decoder reconstructs them from each model's
# activations.

# %%
figs["reconstructions"]

# %% [markdown]
# ## c. Leakage and accuracy against `alpha_dcor`
# Solid: NoPeek medians (points: seeds); dashed: the baseline. Grey: the floors at the same n, a
# label-only Z and the baseline's Z in a shuffled pairing: the paper's DCOR (V-statistic) is far
# from 0 even when Z carries only the class, so read it against them. The bias-corrected estimator
# is about 0 for independent data.

# %%
# NBVAL_CHECK_OUTPUT
print(agg[["run", "alpha_dcor", "leakage_dcor", "leakage_dcor_shuffled", "floor_label_dcor", "batch_dcor",
           "floor_label_batch_dcor", "leakage_dcor_unbiased", "test_accuracy"]].round(3).to_string(index=False))
figs["leakage_vs_alpha"]

# %% [markdown]
# ## d. Training curves
# Test accuracy and test DCOR after every epoch (baseline and NoPeek models).

# %%
figs["training_curves"]

# %% [markdown]
# ## e. The attack against the leak fraction
# The strongest attack's reconstruction error and attack accuracy when the attacker holds more or
# fewer training pairs (every decoder trains until it stops improving on its held-out slice).

# %%
figs["leak_sweep"]

# %% [markdown]
# ## f. Why large alphas collapse: the diagnostics
# Per epoch, for the baseline and every NoPeek seed: the fraction of the cut's channels that are
# dead (0 on every validation image), the spread of Z over images, and how much larger the DCOR
# term's gradient on the client is than the task's (alpha·|∇DCOR| / |∇CE|, on the epoch's last
# batch; the baseline's is 0, off the log axis). Dashed: seeds that ended at chance accuracy.
# The last epoch's values, per seed:

# %%
# NBVAL_CHECK_OUTPUT
diagnosed = table[table.defence != "noise"]
print(diagnosed[["run", "seed", "test_accuracy", "dead_channels", "z_std", "grad_ratio"]].round(4).to_string(index=False))
figs["collapse_diagnostics"]

# %% [markdown]
# ## The replication report
# Each claim of the paper, this run's numbers and the computed verdict (the whole report, with the
# criteria, is `results/report.md`).

# %%
# NBVAL_CHECK_OUTPUT
from nopeek_repro import report

context = stages.report_context(layout, table, [RunSpec.from_name(r) for r in runs])
print(report.claims(table, context)[["verdict"]].to_string())

# %% [markdown]
# ## The summary table (medians over seeds)

# %%
# NBVAL_CHECK_OUTPUT
print(agg[cols].round(3).to_string(index=False))
