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


# --- transformer backbones, new heads, init files, model files (tiny inputs, one thread) ---

@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _semantic_spec(**changes):
    return dict(validate_config({})["semantic"]["model"], **changes)


def _instance_spec(**changes):
    return dict(validate_config({})["instance"]["model"], **changes)


@pytest.mark.parametrize("backbone", ["resnet18", "mit_b0", "dinov2_vits14"])
def test_embedding_unet_on_any_backbone_at_an_odd_size(backbone, one_thread):
    model = EmbeddingUNet(embedding_dim=4, backbone=backbone, decoder_channels=8).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 50, 70)).shape == (1, 4, 50, 70)
    assert model.encoder.output_stride == 32


def test_model_files_round_trip_a_transformer_model(tmp_path, one_thread):
    from selfpanoptic.models import build_instance_model, model_from_file
    from selfpanoptic.train.engine import save_model_file

    torch.manual_seed(0)
    x = torch.randn(1, 3, 40, 56)
    specs = {"semantic": _semantic_spec(backbone="mit_b0", head="daformer", embed_channels=32, drop_path=0.1),
             "instance": _instance_spec(backbone="mit_b0", decoder_channels=8, drop_path=0.1)}
    for kind, spec in specs.items():
        model = (build_semantic_model if kind == "semantic" else build_instance_model)(spec).eval()
        save_model_file(tmp_path / f"{kind}.pt", model, kind, spec, (40, 56))
        rebuilt = model_from_file(tmp_path / f"{kind}.pt", kind)
        assert type(rebuilt.encoder) is type(model.encoder)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x)), kind


def test_model_files_without_the_new_keys_still_build():
    """Specs saved before drop_path / embed_channels existed take their defaults."""
    from selfpanoptic.models import build_instance_model

    old = {k: v for k, v in _semantic_spec().items() if k not in ("drop_path", "embed_channels")}
    assert isinstance(build_semantic_model(old), DeepLab)
    old = {k: v for k, v in _instance_spec().items() if k != "drop_path"}
    assert isinstance(build_instance_model(old), EmbeddingUNet)


def test_ema_update_of_a_transformer_model(one_thread):
    from selfpanoptic.pseudo.teacher import frozen_copy, momentum_update

    torch.manual_seed(0)
    student = DeepLab(num_classes=5, head="daformer", backbone="mit_b0", embed_channels=16, drop_path=0.1)
    teacher = frozen_copy(student)
    student.train()(torch.randn(2, 3, 32, 48)).mean().backward()  # moves the BatchNorm statistics
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.01)
    before, s = teacher.state_dict(), student.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    momentum_update(teacher, student, momentum=0.75)
    after = teacher.state_dict()
    assert after.keys() == s.keys()
    for name, value in after.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * before[name] + 0.25 * s[name], atol=1e-6), name
        else:
            assert torch.equal(value, s[name]), name
    assert any("encoder" in k for k in after) and any("running_mean" in k for k in after)
    with torch.no_grad():
        assert torch.isfinite(teacher(torch.randn(1, 3, 32, 48))).all()


def test_schema_takes_and_checks_the_new_model_keys():
    from selfpanoptic.errors import SelfPanopticError

    config = validate_config({"semantic": {"model": {"backbone": "mit_b5", "head": "daformer", "drop_path": 0.1}},
                              "instance": {"model": {"backbone": "dinov2_vitb14", "drop_path": 0.2}}})
    assert config["semantic"]["model"]["embed_channels"] == 256
    assert config["instance"]["model"]["drop_path"] == 0.2
    defaults = validate_config({})
    assert defaults["semantic"]["model"]["drop_path"] == 0.0 and defaults["instance"]["model"]["drop_path"] == 0.0
    for bad in ({"semantic": {"model": {"drop_path": 1.0}}}, {"semantic": {"model": {"embed_channels": 4}}},
                {"semantic": {"model": {"head": "upernet"}}}, {"instance": {"model": {"backbone": "mit_b6"}}},
                {"instance": {"model": {"drop_path": -0.1}}}):
        with pytest.raises(SelfPanopticError):
            validate_config(bad)


def test_drop_path_on_a_resnet_is_refused_naming_the_key():
    from selfpanoptic.models import build_instance_model

    with pytest.raises(InputError, match=r"semantic\.model\.drop_path"):
        build_semantic_model(_semantic_spec(drop_path=0.1))
    with pytest.raises(InputError, match=r"instance\.model\.drop_path"):
        build_instance_model(_instance_spec(drop_path=0.1))


def test_init_path_missing_names_the_key_and_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(InputError) as info:
        build_semantic_model(_semantic_spec(init=str(missing)))
    message = str(info.value)
    assert "semantic.model.init" in message and str(missing) in message and "does not exist" in message


def test_init_path_tells_model_files_from_encoder_files(tmp_path, one_thread):
    from selfpanoptic.train.engine import save_model_file

    torch.manual_seed(0)
    spec = _semantic_spec(backbone="mit_b0", head="segformer", embed_channels=16)
    source = build_semantic_model(spec)
    save_model_file(tmp_path / "model.pt", source, "semantic", spec, (32, 48))
    # a selfpanoptic model file: the build leaves the encoder alone, init_from_checkpoint loads all
    model = build_semantic_model(dict(spec, init=str(tmp_path / "model.pt")))
    init_from_checkpoint(model, str(tmp_path / "model.pt"), "semantic")
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())
    # an encoder weight file (timm's PVTv2 layout, which SegFormer's mit_b0.pth is remapped to): the encoder only
    torch.save(source.encoder.model.state_dict(), tmp_path / "mit_b0.pth")
    model = build_semantic_model(dict(spec, init=str(tmp_path / "mit_b0.pth")))
    init_from_checkpoint(model, str(tmp_path / "mit_b0.pth"), "semantic")  # nothing more to do
    assert all(torch.equal(v, source.encoder.state_dict()[k]) for k, v in model.encoder.state_dict().items())
    assert not torch.equal(model.head.classifier.weight, source.head.classifier.weight)


def test_init_with_a_torchvision_resnet_file_and_a_foreign_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    reference = resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = build_semantic_model(_semantic_spec(init=str(tmp_path / "resnet18.pth")))
    assert torch.equal(model.encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match=r"semantic\.model\.init") as info:
        build_semantic_model(_semantic_spec(init=str(tmp_path / "other.pth")))
    assert "other.pth" in str(info.value)


def test_default_models_draw_their_initial_weights_in_the_published_order():
    """Modules draw their initial weights in creation order: building the default models in another
    order (e.g. the ASPP's dilated branches before its 1x1 branch) changes every published number.
    These sums are those of the models the docs' tables were measured with (seed 0)."""
    from selfpanoptic.config import validate_config
    from selfpanoptic.models import build_instance_model, build_semantic_model

    config = validate_config({})
    torch.manual_seed(0)
    semantic = build_semantic_model(config["semantic"]["model"]).state_dict()
    torch.manual_seed(0)
    instance = build_instance_model(config["instance"]["model"]).state_dict()
    expected = {"aspp.branches.0.0.weight": 1448.219429027998, "aspp.branches.1.0.weight": 4343.331194944802,
                "head.weight": 106.49333428024875}
    for key, total in expected.items():
        assert float(semantic[key].double().abs().sum()) == pytest.approx(total, rel=1e-9), key
    assert float(instance["up3.convs.0.0.weight"].double().abs().sum()) == pytest.approx(5317.358974615714, rel=1e-9)
