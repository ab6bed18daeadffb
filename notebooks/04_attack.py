# %% [markdown]
# # 4. Attack: invert the activations, with the strongest of three attacks
#
# The attacker sees what the server sees, the activations Z, and holds the raw images of some of
# them. From those pairs it learns a map Z → X and reconstructs images it never saw from their
# activations alone. A privacy number is only as good as the attack behind it, so three attacks
# run on the same leaked pairs:
#
# - a learned **decoder**, trained until its MSE on a held-out slice of the leaked pairs stops
#   improving (best weights kept; a step cap that is reported when hit);
# - a closed-form **ridge** regression Z → X, its regulariser chosen on the same held-out slice;
# - the **no-information** baseline: the mean leaked image, whatever Z is.
#
# The **strongest** attack (lowest MSE on the held-out slice) is what every privacy number
# reports, scored on test images no attack saw. Protocols: the pairs of a random `leak_fraction`
# of the *training* set (the main one, every seed), the `leak_sweep` fractions and the authors'
# 90/10 split of the *test-set* pairs (`authors_*`), on the first `sweep_seeds` seeds.
#
# Scores: MSE per pixel, PSNR (peak 1, images in [0, 1]), SSIM, and the **attack accuracy**: the
# judge of notebook 1 run on the reconstructions. If the defence works, even the strongest attack
# does no better than the mean image and the attack accuracy is near chance.
#
# `dvc repro` runs this notebook once per trained model.

# %% tags=["parameters"]
# Smoke values, one dict per params.yaml section; a key left out takes the default run's value.
# `dvc repro` passes the sections of params.yaml whole.
runs = ["baseline", "nopeek-a30"]
attack = {"leak_sweep": [0.25], "max_steps": 60, "eval_every": 10, "patience": 2, "n_examples": 8, "sweep_seeds": 1,
          "authors_split": 0.9}
train = {}
results = "results/smoke"

# %%
# %matplotlib inline
import numpy as np
import pandas as pd

from nopeek_repro import config, figures, stages
from nopeek_repro.data import load_split

attack_params = config.validate(config.AttackParams, attack, prefix="attack")
train_params = config.validate(config.TrainParams, train, prefix="train")
layout = stages.make_layout(results)
scores = {run: stages.attack_run(layout, run, train_params, attack_params) for run in runs}

# %% [markdown]
# Per model and seed (main protocol): the test MSE of each attack, which one was the strongest,
# the strongest attack's SSIM and attack accuracy, and how the decoder's training ended.

# %%
# NBVAL_CHECK_OUTPUT
pd.set_option("display.width", 200)
for run, table in scores.items():
    print(run)
    cols = ["decoder_recon_mse", "ridge_recon_mse", "mean_recon_mse", "strongest_attack", "recon_ssim",
            "attack_accuracy", "decoder_steps", "decoder_hit_cap"]
    print(table[cols].round(4).to_string())

# %% [markdown]
# The strongest attack against the leak fraction (median over the seeds the sweep ran on).

# %%
# NBVAL_CHECK_OUTPUT
sweep = pd.concat([pd.read_csv(layout.leak_sweep(run)) for run in runs])
print(sweep.groupby(["run", "leak_fraction"], sort=False)[["recon_mse", "attack_accuracy"]].median().round(3).to_string())

# %% [markdown]
# Test images, one of each class in turn, and their reconstructions by the strongest attack (first seed of
# each model).

# %%
split = load_split(layout.prepared)
shown = np.load(layout.attack_dir(runs[0]) / "examples.npz")["test_pos"]
recons = {run: np.load(layout.attack_dir(run) / "examples.npz")[f"seed{int(scores[run].index[0])}"] for run in runs}
fig = figures.reconstruction_grid(split.x_test[shown].numpy(), recons, k=len(shown))
fig
