# %% [markdown]
# # 1. Prepare the data
#
# NoPeek protects the **raw inputs** of a split-learning client. This notebook loads the raw data
# set from `data/` (tracked by `data.dvc`) and makes one seeded split: a **held-out test part**
# that neither training nor the attacker's leaked pairs ever see. Images become floats in [0, 1].
#
# The parameters cell holds tiny smoke defaults; `dvc repro` injects the real values from
# `params.yaml` (section `data`).

# %% tags=["parameters"]
dataset = "mnist-sample"
test_fraction = 0.2
split_seed = 0
n_train = 256
n_test = 128
results = "results/smoke"

# %%
# %matplotlib inline
from nopeek_repro import config, figures, paths, stages
from nopeek_repro.attacks import example_indices

params = config.validate(config.DataParams, dict(dataset=dataset, test_fraction=test_fraction,
                                                 split_seed=split_seed, n_train=n_train, n_test=n_test))
layout = stages.make_layout(results)
split = stages.prepare(layout, params, paths.data_dir() / paths.DATA_FILE)

# %% [markdown]
# The split: sizes and class balance of each part.

# %%
# NBVAL_CHECK_OUTPUT
print(f"train: {len(split.train_idx)} images, test: {len(split.test_idx)} images, shape {split.image_shape}")
print("train classes:", split.y_train.bincount(minlength=10).tolist())
print("test classes: ", split.y_test.bincount(minlength=10).tolist())
print(f"pixel range: [{float(split.x_train.min()):.1f}, {float(split.x_train.max()):.1f}]")

# %% [markdown]
# Held-out test digits, one of each class: images the attacker will try to reconstruct.

# %%
shown = example_indices(split.y_test, 10)
figures.reconstruction_grid(split.x_test[shown, 0].numpy(), {}, k=10, title="Held-out test digits")
