# %% [markdown]
# # 4. Attack: invert the activations with a decoder
#
# The attacker sees what the server sees, the activations Z, and has obtained the raw images of a
# random `leak_fraction` of the **training** set. It trains a decoder Z → X with MSE on those
# leaked pairs, then reconstructs the **held-out test** images from their activations alone.
#
# Scores on the test images: MSE per pixel, PSNR (peak 1, images in [0, 1]) and SSIM. If the
# defence works, the reconstructions are poor: high MSE, low PSNR and SSIM.
#
# `dvc repro` runs this notebook once per trained model.

# %% tags=["parameters"]
runs = ["baseline", "nopeek-a30"]
leak_fraction = 0.5
epochs = 1
batch_size = 64
lr = 1e-3
n_examples = 8
seeds = [0]
threads = 2
results = "results/smoke"

# %%
# %matplotlib inline
from nopeek_repro import config, figures, stages
from nopeek_repro.data import load_split
import numpy as np

attack_params = config.validate(config.AttackParams, dict(leak_fraction=leak_fraction, epochs=epochs,
                                                          batch_size=batch_size, lr=lr, n_examples=n_examples))
train_params = config.validate(config.TrainParams, dict(seeds=seeds, threads=threads))
layout = stages.make_layout(results)
scores = {run: stages.attack_run(layout, run, train_params, attack_params) for run in runs}

# %% [markdown]
# Reconstruction error on held-out test images, per model and seed.

# %%
# NBVAL_CHECK_OUTPUT
for run, table in scores.items():
    print(run)
    print(table[["recon_mse", "recon_psnr", "recon_ssim", "n_leaked"]].round(3).to_string())

# %% [markdown]
# Test digits, one of each class in turn, and their reconstructions (first seed of each model).

# %%
split = load_split(layout.prepared)
shown = np.load(layout.attack_dir(runs[0]) / "examples.npz")["test_pos"]
recons = {run: np.load(layout.attack_dir(run) / "examples.npz")[f"seed{int(scores[run].index[0])}"] for run in runs}
fig = figures.reconstruction_grid(split.x_test[shown, 0].numpy(), recons, k=len(shown))
fig
