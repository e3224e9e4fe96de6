"""Encoders by name: feature-map sizes, strides, drop path, parameter counts, offline weights, locked keys."""

from __future__ import annotations

import hashlib
import math
import re
import socket
import urllib.request

import pytest
import torch

from selfpanoptic.errors import InputError
from selfpanoptic.models.encoders import DINOV2S, ENCODERS, MITS, TRANSFORMERS, build_encoder
from selfpanoptic.models.pretrained import IMAGENET_FILES, read_state_dict
from selfpanoptic.models.transformers import DINOV2_CONFIGS, LEVELS, MIT_CONFIGS, _resample

_BUILT: dict[str, torch.nn.Module] = {}


def encoder(name: str) -> torch.nn.Module:
    """One eval-mode encoder per name for the whole file (building a ViT takes seconds on CPU)."""
    if name not in _BUILT:
        torch.manual_seed(0)
        _BUILT[name] = build_encoder(name).eval()
    return _BUILT[name]


def test_name_lists_agree_with_the_configs():
    assert set(MITS) == set(MIT_CONFIGS) and set(DINOV2S) == set(DINOV2_CONFIGS)
    assert set(TRANSFORMERS) == set(IMAGENET_FILES) and set(TRANSFORMERS) < set(ENCODERS)
    assert {"resnet18", "resnet34", "resnet50", "resnet101"} < set(ENCODERS)


@pytest.mark.parametrize("name", ["resnet18", "mit_b0", "dinov2_vits14"])
@pytest.mark.parametrize("size", [(50, 70), (13, 29)])
def test_four_levels_of_ceil_sizes_at_odd_inputs(name, size):
    model = encoder(name)
    with torch.no_grad():
        feats = model(torch.randn(2, 3, *size))
    assert model.output_stride == 32 and set(LEVELS) <= set(feats)
    for level, stride in zip(LEVELS, (4, 8, 16, 32)):
        expected = (2, model.channels[level], math.ceil(size[0] / stride), math.ceil(size[1] / stride))
        assert tuple(feats[level].shape) == expected and feats[level].dtype == torch.float32
    areas = [feats[level].shape[-2] * feats[level].shape[-1] for level in LEVELS]
    assert areas == sorted(areas, reverse=True) and areas[0] > areas[-1]  # layer1 finest, layer4 coarsest


def test_pyramid_resampling_keeps_pixel_centres():
    # a map at stride 14 whose value is each cell's pixel-centre x; resampled to stride 16 it must
    # still hold each new cell's pixel-centre x wherever the two grids overlap (away from the border)
    cells = 9
    ramp = (14 * (torch.arange(cells) + 0.5)).view(1, 1, 1, cells).expand(1, 1, 3, cells)
    out = _resample(ramp, 14 / 16, (3, math.ceil(14 * cells / 16)))
    centres = 16 * (torch.arange(out.shape[-1]) + 0.5)
    inside = (centres >= 7) & (centres <= 14 * (cells - 0.5))
    assert torch.allclose(out[0, 0, 1, inside], centres[inside])


@pytest.mark.parametrize("name", ["mit_b0", "dinov2_vits14"])
def test_drop_path_makes_training_passes_differ(name):
    torch.manual_seed(0)
    model = build_encoder(name, drop_path=0.5)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.5)  # linear from 0 to the rate, like SegFormer
    x = torch.randn(2, 3, 50, 70)
    with torch.no_grad():
        first, second = model.train()(x)["layer4"], model(x)["layer4"]
        assert not torch.allclose(first, second)
        model.eval()
        assert torch.equal(model(x)["layer4"], model(x)["layer4"])


def test_argument_errors():
    with pytest.raises(InputError, match="drop_path is for transformer backbones"):
        build_encoder("resnet18", drop_path=0.1)
    for name in ("mit_b0", "dinov2_vits14"):
        with pytest.raises(InputError, match=r"semantic\.model\.output_stride: 32"):
            build_encoder(name, output_stride=16)
    with pytest.raises(InputError, match=r"drop_path must be in \[0, 1\)"):
        build_encoder("mit_b0", drop_path=1.0)
    with pytest.raises(InputError, match="unknown backbone 'mit_b9'"):
        build_encoder("mit_b9")


def test_parameter_counts():
    # Counted: every parameter of the encoder, i.e. the backbone without any classifier (timm is
    # built with num_classes=0; a 1000-class head would add 513,000 to mit_b5 and 257,000 to
    # mit_b0). MiT-B5 = timm's pvt_v2_b5 without its head = HF SegformerModel: 81.44 M. MiT-B0
    # is smaller than PVTv2-B0 (3.67 M) because its MLP ratio is 4, not 8. DINOv2: the ViT alone
    # is ViT-S/14 22.06 M, ViT-B/14 86.58 M; the simple pyramid adds its transposed convolutions.
    # Built on the meta device: shapes only, no memory and no random initialisation.
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in build_encoder(name).parameters()) for name in
                  ("mit_b0", "mit_b5", "dinov2_vits14", "dinov2_vitb14")}
        vit_s = sum(p.numel() for p in build_encoder("dinov2_vits14").model.parameters())
    assert counts["mit_b0"] == 3_319_392 and 3.3e6 < counts["mit_b0"] < 3.7e6
    assert counts["mit_b5"] == 81_443_008 and abs(counts["mit_b5"] / 1e6 - 81.44) < 0.1
    assert vit_s == 22_056_192
    assert counts["dinov2_vits14"] == vit_s + 1_771_392  # pyramid: 3 transposed 2x2 convs 384->384, a norm
    assert counts["dinov2_vitb14"] == 93_661_440


# sha256 over sorted "key shape" lines of the whole encoder state dict: a timm rename or
# re-layout (which would orphan saved model files) fails here
LOCKED_KEYS = {
    "mit_b0": (176, "29fe3ca04d31ff7a301efbefef1ac218c39afca921ca19135d758985eafd0b73"),
    "dinov2_vits14": (182, "26afeb9a0470d7089bfa7997e9dbb3db114db1e6ad2fa92de2f9bf346224b1c3"),
}


@pytest.mark.parametrize("name", sorted(LOCKED_KEYS))
def test_state_dict_keys_are_locked(name):
    with torch.device("meta"):
        state = build_encoder(name).state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(state.items()))
    assert (len(state), hashlib.sha256(text.encode()).hexdigest()) == LOCKED_KEYS[name]
    spot = {"mit_b0": ["model.patch_embed.proj.weight", "model.stages.0.blocks.0.attn.kv.weight",
                       "model.stages.3.downsample.proj.weight", "model.stages.3.norm.weight"],
            "dinov2_vits14": ["model.pos_embed", "model.blocks.11.ls2.gamma", "model.norm.weight",
                              "pyramid.up4.0.weight", "pyramid.up2.weight"]}[name]
    assert set(spot) <= set(state)


def _forbid_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_imagenet_weights_never_touch_the_network(tmp_path, monkeypatch):
    _forbid_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for name in ENCODERS:
        with pytest.raises(InputError, match="not available offline") as info:
            build_encoder(name, weights="imagenet")
        message = str(info.value)
        assert str(tmp_path / "hub" / "checkpoints") in message, message
        if name in TRANSFORMERS:
            assert all(file_name in message for file_name in IMAGENET_FILES[name]) and "`none`" in message
    assert "SegFormer" in message or "dinov2" in message
    with pytest.raises(InputError) as info:
        build_encoder("dinov2_vits14", weights="imagenet")
    assert "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth" in str(info.value)
    with pytest.raises(InputError, match="pvt_v2_b5.pth") as info:
        build_encoder("mit_b5", weights="imagenet")
    assert "NVlabs/SegFormer" in str(info.value)
    with pytest.raises(InputError, match="weight file for the mit_b0 encoder does not exist"):
        build_encoder("mit_b0", weights=str(tmp_path / "nope.pth"))


def _to_segformer_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's PVTv2 keys -> SegFormer's mit_b*.pth keys (the inverse of timm's checkpoint_filter_fn)."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^patch_embed\.", "patch_embed1.", key)
        key = re.sub(r"^stages\.(\d)\.downsample\.", lambda m: f"patch_embed{int(m[1]) + 1}.", key)
        key = re.sub(r"^stages\.(\d)\.blocks\.(\d+)\.", lambda m: f"block{int(m[1]) + 1}.{m[2]}.", key)
        key = re.sub(r"^stages\.(\d)\.norm\.", lambda m: f"norm{int(m[1]) + 1}.", key)
        out[key.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")] = value.clone()
    return out


def _assert_same_weights(model: torch.nn.Module, reference: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(reference)
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def test_segformer_mit_file_loads_from_the_hub_cache(tmp_path, monkeypatch):
    _forbid_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = encoder("mit_b0").model.state_dict()
    fake = _to_segformer_layout(source)
    assert {"patch_embed1.proj.weight", "block1.0.attn.q.weight", "block1.0.attn.kv.weight",
            "block1.0.attn.sr.weight", "block1.0.mlp.dwconv.dwconv.weight", "norm1.weight",
            "patch_embed4.norm.bias", "block4.1.mlp.fc2.weight"} <= set(fake)
    fake["head.weight"], fake["head.bias"] = torch.randn(1000, 256), torch.zeros(1000)  # ImageNet classifier
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(fake, checkpoints / "mit_b0.pth")
    torch.manual_seed(1)  # a different random init, so equality proves the file was loaded
    _assert_same_weights(build_encoder("mit_b0", weights="imagenet").model, source)

    # an mmseg segmentor checkpoint (DAFormer, SegFormer training) given by path: its backbone part loads
    segmentor = {"backbone." + k: v for k, v in fake.items()}
    segmentor["decode_head.conv_seg.weight"] = torch.zeros(19, 256, 1, 1)
    torch.save({"meta": {}, "state_dict": segmentor}, tmp_path / "daformer.pth")
    _assert_same_weights(build_encoder("mit_b0", weights=str(tmp_path / "daformer.pth")).model, source)

    broken = {k: v for k, v in fake.items() if k != "block1.0.attn.q.weight"}
    broken["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(InputError) as info:
        build_encoder("mit_b0", weights=str(tmp_path / "broken.pth"))
    message = str(info.value)
    assert str(tmp_path / "broken.pth") in message and "stages.0.blocks.0.attn.q.weight" in message
    assert "extra.weight" in message


def test_dinov2_file_in_meta_layout_loads(tmp_path, monkeypatch):
    _forbid_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = {k: v.clone() for k, v in encoder("dinov2_vits14").model.state_dict().items()}
    fake = dict(source, mask_token=torch.zeros(1, 384))  # Meta's file also holds the iBOT mask token
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(fake, checkpoints / "dinov2_vits14_pretrain.pth")
    torch.manual_seed(1)
    loaded = build_encoder("dinov2_vits14", weights="imagenet")
    _assert_same_weights(loaded.model, source)
    with torch.no_grad():  # the ViT is the same; the new pyramid is random, so compare the ViT only
        x = torch.randn(1, 3, 50, 70)
        assert torch.allclose(loaded.model.forward_features(x), encoder("dinov2_vits14").model.forward_features(x))


def test_resnet_weights_from_a_torchvision_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(2)
    net = resnet18()
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    model = build_encoder("resnet18", output_stride=16, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(model.stem[0].weight, net.conv1.weight) and torch.equal(model.layer4[1].bn2.bias,
                                                                                 net.layer4[1].bn2.bias)


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    torch.save({"weights": torch.zeros(1), "args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")
    with pytest.raises(InputError, match="pickled Python objects"):
        read_state_dict(tmp_path / "pickled.pth")
