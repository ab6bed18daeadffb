"""Networks: cut points and the self-shaping decoder."""

from __future__ import annotations

import pytest
import torch

from nopeek_repro.models import Decoder, activation_shape, build_split_cnn


@pytest.mark.parametrize("cut,shape", [(1, (16, 14, 14)), (2, (32, 7, 7))])
def test_cut_layer_sets_activation_shape(cut, shape):
    client, server = build_split_cnn(cut)
    assert activation_shape(client, (1, 28, 28)) == shape
    z = client(torch.rand(3, 1, 28, 28))
    assert server(z).shape == (3, 10)


def test_unknown_cut_is_an_error():
    with pytest.raises(ValueError, match="cut_layer must be 1 or 2"):
        build_split_cnn(3)


@pytest.mark.parametrize("z_shape,x_shape", [((16, 14, 14), (1, 28, 28)), ((32, 7, 7), (1, 28, 28)),
                                             ((8, 5, 5), (3, 32, 32)), ((4, 28, 28), (1, 28, 28))])
def test_decoder_shapes_itself(z_shape, x_shape):
    out = Decoder(z_shape, x_shape)(torch.rand(2, *z_shape))
    assert out.shape == (2, *x_shape)
    assert out.min() >= 0 and out.max() <= 1
