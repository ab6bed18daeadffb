# %% [markdown]
# # 4. Attack: invert the activations with a decoder
#
# The attacker sees what the server sees, the activations Z, and holds the raw images of some of
# them. It trains a decoder Z → X with MSE on those pairs, then reconstructs images it never saw
# from their activations alone. Two protocols:
#
# - **leaked training pairs** (the kit's main protocol): the pairs of a random `leak_fraction` of
#   the *training* set; scored on the whole *held-out test* set, and repeated at the `leak_sweep`
#   fractions;
# - **the authors' protocol**: 90 % of the *test-set* pairs train the decoder, the other 10 % score
#   it (`authors_*` columns).
#
# Scores: MSE per pixel, PSNR (peak 1, images in [0, 1]), SSIM, and the **attack accuracy**: the
# clean-image classifier of notebook 1 run on the reconstructions. If the defence works, the
# reconstructions are poor: high MSE, low PSNR and SSIM, attack accuracy near chance.
#
# `dvc repro` runs this notebook once per trained model.

# %% tags=["parameters"]
runs = ["baseline", "nopeek-a30"]
leak_fraction = 0.5
leak_sweep = [0.25]
authors_split = 0.9
decoder = "simple"
decoder_width = 32
epochs = 1
batch_size = 64
lr = 1e-3
n_examples = 8
threads = 2
device = "cpu"
results = "results/smoke"

# %%
# %matplotlib inline
import numpy as np
import pandas as pd
from nopeek_repro import config, figures, stages
from nopeek_repro.data import load_split

attack_params = config.validate(config.AttackParams, dict(
    leak_fraction=leak_fraction, leak_sweep=leak_sweep, authors_split=authors_split, decoder=decoder,
    decoder_width=decoder_width, epochs=epochs, batch_size=batch_size, lr=lr, n_examples=n_examples))
train_params = config.validate(config.TrainParams, dict(threads=threads, device=device))
layout = stages.make_layout(results)
scores = {run: stages.attack_run(layout, run, train_params, attack_params) for run in runs}

# %% [markdown]
# Reconstruction error and attack accuracy on held-out test images, per model and seed (main
# protocol), and the authors' protocol beside it.

# %%
# NBVAL_CHECK_OUTPUT
pd.set_option("display.width", 200)
for run, table in scores.items():
    print(run)
    cols = [c for c in ["recon_mse", "recon_ssim", "attack_accuracy", "authors_recon_mse", "authors_attack_accuracy"]
            if c in table]
    print(table[cols].round(3).to_string())

# %% [markdown]
# The attack against the leak fraction: mean over seeds.

# %%
# NBVAL_CHECK_OUTPUT
sweep = pd.concat([pd.read_csv(layout.leak_sweep(run)) for run in runs])
print(sweep.groupby(["run", "leak_fraction"], sort=False)[["recon_mse", "attack_accuracy"]].mean().round(3).to_string())

# %% [markdown]
# Test images, one of each class in turn, and their reconstructions (first seed of each model).

# %%
split = load_split(layout.prepared)
shown = np.load(layout.attack_dir(runs[0]) / "examples.npz")["test_pos"]
recons = {run: np.load(layout.attack_dir(run) / "examples.npz")[f"seed{int(scores[run].index[0])}"] for run in runs}
fig = figures.reconstruction_grid(split.x_test[shown].numpy(), recons, k=len(shown))
fig
