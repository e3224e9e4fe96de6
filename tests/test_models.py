"""Model construction: heads, backbones, output strides, initialisation errors."""

from __future__ import annotations

import pytest
import torch

from selfpanoptic.errors import InputError
from selfpanoptic.models import DeepLab, EmbeddingUNet, ResNetEncoder, build_semantic_model, init_from_checkpoint
from selfpanoptic.config import validate_config


@pytest.mark.parametrize("output_stride, layer4_size", [(8, (4, 8)), (16, (2, 4)), (32, (1, 2))])
def test_dilated_encoder_output_stride(output_stride, layer4_size):
    encoder = ResNetEncoder("resnet18", output_stride)
    feats = encoder(torch.zeros(1, 3, 32, 64))
    assert feats["layer4"].shape[-2:] == layer4_size
    assert feats["layer1"].shape[-2:] == (8, 16)


@pytest.mark.parametrize("head", ["deeplabv2", "deeplabv3", "deeplabv3plus"])
def test_deeplab_heads_give_full_resolution_logits(head):
    model = DeepLab(num_classes=19, head=head, aspp_rates=(1, 2), channels=16).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 64)).shape == (2, 19, 32, 64)
    head_ids = {id(p) for p in model.head_parameters()}
    assert head_ids and not head_ids & {id(p) for p in model.encoder.parameters()}


def test_embedding_unet_shape():
    model = EmbeddingUNet(embedding_dim=8, decoder_channels=16).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 64)).shape == (1, 8, 32, 64)


def test_imagenet_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(InputError) as info:
        ResNetEncoder("resnet18", 16, weights="imagenet")
    message = str(info.value)
    assert "not available offline" in message and str(tmp_path) in message and "resnet18" in message


def test_init_from_missing_checkpoint_names_the_file(tmp_path):
    spec = validate_config({})["semantic"]["model"]
    model = build_semantic_model(spec)
    with pytest.raises(InputError, match="model file does not exist"):
        init_from_checkpoint(model, str(tmp_path / "nope.pt"), "semantic")


def test_unknown_backbone():
    with pytest.raises(InputError, match="unknown backbone 'resnet7'"):
        ResNetEncoder("resnet7")
