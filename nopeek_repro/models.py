"""Networks: the split architectures with their cut points, and the attacker's decoders.

Architectures (:data:`ARCHS`), each an ordered list of *units*; a cut may follow any unit. The
client holds the units up to and including the cut, the server the rest plus the head.

``cnn`` -- the small split CNN for 28x28 grey images (the default run)::

    block1: conv 3x3 (c -> 16) + ReLU + maxpool 2      -> Z of shape 16 x 14 x 14   (default cut)
    block2: conv 3x3 (16 -> 32) + ReLU + maxpool 2     -> Z of shape 32 x 7 x 7
    head:   flatten -> linear 1568 -> 128 + ReLU -> linear 128 -> n_classes

``resnet29`` -- the authors' CIFAR-10 network: the Keras ``cifar10_resnet.py`` example, version 2
(pre-activation bottlenecks), depth 9k + 2 (29: k = 3 blocks per stage)::

    stem:          conv 3x3 (c -> 16) + BN + ReLU                          16 x 32 x 32
    stage0.blockj: bottleneck 16 -> 64, stride 1                           64 x 32 x 32
    stage1.blockj: bottleneck 64 -> 128, stride 2 in block 0              128 x 16 x 16
    stage2.blockj: bottleneck 128 -> 256, stride 2 in block 0             256 x  8 x  8
    head:          BN + ReLU + global average pool + linear 256 -> n_classes

  (shapes for 3 x 32 x 32 inputs). Default cut: ``stage2.block1`` as the authors (Z = 256 x 8 x 8);
  with one block per stage (depth 11) ``stage2.block0``, which gives the same Z shape.

``utkface`` -- the authors' UTKFace network: three strided convs, then the same ResNet-v2 trunk::

    conv1: conv 5x5 stride 2, no padding (c -> 3)          3 x 97 x 97   (198 x 198 inputs)
    conv2: conv 5x5 stride 2, 'same' padding (3 -> 3)      3 x 49 x 49
    conv3: conv 3x3 stride 2, 'same' padding (3 -> 16)    16 x 25 x 25
    stem, stage0.block0 ... stage2.block(k-1) as above    64 x 25 x 25, 128 x 13 x 13, 256 x 7 x 7
    head:  BN + ReLU + global average pool + linear 256 -> 100 + ReLU, then per task
           linear 100 -> 128 + ReLU -> linear 128 -> outputs

  Default depth 11 (one block per stage, small enough for the CPU; the authors used 29, pass
  ``depth=29``). Default cut: the end of stage 0 (``stage0.block{k-1}``; the authors' notebook cuts
  at stage 0 block 2 of depth 29), Z = 64 x 25 x 25 on 198 x 198 inputs, 64 x 8 x 8 on 64 x 64.
  Head: one classifier with ``n_classes`` outputs (gender: 2, race: 5: whichever label the data
  set gives, ``data.task``). The authors' notebook also trained race and age heads beside gender;
  the kit trains one task at a time, so their multi-task head is not built here.

The ResNet-v2 bottleneck (Keras ``resnet_v2``): ``y = conv1x1(relu(bn(x)))`` with the block's
stride, ``y = conv3x3(relu(bn(y)))``, ``y = conv1x1(relu(bn(y)))`` to the stage's output channels;
``x + y``, where block 0 of every stage replaces ``x`` by a 1x1 conv projection (with the stride)
of it. The inner width is the stage's *input* channel count (16, 64, 128), as in Keras. Stage 0
block 0 skips the first BN-ReLU (the stem just did it). Choices made where the Keras code cannot be
followed literally: PyTorch BatchNorm defaults (momentum 0.1, eps 1e-5; Keras: 0.99 / 1e-3, i.e.
slower running statistics); He-normal conv and linear weights (untruncated) and zero biases, as
Keras ``he_normal``; the Keras L2 weight decay 1e-4 is an optimiser setting, not part of the model;
PyTorch pads 'same' convs symmetrically (Keras puts the extra row bottom/right for even sizes: the
output sizes agree). The authors' UTKFace convs 1-3 have no activation (as in their notebook) and
their unused fourth conv is left out. Global pooling is a mean over the whole map (the Keras
CIFAR pool of 8 does the same on 8 x 8; the authors' UTKFace pool of 6 on a 7 x 7 map skipped the
last row and column). Heads give logits (Keras put the softmax in the model).

Sizes: resnet29 at depth 29 has 843,786 parameters, the trainable count of the Keras ResNet29v2
summary (Keras' total, 849,002, adds the BatchNorm running statistics); 297,418 at depth 11.
utkface with one 2-class head: 336,510 at depth 11, 882,878 at depth 29.

Decoders (attacker), from :func:`build_decoder`:

* ``simple`` -- :class:`Decoder`, the small default: a 3x3 conv to ``width`` channels, then 2x
  sub-pixel upsampling steps (Shi et al. 2016: a 3x3 conv at the low resolution to 4x the
  channels, a pixel shuffle, ReLU; it sees a superset of what nearest upsampling + 3x3 conv sees,
  at about a third of the CPU time here) until the spatial size reaches the image's, a bilinear
  resize if the sizes are not a power-of-two ratio, a 3x3 conv to ``c`` channels and a sigmoid.
* ``resnet`` -- :class:`ResNetDecoder`, the authors' ResNet-generator style decoder (see there).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARCHS: tuple[str, ...] = ("cnn", "resnet29", "utkface")
DECODERS: tuple[str, ...] = ("simple", "resnet")

_OPTIONS: dict[str, dict[str, Any]] = {
    "cnn": {},
    "resnet29": {"depth": 29},
    "utkface": {"depth": 11},
}


# --------------------------------------------------------------------------------------------
# The small split CNN (unchanged: the default run, a benchmark and saved models depend on it)
# --------------------------------------------------------------------------------------------


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 (``c_in -> c_out``, padding 1) + ReLU + maxpool 2: one unit of the split CNN."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


def build_split_cnn(
    cut_layer: int = 1, in_shape: tuple[int, int, int] = (1, 28, 28), n_classes: int = 10
) -> tuple[nn.Module, nn.Module]:
    """(client, server) networks of the split CNN, cut after conv block ``cut_layer`` (1 or 2)."""
    if cut_layer not in (1, 2):
        raise ValueError(f"cut_layer must be 1 or 2 (conv blocks of the client), got {cut_layer!r}")
    c, h, w = in_shape
    blocks = [conv_block(c, 16), conv_block(16, 32)]
    head = nn.Sequential(nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, n_classes))
    client = nn.Sequential(*blocks[:cut_layer])
    server = nn.Sequential(*blocks[cut_layer:], head)
    return client, server


# --------------------------------------------------------------------------------------------
# ResNet-v2 (Keras cifar10_resnet.py, version 2)
# --------------------------------------------------------------------------------------------


class PreActBottleneck(nn.Module):
    """One ResNet-v2 bottleneck unit: ``shortcut(x) + conv1x1(BN-ReLU(conv3x3(BN-ReLU(conv1x1(BN-ReLU(x))))))``.

    ``c_in -> c_out`` channels with inner width ``c_mid``; ``stride`` sits on the first 1x1 conv
    (as in Keras). ``project`` makes the shortcut a 1x1 conv with the same stride (block 0 of a
    stage), otherwise it is the identity. ``preact=False`` drops the first BN-ReLU (stage 0 block
    0, whose input the stem has just normalised).
    """

    def __init__(
        self, c_in: int, c_mid: int, c_out: int, stride: int = 1, project: bool = False, preact: bool = True
    ) -> None:
        super().__init__()
        if not project and (stride != 1 or c_in != c_out):
            raise ValueError(
                f"an identity shortcut needs stride 1 and c_in == c_out, got stride {stride}, {c_in} -> {c_out}"
            )
        self.pre = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU()) if preact else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_mid, 1, stride=stride)
        self.conv2 = nn.Sequential(nn.BatchNorm2d(c_mid), nn.ReLU(), nn.Conv2d(c_mid, c_mid, 3, padding=1))
        self.conv3 = nn.Sequential(nn.BatchNorm2d(c_mid), nn.ReLU(), nn.Conv2d(c_mid, c_out, 1))
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride) if project else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv3(self.conv2(self.conv1(self.pre(x))))


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): the mean over the spatial positions (deterministic on CUDA too)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


def _blocks_per_stage(depth: int) -> int:
    return (depth - 2) // 9


def _resnet_unit_names(depth: int) -> list[str]:
    k = _blocks_per_stage(depth)
    return ["stem"] + [f"stage{s}.block{b}" for s in range(3) for b in range(k)]


def _resnet_trunk(c_in: int, depth: int) -> list[tuple[str, nn.Module]]:
    """The ResNet-v2 units (stem conv3x3 16 + BN + ReLU, then 3 stages of bottlenecks) on ``c_in`` channels."""
    units: list[tuple[str, nn.Module]] = [
        ("stem", nn.Sequential(nn.Conv2d(c_in, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()))
    ]
    ch = 16
    for stage in range(3):
        c_out = ch * 4 if stage == 0 else ch * 2
        for block in range(_blocks_per_stage(depth)):
            first = block == 0
            unit = PreActBottleneck(
                ch if first else c_out,
                ch,
                c_out,
                stride=2 if first and stage > 0 else 1,
                project=first,
                preact=not (first and stage == 0),
            )
            units.append((f"stage{stage}.block{block}", unit))
        ch = c_out
    return units


def _he_init(module: nn.Module) -> None:
    """Keras ``he_normal`` weights (untruncated) and zero biases for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _glorot_init(module: nn.Module) -> None:
    """Keras' default ``glorot_uniform`` weights and zero biases for every linear layer."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def _build_resnet29(in_shape: tuple[int, int, int], n_classes: int, depth: int) -> tuple[list, nn.Module]:
    units = _resnet_trunk(in_shape[0], depth)
    head = nn.Sequential(nn.BatchNorm2d(256), nn.ReLU(), GlobalAvgPool(), nn.Linear(256, n_classes))
    for _, unit in units:
        _he_init(unit)
    _he_init(head)
    return units, head


# --------------------------------------------------------------------------------------------
# UTKFace
# --------------------------------------------------------------------------------------------


class TaskHead(nn.Module):
    """The authors' UTKFace head for one task: linear ``c -> 100`` + ReLU, linear ``100 -> 128`` + ReLU,
    linear ``128 -> n_classes`` (logits)."""

    def __init__(self, c_in: int, n_classes: int) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(c_in, 100), nn.ReLU())
        self.task = nn.Sequential(nn.Linear(100, 128), nn.ReLU(), nn.Linear(128, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.task(self.shared(x))


def _utkface_unit_names(depth: int) -> list[str]:
    return ["conv1", "conv2", "conv3"] + _resnet_unit_names(depth)


def _build_utkface(in_shape: tuple[int, int, int], n_classes: int, depth: int) -> tuple[list, nn.Module]:
    units: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(in_shape[0], 3, 5, stride=2)),
        ("conv2", nn.Conv2d(3, 3, 5, stride=2, padding=2)),
        ("conv3", nn.Conv2d(3, 16, 3, stride=2, padding=1)),
    ]
    units += _resnet_trunk(16, depth)
    head = nn.Sequential(nn.BatchNorm2d(256), nn.ReLU(), GlobalAvgPool(), TaskHead(256, n_classes))
    for _, unit in units:
        _he_init(unit)
    _glorot_init(head)
    _he_init(cast(TaskHead, head[3]).shared)  # the authors' Dense(100) is he_normal, the task layers glorot
    return units, head


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


class SplitPart(nn.Sequential):
    """One party's network: the units in order (a plain :class:`nn.Sequential`).

    ``unit_names`` holds the architecture's names of the units (``"stage2.block1"``; the module
    keys replace the dots with underscores, which PyTorch requires); the server's last unit is
    ``"head"``.
    """

    def __init__(self, units: Sequence[tuple[str, nn.Module]]) -> None:
        super().__init__(OrderedDict((name.replace(".", "_"), m) for name, m in units))
        self.unit_names: tuple[str, ...] = tuple(name for name, _ in units)


def _check_arch(arch: Any) -> str:
    if arch not in ARCHS:
        raise ValueError(f"model.arch = {arch!r} is not an architecture; allowed: {', '.join(ARCHS)}")
    return arch


def _resolve_options(arch: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture's options with defaults filled in; unknown names and bad values are errors."""
    allowed = _OPTIONS[arch]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"model options {unknown} do not exist for {arch}; allowed: {', '.join(allowed) if allowed else 'none'}"
        )
    opts = {**allowed, **{k: v for k, v in options.items() if v is not None}}
    if "depth" in opts:
        depth = opts["depth"]
        if (
            not isinstance(depth, numbers.Integral)
            or isinstance(depth, bool)
            or depth < 11
            or (cast(int, depth) - 2) % 9 != 0
        ):
            raise ValueError(
                f"model.depth = {depth!r} is not a ResNet-v2 depth; allowed: 9k + 2 with k >= 1 (11, 20, 29, 38, ...)"
            )
        opts["depth"] = int(depth)
    return opts


def cut_points(arch: str, **options: Any) -> list[str]:
    """The ordered names of the units of ``arch`` that a cut may follow.

    ``options`` are those of :func:`build_split_model` (only ``depth`` changes the list). A cut
    after the last unit leaves the server only the head.
    """
    arch = _check_arch(arch)
    opts = _resolve_options(arch, options)
    if arch == "cnn":
        return ["block1", "block2"]
    if arch == "resnet29":
        return _resnet_unit_names(opts["depth"])
    return _utkface_unit_names(opts["depth"])


def default_cut(arch: str, **options: Any) -> str:
    """The default cut point of ``arch`` (a unit name; see the module doc for why each).

    cnn: ``block1``; resnet29: ``stage2.block1`` (the authors'; ``stage2.block0`` when a stage has
    a single block, e.g. depth 11, which keeps Z = 256 x 8 x 8); utkface: the last block of stage 0
    (``stage0.block2`` at depth 29 as the authors, ``stage0.block0`` at the default depth 11).
    """
    arch = _check_arch(arch)
    opts = _resolve_options(arch, options)
    if arch == "cnn":
        return "block1"
    k = _blocks_per_stage(opts["depth"])
    if arch == "resnet29":
        return f"stage2.block{min(1, k - 1)}"
    return f"stage0.block{k - 1}"


def _resolve_cut(arch: str, cut_layer: int | str | None, names: list[str], opts: Mapping[str, Any]) -> int:
    """The number of client units for ``cut_layer`` (a unit name or a 1-based count; None = default)."""
    if cut_layer is None:
        cut_layer = default_cut(arch, **opts)
    if isinstance(cut_layer, str) and cut_layer in names:
        return names.index(cut_layer) + 1
    if isinstance(cut_layer, numbers.Integral) and not isinstance(cut_layer, bool) and 1 <= cut_layer <= len(names):
        return int(cut_layer)
    raise ValueError(
        f"model.cut_layer = {cut_layer!r} is not a cut point of {arch}; allowed: {', '.join(names)}, or 1..{len(names)}"
    )


def _check_in_shape(arch: str, in_shape: Any) -> tuple[int, int, int]:
    smallest = {"cnn": 4, "resnet29": 1, "utkface": 5, "judge": 4}[arch]
    ok = (
        isinstance(in_shape, (tuple, list))
        and len(in_shape) == 3
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 1 for v in in_shape)
        and min(in_shape[1:]) >= smallest
    )
    if not ok:
        raise ValueError(
            f"in_shape = {in_shape!r} is not an image shape for {arch}; allowed: (channels, height, "
            f"width), positive ints, height and width >= {smallest}"
        )
    return (int(in_shape[0]), int(in_shape[1]), int(in_shape[2]))


def build_split_model(
    arch: str, cut_layer: int | str | None, in_shape: tuple[int, int, int], n_classes: int, **options: Any
) -> tuple[nn.Module, nn.Module]:
    """(client, server) networks of architecture ``arch`` (one of :data:`ARCHS`), split at ``cut_layer``.

    ``cut_layer`` is a unit name from :func:`cut_points` (e.g. ``"stage2.block1"``), a 1-based
    number of client units, or None for :func:`default_cut`. The client holds the units up to and
    including the cut; the server the rest plus the head, and returns (N, n_classes) outputs.
    ``server(client(x))`` is the whole network.

    Options: resnet29 ``depth`` (9k + 2, default 29); utkface ``depth`` (default 11); every
    architecture ``at_cut`` (:func:`with_at_cut`). None for an option means its default.

    ``"cnn"`` returns exactly :func:`build_split_cnn` (same modules, same initialisation order). The
    ResNets are :class:`SplitPart` sequences; every parameter is drawn from torch's global generator
    in a fixed order, so a given ``torch.manual_seed`` gives the same networks.
    """
    arch = _check_arch(arch)
    at_cut = options.pop("at_cut", None) or "none"
    opts = _resolve_options(arch, options)
    names = cut_points(arch, **opts)
    k = _resolve_cut(arch, cut_layer, names, opts)
    client, server = _build(arch, k, names, in_shape, n_classes, opts)
    return with_at_cut(client, at_cut), server


AT_CUT: tuple[str, ...] = ("none", "batchnorm", "leakyrelu")


def with_at_cut(client: nn.Module, at_cut: str) -> nn.Module:
    """The client with ``at_cut`` at its end: ``none`` (unchanged), ``batchnorm`` (``BatchNorm2d`` without
    affine parameters appended: Z is standardised per channel over the batch) or ``leakyrelu`` (the
    client's last ``ReLU`` becomes ``LeakyReLU(0.01)``, so no unit of Z is exactly 0 for all inputs).
    Neither adds a parameter, so the initial weights are those of the plain network."""
    if at_cut not in AT_CUT:
        raise ValueError(f"model.at_cut = {at_cut!r}: allowed: {', '.join(AT_CUT)}")
    if at_cut == "batchnorm":
        channels = [m.out_channels for m in client.modules() if isinstance(m, nn.Conv2d)][-1]
        client.append(nn.BatchNorm2d(channels, affine=False))  # type: ignore[operator]
    elif at_cut == "leakyrelu":
        relus = [
            (parent, name)
            for parent in client.modules()
            for name, m in parent.named_children()
            if isinstance(m, nn.ReLU)
        ]
        if not relus:
            raise ValueError(
                "model.at_cut = 'leakyrelu': the client has no ReLU to replace; allowed here: none, batchnorm"
            )
        parent, name = relus[-1]
        setattr(parent, name, nn.LeakyReLU(0.01))
    return client


def _build(
    arch: str, k: int, names: list[str], in_shape: Any, n_classes: int, opts: Mapping[str, Any]
) -> tuple[nn.Module, nn.Module]:
    in_shape = _check_in_shape(arch, in_shape)
    if not isinstance(cast(object, n_classes), numbers.Integral) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(f"n_classes = {n_classes!r} is not a number of outputs; allowed: an int >= 1")
    if arch == "cnn":
        return build_split_cnn(k, in_shape, int(n_classes))
    if arch == "resnet29":
        units, head = _build_resnet29(in_shape, int(n_classes), opts["depth"])
    else:
        units, head = _build_utkface(in_shape, int(n_classes), opts["depth"])
    assert [name for name, _ in units] == names
    return SplitPart(units[:k]), SplitPart(units[k:] + [("head", head)])


def _module_device(module: nn.Module) -> torch.device:
    p: Tensor | None = next(module.parameters(), None)
    if p is None:
        p = next(module.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


def activation_shape(client: nn.Module, in_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The shape of one sample's cut-layer activation (what the client sends).

    Runs one zero image through ``client`` in eval mode on the client's device; the client's
    train/eval mode is restored.
    """
    was_training = client.training
    client.eval()
    with torch.no_grad():
        shape = tuple(client(torch.zeros(1, *in_shape, device=_module_device(client))).shape[1:])
    client.train(was_training)
    return shape


# --------------------------------------------------------------------------------------------
# Decoders (attacker)
# --------------------------------------------------------------------------------------------


class Decoder(nn.Module):
    """Inverts activations of shape ``z_shape`` into images of shape ``x_shape`` (see module doc)."""

    def __init__(self, z_shape: tuple[int, ...], x_shape: tuple[int, int, int], width: int = 32):
        super().__init__()
        if len(z_shape) != 3:
            raise ValueError(f"Decoder expects conv activations (C, H, W), got shape {z_shape}")
        c_z, h_z, _ = z_shape
        c_x, h_x, w_x = x_shape
        layers: list[nn.Module] = [nn.Conv2d(c_z, width, 3, padding=1), nn.ReLU()]
        ch, size = width, h_z
        for _ in range(max(0, math.ceil(math.log2(h_x / h_z)))):
            out = max(ch // 2, 16)  # sub-pixel convolution: a 3x3 conv at the low resolution to 4 x out channels,
            layers += [nn.Conv2d(ch, 4 * out, 3, padding=1), nn.PixelShuffle(2), nn.ReLU()]  # then 2x2 rearranged
            ch, size = out, size * 2
        if size != h_x:
            layers.append(nn.Upsample(size=(h_x, w_x), mode="bilinear", align_corners=False))
        layers += [nn.Conv2d(ch, c_x, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Standardize(nn.Module):
    """``(z - mean) / std`` per channel (dimension 1), with the statistics of the data it was fitted on.

    The attacker's input layer: activations of trained clients (and noisy ones) come in very
    different scales, which stalls an un-normalised decoder (a ReLU/sigmoid decoder fed Z + U(-8, 8)
    learned nothing in 1,000 steps). The statistics are those of the attacker's own leaked pairs;
    channels that never vary are left centred (std clamped at ``eps``).
    """

    mean: Tensor  # buffers (registered in __init__), declared for the type checker
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, z: Tensor, eps: float = 1e-6) -> "Standardize":
        dims = [0, *range(2, z.dim())]
        shape = [1, z.shape[1], *([1] * (z.dim() - 2))]
        zd = z.double()
        mean = zd.mean(dims).reshape(shape)
        std = zd.std(dims).reshape(shape).clamp(min=eps) if len(z) > 1 else torch.ones(shape, dtype=torch.float64)
        return cls(mean.to(z.dtype), std.to(z.dtype))

    def forward(self, z: Tensor) -> Tensor:
        return (z - self.mean) / self.std


class ReflectPad(nn.Module):
    """Reflection padding by ``p`` on all four sides, built from slices and flips.

    Same values as ``F.pad(x, (p,) * 4, mode="reflect")``, but its gradient is deterministic on
    CUDA (PyTorch's reflection-pad backward is not, and raises under
    ``torch.use_deterministic_algorithms(True)``). A map too small to reflect (side <= p) is
    zero-padded instead.
    """

    def __init__(self, p: int) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        p = self.p
        if p == 0:
            return x
        if min(x.shape[-2:]) <= p:
            return F.pad(x, (p, p, p, p))
        x = torch.cat([x[..., :, 1 : p + 1].flip(-1), x, x[..., :, -p - 1 : -1].flip(-1)], dim=-1)
        return torch.cat([x[..., 1 : p + 1, :].flip(-2), x, x[..., -p - 1 : -1, :].flip(-2)], dim=-2)


class BilinearResize(nn.Module):
    """Resizes (N, C, H, W) maps to ``out_size`` exactly: bilinear, ``align_corners=False``.

    Same values as ``F.interpolate(..., mode="bilinear")``, computed as two matrix products with
    fixed interpolation matrices (non-persistent buffers that follow the module's device and
    dtype), so the gradient is deterministic on CUDA too.
    """

    rows: Tensor  # non-persistent buffers (registered in __init__), declared for the type checker
    cols: Tensor

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        super().__init__()
        self.in_size, self.out_size = tuple(in_size), tuple(out_size)
        self.register_buffer("rows", self._matrix(in_size[0], out_size[0]).t().contiguous(), persistent=False)
        self.register_buffer("cols", self._matrix(in_size[1], out_size[1]), persistent=False)

    @staticmethod
    def _matrix(n_in: int, n_out: int) -> Tensor:
        """(n_in, n_out): row i is the 1-D linear interpolation of the unit vector e_i."""
        eye = torch.eye(n_in, dtype=torch.float64).unsqueeze(1)
        return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[:, 0, :].float()

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(self.rows, torch.matmul(x, self.cols))


class ResBlock(nn.Module):
    """The generator's residual block: ``x + BN(conv3x3(ReLU(BN(conv3x3(x)))))``, reflection padded."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ReflectPad(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(),
            ReflectPad(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            nn.BatchNorm2d(ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _flat_grid(d: int, h: int, w: int) -> tuple[int, int, int]:
    """Where flat activations (d,) are laid out: (d / s^2, s, s) with the largest s <= min(h, w) dividing."""
    s = max(s for s in range(1, min(h, w) + 1) if d % (s * s) == 0)
    return (d // (s * s), s, s)


def _check_shape(name: str, shape: Any, lengths: tuple[int, ...]) -> tuple[int, ...]:
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) in lengths
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 1 for v in shape)
    )
    if not ok:
        what = " or ".join({1: "(d,)", 3: "(C, H, W)"}[n] for n in lengths)
        raise ValueError(f"{name} = {shape!r} is not a shape the decoder takes; allowed: {what} with positive ints")
    return tuple(int(v) for v in shape)


class ResNetDecoder(nn.Module):
    """The authors' ResNet-generator style decoder: activations ``z_shape`` -> images ``x_shape`` in [0, 1].

    Structure (BatchNorm, ReLU, no conv bias before a BatchNorm, as the authors' ``Autoencoder``)::

        reflect pad 3 + conv 7x7 (C -> width) + BN + ReLU
        n_down x [conv 3x3 stride 2 + BN + ReLU]           channels doubling, at most max_channels
        n_blocks x ResBlock                                (reflect pad + conv 3x3 + BN + ReLU + ... + BN, skip)
        n_down x [conv-transpose 3x3 stride 2 + BN + ReLU] the way down mirrored: back to H x W, C = width
        n_extra x [conv-transpose 3x3 stride 2 + BN + ReLU] on towards the image size, width channels
        exact bilinear resize to (h, w)                    only when the sizes do not already agree
        reflect pad 3 + conv 7x7 (-> c) + sigmoid

    It shapes itself from ``z_shape`` (C, H, W) and ``x_shape`` (c, h, w): the strided convs halve
    the map (rounding up) while the result stays at least 2 x 2, at most ``max_down`` times (4, the
    authors' count); the transposed convs undo each halving exactly (no output padding where a
    size was odd), so the map is back at H x W; then ``n_extra = round(log2(min(h, w) / min(H, W)))``
    doublings (never negative). A power-of-two ratio thus ends exactly at the image size; any other
    ratio ends within a factor sqrt(2) of it, and the resize fixes the rest. Flat activations
    ``(d,)`` are reshaped to ``(d / s^2, s, s)`` with the largest ``s <= min(h, w)`` for which that
    divides (``(3136,)`` for 28 x 28 images: 4 x 28 x 28); ``grid`` holds the shape used. The
    authors' decoder differs where it was fixed to one setting: always 4 downs and 5 ups, ``ngf``
    32, and a chain of 7x7/5x5 convs with no sigmoid at the end. ``n_down`` and ``n_up`` (all
    transposed convs) are kept as attributes. Padding and resizing avoid the PyTorch ops whose CUDA
    gradient is nondeterministic (see :class:`ReflectPad`, :class:`BilinearResize`), so the decoder
    trains under ``torch.use_deterministic_algorithms(True)`` on CUDA too.
    """

    def __init__(
        self,
        z_shape: tuple[int, ...],
        x_shape: tuple[int, int, int],
        width: int = 64,
        n_blocks: int = 3,
        max_channels: int = 512,
        max_down: int = 4,
    ) -> None:
        super().__init__()
        z_shape = _check_shape("z_shape", z_shape, (1, 3))
        c_x, h_x, w_x = _check_shape("x_shape", x_shape, (3,))
        for name, value, low in (("width", width, 1), ("n_blocks", n_blocks, 0), ("max_down", max_down, 0)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} = {value!r} is not allowed; allowed: an int >= {low}")
        if not isinstance(cast(object, max_channels), numbers.Integral) or max_channels < width:
            raise ValueError(f"max_channels = {max_channels!r} is not allowed; allowed: an int >= width ({width})")
        self.z_shape = z_shape
        self.x_shape = (c_x, h_x, w_x)
        # _check_shape gave 1 or 3 dims: (C, H, W) when not flat
        self.grid: tuple[int, int, int] = (
            _flat_grid(z_shape[0], h_x, w_x) if len(z_shape) == 1 else cast("tuple[int, int, int]", z_shape)
        )
        c_z, h, w = self.grid

        layers: list[nn.Module] = [
            ReflectPad(3),
            nn.Conv2d(c_z, width, 7, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        chs, sizes = [width], [(h, w)]
        while len(chs) - 1 < max_down and min(-(-h // 2), -(-w // 2)) >= 2:
            out = min(chs[-1] * 2, max_channels)
            layers += [nn.Conv2d(chs[-1], out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            h, w = -(-h // 2), -(-w // 2)
            chs.append(out)
            sizes.append((h, w))
        ch = chs[-1]
        layers += [ResBlock(ch) for _ in range(n_blocks)]
        n_down = len(chs) - 1
        for level in range(n_down, 0, -1):  # mirror the way down exactly (odd sizes: no output padding)
            (h_to, w_to), out = sizes[level - 1], chs[level - 1]
            pad = (h_to - (2 * h - 1), w_to - (2 * w - 1))
            layers += [
                nn.ConvTranspose2d(ch, out, 3, stride=2, padding=1, output_padding=pad, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            ch, h, w = out, h_to, w_to
        n_extra = max(0, round(math.log2(min(h_x, w_x) / min(h, w))))
        for _ in range(n_extra):  # then on to the image size, at ``width`` channels
            layers += [
                nn.ConvTranspose2d(ch, width, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            ch, h, w = width, h * 2, w * 2
        if (h, w) != (h_x, w_x):
            layers.append(BilinearResize((h, w), (h_x, w_x)))
        layers += [ReflectPad(3), nn.Conv2d(ch, c_x, 7), nn.Sigmoid()]
        n_up = n_down + n_extra
        self.n_down, self.n_up = n_down, n_up
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """(N, *z_shape) activations -> (N, *x_shape) images in [0, 1]."""
        if tuple(z.shape[1:]) != self.z_shape:
            raise ValueError(
                f"activations have shape {tuple(z.shape[1:])} per sample; this decoder takes {self.z_shape}"
            )
        return self.net(z.reshape(len(z), *self.grid))


def build_decoder(kind: str, z_shape: tuple[int, ...], x_shape: tuple[int, int, int], **options: Any) -> nn.Module:
    """The attacker's decoder ``kind`` (one of :data:`DECODERS`) for activations ``z_shape`` -> images ``x_shape``.

    ``"simple"``: :class:`Decoder` (option ``width``, default 32); ``"resnet"``: :class:`ResNetDecoder`
    (options ``width`` (64), ``n_blocks`` (3), ``max_channels`` (512), ``max_down`` (4)).
    """
    if kind == "simple":
        allowed: tuple[str, ...] = ("width",)
    elif kind == "resnet":
        allowed = ("width", "n_blocks", "max_channels", "max_down")
    else:
        raise ValueError(f"attack.decoder = {kind!r} is not a decoder kind; allowed: {', '.join(DECODERS)}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"decoder options {unknown} do not exist for {kind!r}; allowed: {', '.join(allowed)}")
    if kind == "simple":
        return Decoder(tuple(z_shape), cast("tuple[int, int, int]", tuple(x_shape)), **options)
    return ResNetDecoder(tuple(z_shape), cast("tuple[int, int, int]", tuple(x_shape)), **options)


# --------------------------------------------------------------------------------------------
# The judge: the attack-accuracy classifier, unlike every attacked architecture
# --------------------------------------------------------------------------------------------


def build_judge(in_shape: tuple[int, int, int], n_classes: int, width: int = 16) -> nn.Module:
    """The attack-accuracy classifier ("judge"), a small VGG-style CNN unlike every split architecture::

        conv 5x5 (c -> w) + BN + ReLU, conv 3x3 (w -> w) + BN + ReLU, maxpool 2
        conv 3x3 (w -> 2w) + BN + ReLU, maxpool 2, adaptive average pool to 4 x 4
        flatten -> linear 32w -> 128 + ReLU -> dropout 0.3 -> linear 128 -> n_classes

    A different network from the attacked one (BatchNorm, two convs before the first pool, no
    shared weights or initialisation, no layer of the same shape as the split CNN's), so the attack accuracy does not measure how similar a
    reconstruction is to what the attacked client's own first layers respond to.
    """
    c, _, _ = _check_in_shape("judge", in_shape)
    w = int(width)
    return nn.Sequential(
        nn.Conv2d(c, w, 5, padding=2),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1),
        nn.BatchNorm2d(2 * w),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * w, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, n_classes),
    )
