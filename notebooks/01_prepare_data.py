# %% [markdown]
# # 1. Prepare the data and the attacker's reference classifier
#
# NoPeek protects the **raw inputs** of a split-learning client. This notebook loads the raw data
# set from `data/` (tracked by `data.dvc`) and makes one seeded split: a **held-out test part**
# that neither training nor the attacker's leaked pairs ever see. Images become floats in [0, 1].
#
# It also trains the **attack classifier** (Titcombe et al. 2021): the data set's own network,
# unsplit, trained on clean training images. Run later on the attacker's reconstructions, its
# accuracy (the *attack accuracy*) says how much of the class the reconstructions still carry.
#
# The parameters cell holds tiny smoke defaults; `dvc repro` injects the real values from
# `params.yaml` (sections `data`, `model`, and the classifier's settings in `attack`).

# %% tags=["parameters"]
dataset = "mnist-sample"
source = None
image_size = None
task = "gender"
test_fraction = 0.2
split_seed = 0
n_train = 256
n_test = 128
arch = "cnn"
depth = None
cut_layer = 1
classifier_epochs = 1
lr = 1e-3
batch_size = 64
threads = 2
device = "cpu"
results = "results/smoke"

# %%
# %matplotlib inline
from nopeek_repro import config, figures, paths, stages
from nopeek_repro.attacks import example_indices

params = config.validate(config.DataParams, dict(dataset=dataset, source=source, image_size=image_size, task=task,
                                                 test_fraction=test_fraction, split_seed=split_seed,
                                                 n_train=n_train, n_test=n_test))
model = config.validate(config.ModelParams, dict(arch=arch, depth=depth, cut_layer=cut_layer))
layout = stages.make_layout(results)
split = stages.prepare(layout, params, paths.data_dir())

# %% [markdown]
# The split: sizes and class balance of each part.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{dataset}: train {len(split.train_idx)} images, test {len(split.test_idx)} images, shape {split.image_shape}")
print("train classes:", split.y_train.bincount(minlength=split.n_classes).tolist())
print("test classes: ", split.y_test.bincount(minlength=split.n_classes).tolist())
print(f"pixel range: [{float(split.x_train.min()):.1f}, {float(split.x_train.max()):.1f}]")

# %% [markdown]
# Held-out test images, one of each class: images the attacker will try to reconstruct.

# %%
shown = example_indices(split.y_test, 10)
figures.reconstruction_grid(split.x_test[shown].numpy(), {}, k=len(shown), title="Held-out test images")

# %% [markdown]
# The attack classifier, trained on clean training images: its accuracy on the clean test images
# is the ceiling the attack accuracy is read against (chance is 1 / number of classes).

# %%
# NBVAL_CHECK_OUTPUT
train_params = config.validate(config.TrainParams, dict(threads=threads, device=device))
attack_params = config.validate(config.AttackParams, dict(classifier_epochs=classifier_epochs, lr=lr,
                                                          batch_size=batch_size))
clean_accuracy = stages.train_classifier(layout, model, train_params, attack_params)
print(f"attack classifier ({arch}, unsplit): clean test accuracy {clean_accuracy:.3f}, chance {1 / split.n_classes:.3f}")
