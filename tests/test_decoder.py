"""Tests for the reconstruction decoder plan, its output shapes and the autoencoder."""

import pytest
import torch

from olr.errors import OlrError
from olr.models.decoder import Autoencoder, Decoder, DecoderConfig, decoder_plan

# Small widths keep the forward passes fast; the plan's sizes do not depend on them.
TINY = DecoderConfig(width=8, first_channels=8, channels=4, last_channels=4)

# Rows of the decoder table of Karatsiolis and Kamilaris, ICPRAM 2021, for 178-pixel images:
# (kind, output size, channels, stride, padding).
PAPER_TABLE = [
    ("reshape", 6, 512, 0, ""),
    ("conv_transpose", 12, 128, 2, "same"),
    ("conv", 12, 64, 1, "same"),
    ("conv_transpose", 24, 64, 2, "same"),
    ("conv", 22, 64, 1, "valid"),
    ("conv_transpose", 44, 64, 2, "same"),
    ("conv", 44, 64, 1, "same"),
    ("conv_transpose", 88, 64, 2, "same"),
    ("conv", 88, 64, 1, "same"),
    ("conv_transpose", 176, 64, 2, "same"),
    ("conv", 176, 32, 1, "same"),
    ("output", 176, 3, 1, "same"),
]


def test_plan_178_matches_paper():
    plan = decoder_plan(178)
    assert plan[0].kind == "dense"
    assert plan[0].channels == 18432
    rows = [(s.kind, s.out_size, s.channels, s.stride, s.padding) for s in plan[1:]]
    assert rows == PAPER_TABLE


def test_plan_kernels_are_3():
    for spec in decoder_plan(178)[2:]:
        assert spec.kernel == 3


def test_dense_layer_178():
    decoder = Decoder(38, 32, 178)
    assert decoder.head.dense.in_features == 1216
    assert decoder.head.dense.out_features == 18432


@pytest.mark.parametrize("size", [178, 64, 32, 128, 96, 17, 33])
def test_plan_output_size(size):
    assert decoder_plan(size)[-1].out_size == size - 2


@pytest.mark.parametrize("size", [64, 32, 128, 96, 33])
def test_decoder_output_shape(size):
    decoder = Decoder(3, 4, size, TINY)
    conv_out, rescaled = decoder(torch.rand(2, 3, 4))
    assert conv_out.shape == (2, 3, size - 2, size - 2)
    assert rescaled.shape == (2, 3, size - 2, size - 2)


def test_decoder_output_shape_178():
    decoder = Decoder(38, 32, 178, TINY)
    conv_out, rescaled = decoder(torch.rand(1, 38, 32))
    assert conv_out.shape == (1, 3, 176, 176)
    assert rescaled.shape == (1, 3, 176, 176)


def test_rescaled_spans_unit_interval():
    torch.manual_seed(0)
    config = DecoderConfig(
        width=8, first_channels=8, channels=4, last_channels=4, output_activation="none"
    )
    _, rescaled = Decoder(2, 3, 32, config)(torch.rand(4, 2, 3))
    flat = rescaled.flatten(1)
    assert torch.allclose(flat.min(dim=1).values, torch.zeros(4), atol=1e-6)
    assert torch.allclose(flat.max(dim=1).values, torch.ones(4), atol=1e-5)


def test_relu_output_is_nonnegative():
    conv_out, _ = Decoder(2, 3, 32, TINY)(torch.randn(4, 2, 3))
    assert conv_out.min() >= 0


def test_size_too_small_raises():
    with pytest.raises(OlrError, match="too small"):
        decoder_plan(15)


def test_wrong_embedding_shape_raises():
    with pytest.raises(OlrError, match="expects embeddings"):
        Decoder(2, 3, 32, TINY)(torch.rand(1, 3, 2))


def test_invalid_output_activation_raises():
    with pytest.raises(OlrError, match="output_activation"):
        Decoder(2, 3, 32, DecoderConfig(output_activation="tanh"))


@pytest.mark.parametrize("size", [32, 64, 33])
def test_autoencoder_output_shape(size):
    model = Autoencoder(size, 12, TINY, encoder_channels=(4, 4, 4))
    conv_out, rescaled = model(torch.rand(2, 3, size, size))
    assert model.encode(torch.rand(2, 3, size, size)).shape == (2, 12)
    assert conv_out.shape == (2, 3, size - 2, size - 2)
    assert rescaled.shape == (2, 3, size - 2, size - 2)


def test_autoencoder_default_encoder():
    model = Autoencoder(64, 12, TINY)
    conv_out, _ = model(torch.rand(1, 3, 64, 64))
    assert conv_out.shape == (1, 3, 62, 62)
