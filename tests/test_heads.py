"""Segmentation heads (:mod:`selfpanoptic.models.heads`) and the semantic model hosting them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfpanoptic.models import DeepLab
from selfpanoptic.models.heads import ASPP, LEVELS, DAFormerHead, SegFormerHead

BACKBONES = ["resnet18", "mit_b0", "dinov2_vits14"]
ODD = (50, 70)  # neither a multiple of 32 nor of DINOv2's patch 14


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pyramid(channels: dict[str, int], height: int = 13, width: int = 18) -> dict[str, torch.Tensor]:
    """Random feature maps at strides 4..32 of an odd-sized image (sizes rounded up, as convolutions do)."""
    feats = {}
    for name in LEVELS:
        feats[name] = torch.randn(2, channels[name], height, width)
        height, width = (height + 1) // 2, (width + 1) // 2
    return feats


@pytest.mark.parametrize("head_class", [DAFormerHead, SegFormerHead])
def test_multi_level_heads_give_layer1_sized_logits(head_class):
    channels = {"layer1": 8, "layer2": 16, "layer3": 24, "layer4": 32}
    head = head_class(channels, num_classes=5, embed_channels=16).eval()
    with torch.no_grad():
        assert head(pyramid(channels)).shape == (2, 5, 13, 18)


def test_daformer_head_is_daformers_sepaspp_design():
    channels = {"layer1": 8, "layer2": 16, "layer3": 24, "layer4": 32}
    head = DAFormerHead(channels, num_classes=5, embed_channels=16)
    assert all(head.embed[n].kernel_size == (1, 1) and head.embed[n].bias is not None for n in LEVELS)
    fuse = head.fuse
    assert fuse.pool is None and len(fuse.branches) == 4  # dilations 1, 6, 12, 18; no image pooling
    assert fuse.branches[0][0].kernel_size == (1, 1)
    for branch, rate in zip(fuse.branches[1:], (6, 12, 18)):
        depthwise, pointwise = branch[0][0], branch[1][0]
        assert depthwise.groups == 64 and depthwise.dilation == (rate, rate) and depthwise.kernel_size == (3, 3)
        assert pointwise.kernel_size == (1, 1) and pointwise.out_channels == 16
    assert fuse.project[0].kernel_size == (3, 3) and fuse.project[0].in_channels == 4 * 16
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1


def test_segformer_head_fuses_with_one_1x1_conv():
    channels = {"layer1": 8, "layer2": 16, "layer3": 24, "layer4": 32}
    head = SegFormerHead(channels, num_classes=5, embed_channels=16)
    assert head.fuse[0].kernel_size == (1, 1) and head.fuse[0].in_channels == 64
    assert isinstance(head.fuse[1], nn.BatchNorm2d) and head.dropout.p == 0.1


def test_aspp_options_and_unchanged_default_layout():
    """The default ASPP keeps the state-dict keys of model files written before the options."""
    aspp = ASPP(8, 4, [1, 2])
    assert sorted({k.rsplit(".", 1)[0] for k in aspp.state_dict()}) == [
        "branches.0.0", "branches.0.1", "branches.1.0", "branches.1.1", "branches.2.0", "branches.2.1",
        "pool.1", "project.0", "project.1"]
    x = torch.randn(2, 8, 5, 7)
    for separable in (False, True):
        for pool in (False, True):
            assert ASPP(8, 4, [2, 3], separable, pool, 3).eval()(x).shape == (2, 4, 5, 7)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("head", ["daformer", "segformer", "deeplabv3plus"])
def test_heads_on_every_backbone_at_an_odd_size(backbone, head):
    torch.manual_seed(0)
    model = DeepLab(num_classes=7, head=head, backbone=backbone, aspp_rates=(1, 2), channels=16,
                    embed_channels=16).eval()
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad():
        feats = model.encoder(x)
        logits = model(x)
        assert logits.shape == (1, 7, *ODD)
        assert torch.equal(logits, model.classify(feats, ODD))  # forward = classify(encoder(x))
        if head != "deeplabv3plus":
            assert model.head(feats).shape[-2:] == feats["layer1"].shape[-2:]
    head_ids = {id(p) for p in model.head_parameters()}
    assert head_ids and not head_ids & {id(p) for p in model.encoder.parameters()}
    assert len(head_ids) + len(list(model.encoder.parameters())) == len(list(model.parameters()))


def test_transformer_backbones_ignore_the_resnet_output_stride():
    model = DeepLab(num_classes=3, head="daformer", backbone="mit_b0", output_stride=8, embed_channels=16)
    assert model.encoder.output_stride == 32


def test_unknown_head_names_the_choices():
    from selfpanoptic.errors import InputError

    with pytest.raises(InputError, match="unknown semantic head 'fcn'.*daformer, segformer"):
        DeepLab(head="fcn")
