# %% [markdown]
# # 1. Prepare the data and the attacker's reference classifier
#
# NoPeek protects the **raw inputs** of a split-learning client. This notebook loads the raw data
# set from `data/` (tracked by `data.dvc`) and makes one seeded split: a **held-out test part**
# that neither training nor the attacker's leaked pairs ever see. Images become floats in [0, 1].
#
# It also trains the **judge** (Titcombe et al. 2021's attack classifier), on clean training
# images. Run later on the attacker's reconstructions, its accuracy (the *attack accuracy*) says
# how much of the class the reconstructions still carry.
#
# It also carves the **validation part** from the training part (`data.val_fraction`): never
# trained on, never leaked; every selection in the kit is made on it.

# %% tags=["parameters"]
# Smoke values, one dict per params.yaml section; a key left out takes the default run's value.
# `dvc repro` passes the sections of params.yaml whole.
data = {"dataset": "mnist-sample", "n_train": 256, "n_test": 128}
attack = {"classifier_epochs": 2}
train = {}
results = "results/smoke"

# %%
# %matplotlib inline
from nopeek_repro import config, figures, paths, stages
from nopeek_repro.attacks import example_indices

data_params = config.validate(config.DataParams, data, prefix="data")
attack_params = config.validate(config.AttackParams, attack, prefix="attack")
layout = stages.make_layout(results)
split = stages.prepare(layout, data_params, paths.data_dir())

# %% [markdown]
# The split: sizes and class balance of each part.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{data_params.dataset}: train {len(split.train_idx)} images, validation {len(split.val_idx)}, "
      f"test {len(split.test_idx)}, shape {split.image_shape}")
print("train classes:", split.y_train.bincount(minlength=split.n_classes).tolist())
print("val classes:  ", split.y_val.bincount(minlength=split.n_classes).tolist())
print("test classes: ", split.y_test.bincount(minlength=split.n_classes).tolist())
print(f"pixel range: [{float(split.x_train.min()):.1f}, {float(split.x_train.max()):.1f}]")

# %% [markdown]
# Held-out test images, one of each class: images the attacker will try to reconstruct.

# %%
shown = example_indices(split.y_test, 10)
figures.reconstruction_grid(split.x_test[shown].numpy(), {}, k=len(shown), title="Held-out test images")

# %% [markdown]
# The **judge** (attack-accuracy classifier): its own network (a small VGG-style CNN, unlike the
# attacked split model), its own seed (`attack.classifier_seed`, outside `train.seeds`), trained
# on clean training images until its accuracy on the validation part stops improving. Its
# accuracy on the clean test images is the ceiling the attack accuracy is read against (chance is
# 1 / number of classes).

# %%
train_params = config.validate(config.TrainParams, train, prefix="train")
judge = stages.train_classifier(layout, train_params, attack_params)

# %%
# NBVAL_CHECK_OUTPUT
print(f"judge (seed {judge.seed}): clean test accuracy {judge.clean_accuracy:.3f}, best validation accuracy "
      f"{judge.val_accuracy:.3f} at epoch {judge.best_epoch} of {judge.epochs}"
      f"{' (hit attack.classifier_epochs)' if judge.hit_cap else ''}; chance {1 / split.n_classes:.3f}")
