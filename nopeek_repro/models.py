"""Networks: the split CNN with its cut points, and the attacker's decoder.

Split CNN for small grey images (28x28 MNIST):

    block 1: conv 3x3 (1 -> 16) + ReLU + maxpool 2     -> Z of shape 16 x 14 x 14   (cut_layer=1)
    block 2: conv 3x3 (16 -> 32) + ReLU + maxpool 2    -> Z of shape 32 x 7 x 7     (cut_layer=2)
    head:    flatten -> linear 1568 -> 128 + ReLU -> linear 128 -> n_classes

The client holds blocks ``1..cut_layer``; the server holds the rest. The default cut (after the
first block) leaves activations that a decoder can invert, which is the setting NoPeek defends.

Decoder (attacker): maps an activation of shape (C, H, W) back to an image (c, h, w). It shapes
itself from the two shapes: a 3x3 conv to ``width`` channels, then (2x nearest upsampling + 3x3
conv + ReLU) until the spatial size reaches the image's, a bilinear resize if the sizes are not a
power-of-two ratio, a 3x3 conv to ``c`` channels and a sigmoid (images live in [0, 1]).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


def build_split_cnn(
    cut_layer: int = 1, in_shape: tuple[int, int, int] = (1, 28, 28), n_classes: int = 10
) -> tuple[nn.Module, nn.Module]:
    """(client, server) networks of the split CNN, cut after conv block ``cut_layer`` (1 or 2)."""
    if cut_layer not in (1, 2):
        raise ValueError(f"cut_layer must be 1 or 2 (conv blocks of the client), got {cut_layer!r}")
    c, h, w = in_shape
    blocks = [conv_block(c, 16), conv_block(16, 32)]
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, n_classes)
    )
    client = nn.Sequential(*blocks[:cut_layer])
    server = nn.Sequential(*blocks[cut_layer:], head)
    return client, server


def activation_shape(client: nn.Module, in_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The shape of one sample's cut-layer activation (what the client sends)."""
    was_training = client.training
    client.eval()
    with torch.no_grad():
        shape = tuple(client(torch.zeros(1, *in_shape)).shape[1:])
    client.train(was_training)
    return shape


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
            out = max(ch // 2, 16)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 3, padding=1), nn.ReLU()]
            ch, size = out, size * 2
        if size != h_x:
            layers.append(nn.Upsample(size=(h_x, w_x), mode="bilinear", align_corners=False))
        layers += [nn.Conv2d(ch, c_x, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
