"""Networks: architectures and their cut points, the UTKFace head, the decoders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nopeek_repro import models
from nopeek_repro.models import (
    ARCHS,
    BilinearResize,
    Decoder,
    ReflectPad,
    ResNetDecoder,
    activation_shape,
    build_decoder,
    build_split_cnn,
    build_split_model,
    cut_points,
    default_cut,
)

# Small settings for the CPU: depth 20 has two blocks per stage (identity shortcuts included).
SMALL = {"cnn": ((1, 28, 28), {}), "resnet29": ((3, 32, 32), {"depth": 20}), "utkface": ((3, 64, 64), {"depth": 20})}


def n_params(*nets: torch.nn.Module) -> int:
    return sum(p.numel() for net in nets for p in net.parameters())


# ---- the split CNN (unchanged) ---------------------------------------------------------------


@pytest.mark.parametrize("cut,shape", [(1, (16, 14, 14)), (2, (32, 7, 7))])
def test_cut_layer_sets_activation_shape(cut, shape):
    client, server = build_split_cnn(cut)
    assert activation_shape(client, (1, 28, 28)) == shape
    z = client(torch.rand(3, 1, 28, 28))
    assert server(z).shape == (3, 10)


def test_unknown_cut_is_an_error():
    with pytest.raises(ValueError, match="cut_layer must be 1 or 2"):
        build_split_cnn(3)


def test_split_cnn_initialisation_is_unchanged():
    """Seed 0 gives the same parameters as before the registry existed (saved results stay valid)."""
    torch.manual_seed(0)
    client, server = build_split_cnn(1)
    assert list(client.state_dict()) + list(server.state_dict()) == [
        "0.0.weight",
        "0.0.bias",
        "0.0.weight",
        "0.0.bias",
        "1.1.weight",
        "1.1.bias",
        "1.3.weight",
        "1.3.bias",
    ]
    total = sum(float(p.detach().double().sum()) for p in [*client.parameters(), *server.parameters()])
    assert total == pytest.approx(3.139403334685639, abs=1e-9)


@pytest.mark.parametrize("cut", [1, "block1", 2, "block2"])
def test_cnn_arch_is_build_split_cnn(cut):
    torch.manual_seed(3)
    ref = build_split_cnn(1 if cut in (1, "block1") else 2, (1, 28, 28), 10)
    torch.manual_seed(3)
    got = build_split_model("cnn", cut, (1, 28, 28), 10)
    for a, b in zip(ref, got):
        assert type(a) is type(b)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- the registry ----------------------------------------------------------------------------


def test_unit_lists_and_default_cuts():
    assert ARCHS == ("cnn", "resnet29", "utkface")
    assert cut_points("cnn") == ["block1", "block2"]
    assert cut_points("resnet29") == ["stem"] + [f"stage{s}.block{b}" for s in range(3) for b in range(3)]
    assert cut_points("resnet29", depth=11) == ["stem", "stage0.block0", "stage1.block0", "stage2.block0"]
    assert cut_points("utkface")[:5] == ["conv1", "conv2", "conv3", "stem", "stage0.block0"]
    assert len(cut_points("utkface", depth=29)) == 13
    assert default_cut("cnn") == "block1"
    assert default_cut("resnet29") == "stage2.block1"
    assert default_cut("resnet29", depth=11) == "stage2.block0"
    assert default_cut("utkface") == "stage0.block0"
    assert default_cut("utkface", depth=29) == "stage0.block2"


@pytest.mark.parametrize("arch", ARCHS)
def test_every_cut_point_composes(arch):
    in_shape, opts = SMALL[arch]
    names = cut_points(arch, **opts)
    x = torch.rand(2, *in_shape)
    for k, name in enumerate(names, start=1):
        torch.manual_seed(0)
        client, server = build_split_model(arch, name, in_shape, 7 if arch != "utkface" else 2, **opts)
        z = client(x)
        assert tuple(z.shape[1:]) == activation_shape(client, in_shape)
        assert server(z).shape == (2, 7 if arch != "utkface" else 2)
        if arch != "cnn":
            assert client.unit_names == tuple(names[:k])
            assert server.unit_names == (*names[k:], "head")


def test_resnet29_default_cut_and_size():
    client, server = build_split_model("resnet29", None, (3, 32, 32), 10)
    assert client.unit_names[-1] == "stage2.block1"
    assert activation_shape(client, (3, 32, 32)) == (256, 8, 8)
    # The Keras summary of ResNet29v2 on CIFAR-10: 843,786 trainable (849,002 with BN moving stats).
    assert n_params(client, server) == 843_786
    assert server(client(torch.rand(2, 3, 32, 32))).shape == (2, 10)


@pytest.mark.parametrize(
    "cut,shape",
    [
        ("stem", (16, 32, 32)),
        ("stage0.block0", (64, 32, 32)),
        ("stage1.block0", (128, 16, 16)),
        ("stage2.block0", (256, 8, 8)),
    ],
)
def test_resnet_stage_shapes(cut, shape):
    client, _ = build_split_model("resnet29", cut, (3, 32, 32), 10, depth=11)
    assert activation_shape(client, (3, 32, 32)) == shape


def test_utkface_shapes_at_the_authors_size():
    client, _ = build_split_model("utkface", None, (3, 198, 198), 2)
    assert activation_shape(client, (3, 198, 198)) == (64, 25, 25)
    for cut, shape in [("conv1", (3, 97, 97)), ("conv2", (3, 49, 49)), ("conv3", (16, 25, 25))]:
        client, _ = build_split_model("utkface", cut, (3, 198, 198), 2)
        assert activation_shape(client, (3, 198, 198)) == shape


def test_cut_by_name_and_by_int_agree():
    x = torch.rand(3, 3, 32, 32)
    torch.manual_seed(1)
    a_client, a_server = build_split_model("resnet29", "stage1.block1", (3, 32, 32), 10, depth=20)
    torch.manual_seed(1)
    b_client, b_server = build_split_model("resnet29", 5, (3, 32, 32), 10, depth=20)
    assert (
        a_client.unit_names
        == b_client.unit_names
        == ("stem", "stage0.block0", "stage0.block1", "stage1.block0", "stage1.block1")
    )
    assert torch.equal(a_server(a_client(x)), b_server(b_client(x)))


def test_same_seed_same_network():
    x = torch.rand(2, 3, 64, 64)
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        client, server = build_split_model("utkface", None, (3, 64, 64), 8)
        outs.append(server(client(x)))
    assert torch.equal(*outs)


@pytest.mark.parametrize(
    "args,opts,message",
    [
        (("vgg", 1, (3, 32, 32), 10), {}, "model.arch = 'vgg' is not an architecture; allowed: cnn, resnet29, utkface"),
        (
            ("resnet29", "stage5.block0", (3, 32, 32), 10),
            {},
            "model.cut_layer = 'stage5.block0' is not a cut point of resnet29; allowed: stem, stage0.block0, "
            "stage0.block1, stage0.block2, stage1.block0, stage1.block1, stage1.block2, stage2.block0, stage2.block1, "
            "stage2.block2, or 1..10",
        ),
        (("resnet29", 0, (3, 32, 32), 10), {}, "model.cut_layer = 0 is not a cut point of resnet29"),
        (
            ("resnet29", 5, (3, 32, 32), 10),
            {"depth": 11},
            "allowed: stem, stage0.block0, stage1.block0, stage2.block0, or 1..4",
        ),
        (("resnet29", True, (3, 32, 32), 10), {}, "model.cut_layer = True is not a cut point"),
        (
            ("cnn", 3, (1, 28, 28), 10),
            {},
            "model.cut_layer = 3 is not a cut point of cnn; allowed: block1, block2, or 1..2",
        ),
        (("resnet29", 1, (3, 32, 32), 10), {"depth": 12}, "model.depth = 12 is not a ResNet-v2 depth; allowed: 9k + 2"),
        (
            ("resnet29", 1, (3, 32, 32), 10),
            {"width": 2},
            "model options ['width'] do not exist for resnet29; allowed: depth",
        ),
        (("cnn", 1, (1, 28, 28), 10), {"depth": 29}, "do not exist for cnn; allowed: none"),
        (
            ("utkface", 1, (3, 64, 64), 2),
            {"heads": ("gender", "race")},
            "model options ['heads'] do not exist for utkface",
        ),
        (("utkface", 1, (3, 4, 4), 2), {}, "in_shape = (3, 4, 4) is not an image shape for utkface"),
        (("resnet29", 1, (3, 32, 32), 0), {}, "n_classes = 0 is not a number of outputs"),
    ],
)
def test_bad_settings_are_named(args, opts, message):
    with pytest.raises(ValueError) as err:
        build_split_model(*args, **opts)
    assert message in str(err.value)


def test_cut_points_checks_arch():
    with pytest.raises(ValueError, match="model.arch = 'resnet50' is not an architecture"):
        cut_points("resnet50")


# ---- UTKFace head --------------------------------------------------------------------------------


def test_utkface_head_follows_n_classes_and_trains():
    torch.manual_seed(0)
    client, server = build_split_model("utkface", None, (3, 64, 64), 5)  # e.g. the race task
    out = server(client(torch.rand(4, 3, 64, 64)))
    assert out.shape == (4, 5)
    params = [*client.parameters(), *server.parameters()]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-3)
    loss = F.cross_entropy(out, torch.tensor([0, 1, 4, 2]))
    loss.backward()
    opt.step()
    assert all(p.grad is not None for p in params)
    assert any(not torch.equal(a, p) for a, p in zip(before, params))


# ---- decoders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "z_shape,x_shape",
    [((16, 14, 14), (1, 28, 28)), ((32, 7, 7), (1, 28, 28)), ((8, 5, 5), (3, 32, 32)), ((4, 28, 28), (1, 28, 28))],
)
def test_decoder_shapes_itself(z_shape, x_shape):
    out = Decoder(z_shape, x_shape)(torch.rand(2, *z_shape))
    assert out.shape == (2, *x_shape)
    assert out.min() >= 0 and out.max() <= 1


def _utkface_cut_shape() -> tuple[int, ...]:
    client, _ = build_split_model("utkface", None, (3, 64, 64), 2)
    return activation_shape(client, (3, 64, 64))


@pytest.mark.parametrize(
    "z_shape,x_shape,resized",
    [
        ((16, 14, 14), (1, 28, 28), False),
        ((32, 7, 7), (1, 28, 28), False),
        ((256, 8, 8), (3, 32, 32), False),
        ((64, 32, 32), (3, 32, 32), False),
        ((128, 16, 16), (3, 32, 32), False),
        ("utkface", (3, 64, 64), False),
        ((3136,), (1, 28, 28), False),
        ((500,), (1, 28, 28), True),
        ((16, 13, 11), (1, 26, 22), False),
        ((8, 5, 5), (3, 32, 32), True),
    ],
)
def test_resnet_decoder_shapes_itself(z_shape, x_shape, resized):
    if z_shape == "utkface":
        z_shape = _utkface_cut_shape()
        assert z_shape == (64, 8, 8)
    torch.manual_seed(0)
    decoder = ResNetDecoder(z_shape, x_shape)
    out = decoder(torch.rand(2, *z_shape))
    assert out.shape == (2, *x_shape)
    assert out.min() >= 0 and out.max() <= 1
    assert any(isinstance(m, BilinearResize) for m in decoder.modules()) == resized
    assert min(decoder.grid[1:]) < 2 or decoder.n_down >= 1


def test_resnet_decoder_structure():
    d = ResNetDecoder((64, 32, 32), (3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].kernel_size == (7, 7) and convs[-1].kernel_size == (7, 7)
    assert d.n_down == 4 and d.n_up == 4  # 32 -> 2 x 2, at 64, 128, 256, 512 channels
    assert max(m.out_channels for m in convs) == 512
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in d.modules()) == 4
    assert ResNetDecoder((3136,), (1, 28, 28)).grid == (4, 28, 28)


def test_resnet_decoder_trains_deterministically():
    def run() -> torch.Tensor:
        torch.manual_seed(0)
        d = build_decoder("resnet", (32, 7, 7), (1, 28, 28), width=16, n_blocks=1)
        opt = torch.optim.Adam(d.parameters(), lr=1e-3)
        z, x = torch.rand(4, 32, 7, 7), torch.rand(4, 1, 28, 28)
        for _ in range(2):
            opt.zero_grad()
            loss = F.mse_loss(d(z), x)
            loss.backward()
            opt.step()
        return d(z)

    assert torch.equal(run(), run())


def test_resnet_decoder_errors():
    with pytest.raises(ValueError, match=r"z_shape = \(4, 4\) is not a shape the decoder takes"):
        ResNetDecoder((4, 4), (1, 28, 28))
    d = ResNetDecoder((32, 7, 7), (1, 28, 28), width=8)
    with pytest.raises(ValueError, match=r"activations have shape \(16, 14, 14\) per sample"):
        d(torch.rand(2, 16, 14, 14))


def test_padding_and_resize_match_torch():
    x = torch.rand(2, 3, 7, 6)
    assert torch.equal(ReflectPad(3)(x), F.pad(x, (3, 3, 3, 3), mode="reflect"))
    for size in [(28, 28), (5, 9)]:
        ref = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        assert torch.allclose(BilinearResize((7, 6), size)(x), ref, atol=1e-6)


def test_build_decoder_kinds():
    assert isinstance(build_decoder("simple", (16, 14, 14), (1, 28, 28)), Decoder)
    assert isinstance(build_decoder("resnet", (16, 14, 14), (1, 28, 28), width=8), ResNetDecoder)
    with pytest.raises(ValueError, match="attack.decoder = 'unet' is not a decoder kind; allowed: simple, resnet"):
        build_decoder("unet", (16, 14, 14), (1, 28, 28))
    with pytest.raises(ValueError, match=r"decoder options \['n_blocks'\] do not exist for 'simple'"):
        build_decoder("simple", (16, 14, 14), (1, 28, 28), n_blocks=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_under_deterministic_algorithms(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        client, server = build_split_model("resnet29", None, (3, 32, 32), 10, depth=11)
        client, server = client.cuda(), server.cuda()
        assert activation_shape(client, (3, 32, 32)) == (256, 8, 8)
        x = torch.rand(4, 3, 32, 32, device="cuda")
        F.cross_entropy(server(client(x)), torch.tensor([0, 1, 2, 3], device="cuda")).backward()
        decoder = ResNetDecoder((500,), (1, 28, 28), width=16).cuda()  # reflection padding and a resize
        F.mse_loss(decoder(torch.rand(4, 500, device="cuda")), torch.rand(4, 1, 28, 28, device="cuda")).backward()
    finally:
        torch.use_deterministic_algorithms(was)


def test_what_sits_at_the_cut_adds_no_parameter_and_keeps_the_initial_weights():
    torch.manual_seed(0)
    plain, _ = models.build_split_model("cnn", "block1", (1, 28, 28), 10)
    x = torch.rand(5, 1, 28, 28)
    for at_cut in ("batchnorm", "leakyrelu"):
        torch.manual_seed(0)
        client, server = models.build_split_model("cnn", "block1", (1, 28, 28), 10, at_cut=at_cut)
        assert [p.tolist() for p in client.parameters()] == [p.tolist() for p in plain.parameters()]
        z = client(x)
        assert z.shape == (5, 16, 14, 14) and server(z).shape == (5, 10)
    torch.manual_seed(0)
    bn, _ = models.build_split_model("cnn", "block1", (1, 28, 28), 10, at_cut="batchnorm")
    norm = bn[-1]
    assert isinstance(norm, nn.BatchNorm2d) and not norm.affine and norm.num_features == 16
    z = bn.train()(x)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-5  # standardised per channel over the batch
    torch.manual_seed(0)
    leaky, _ = models.build_split_model("cnn", "block2", (1, 28, 28), 10, at_cut="leakyrelu")
    acts = [type(m).__name__ for m in leaky.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert acts == ["ReLU", "LeakyReLU"]  # only the last one, the one at the cut
    assert (leaky(x) < 0).any()
    assert models.with_at_cut(plain, "none") is plain
    with pytest.raises(ValueError, match="model.at_cut = 'gelu': allowed: none, batchnorm, leakyrelu"):
        models.build_split_model("cnn", "block1", (1, 28, 28), 10, at_cut="gelu")
