"""SemanticGAN: the generator's parts, the regularisers, inversion, and the refusals of its files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selfpanoptic.classes import NUM_CLASSES
from selfpanoptic.errors import InputError
from selfpanoptic.inversion import invert, inversion_learning_rate, reconstruction_error
from selfpanoptic.losses.gan_regularisation import (
    logistic_discriminator_loss, noise_regularisation, path_length_penalty, r1_penalty, soft_dice_loss,
)
from selfpanoptic.models.style_encoder import StyleEncoder, style_groups
from selfpanoptic.models.stylegan import ModulatedConv2d, SemanticGenerator, StyleOutput, level_widths
from selfpanoptic.models.stylegan_discriminator import ResidualDiscriminator, minibatch_stddev
from selfpanoptic.semantic_gan import load_encoder, load_generator, sample_fidelity_table
from selfpanoptic.gan_settings import InversionSettings
from selfpanoptic.train.engine import save_model_file
from selfpanoptic.train.semantic_gan import label_planes


def _styled(conv: ModulatedConv2d, scale: float) -> torch.Tensor:
    """A style that makes every input channel's scale ``scale`` (affine weights zeroed, bias = scale)."""
    with torch.no_grad():
        conv.modulation.weight.zero_()
        conv.modulation.bias.fill_(scale)
    return torch.zeros(1, conv.modulation.weight.shape[1])


def test_modulated_convolution_scales_the_weights_by_the_style_and_demodulation_undoes_the_scale():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 5, 6)
    plain = ModulatedConv2d(3, 4, 3, style_dim=8, demodulate=False)
    style = _styled(plain, 2.0)
    expected = F.conv2d(x, plain.weight[0] * plain.scale * 2.0, padding=1)
    torch.testing.assert_close(plain(x, style), expected)
    demodulated = ModulatedConv2d(3, 4, 3, style_dim=8, demodulate=True)
    outputs = [demodulated(x, _styled(demodulated, s)) for s in (0.5, 3.0)]
    torch.testing.assert_close(outputs[0], outputs[1])  # a uniform scale is divided out
    weight = demodulated.weight[0]
    unit = weight / weight.square().sum(dim=(1, 2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(outputs[0], F.conv2d(x, unit, padding=1), rtol=1e-4, atol=1e-5)


def test_modulated_convolution_gives_each_sample_its_own_weights():
    torch.manual_seed(1)
    conv = ModulatedConv2d(3, 2, 3, style_dim=4, upsample=True)
    x, styles = torch.randn(2, 3, 4, 5), torch.randn(2, 4)
    both = conv(x, styles)
    assert both.shape == (2, 2, 8, 10)
    for i in range(2):
        torch.testing.assert_close(both[i:i + 1], conv(x[i:i + 1], styles[i:i + 1]))


def test_an_output_head_adds_the_upsampled_output_of_the_level_before():
    head = StyleOutput(4, 3, style_dim=8)
    with torch.no_grad():
        head.conv.weight.zero_()
    x, skip = torch.randn(1, 4, 4, 6), torch.arange(6.0).view(1, 3, 1, 2).expand(1, 3, 2, 2).contiguous()
    out = head(x, torch.zeros(1, 8), skip)
    torch.testing.assert_close(out, F.interpolate(skip, size=(4, 6), mode="bilinear", align_corners=False))
    assert torch.equal(head(x, torch.zeros(1, 8)), torch.zeros(1, 3, 4, 6))  # no skip at the first level


def test_the_label_map_of_the_last_level_carries_the_coarser_levels_label_logits():
    torch.manual_seed(2)
    generator = SemanticGenerator(num_classes=5, size=(8, 16), levels=2, channels=4, max_channels=8, style_dim=8)
    last = generator.to_seg[-1]
    with torch.no_grad():
        last.conv.weight.zero_()
        last.bias.zero_()
    wplus = generator.styles(torch.randn(2, 8))
    noise = [torch.zeros(2, 1, h, w) for h, w in generator.noise_shapes()]
    _, logits = generator.synthesis(wplus, noise)
    # the same generator cut before its last level: its label logits, upsampled, are the output
    x = generator.base_conv(generator.constant.expand(2, -1, -1, -1), wplus[:, 0], noise[0])
    coarse = generator.to_seg[0](x, wplus[:, 1])
    x = generator.convs[1](generator.convs[0](x, wplus[:, 1], noise[1]), wplus[:, 2], noise[2])
    coarse = generator.to_seg[1](x, wplus[:, 3], coarse)
    torch.testing.assert_close(logits, F.interpolate(coarse, size=(8, 16), mode="bilinear", align_corners=False))


def test_generator_shapes_styles_and_widths():
    assert level_widths(16, 128, 4) == [128, 128, 64, 32, 16]
    generator = SemanticGenerator(num_classes=NUM_CLASSES, size=(16, 32), levels=2, channels=4, max_channels=8,
                                  style_dim=8)
    image, logits, wplus = generator(torch.randn(3, 8), torch.randn(3, 8), 2)
    assert image.shape == (3, 3, 16, 32) and logits.shape == (3, NUM_CLASSES, 16, 32)
    assert wplus.shape == (3, generator.num_styles, 8) == (3, 6, 8)
    # style mixing: the first two styles from one code, the rest from the other
    assert torch.equal(wplus[:, 0], wplus[:, 1]) and torch.equal(wplus[:, 2], wplus[:, 5])
    assert not torch.equal(wplus[:, 1], wplus[:, 2])
    with pytest.raises(ValueError, match="divisible"):
        SemanticGenerator(num_classes=3, size=(12, 32), levels=3)
    assert style_groups(10) == (2, 2, 6) and style_groups(18) == (3, 4, 11)


def test_minibatch_stddev_appends_each_groups_spread():
    x = torch.tensor([1.0, 3.0, 0.0, 0.0]).view(4, 1, 1, 1).expand(4, 2, 2, 2).contiguous()
    out = minibatch_stddev(x, group=2)
    assert out.shape == (4, 3, 2, 2)
    # groups are samples (0, 2) and (1, 3): std of (1, 0) is 0.5, of (3, 0) is 1.5
    torch.testing.assert_close(out[:, 2, 0, 0], torch.tensor([0.5, 1.5, 0.5, 1.5]), atol=1e-4, rtol=0)
    assert ResidualDiscriminator((16, 32), levels=2, channels=4, max_channels=8)(torch.randn(3, 3, 16, 32)).shape == (3, 1)


def test_r1_is_the_squared_gradient_norm_per_sample():
    a = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)  # the discriminator's weights
    x = torch.randn(2, 3, requires_grad=True)
    y = torch.randn(2, 1, requires_grad=True)
    # D(x, y) = a . x + 4 y: gradient norm^2 = 1 + 4 + 9 + 16 = 30 for every sample
    assert r1_penalty(x @ a + 4 * y[:, 0], [x, y]).item() == pytest.approx(30.0)
    penalty = r1_penalty(x @ a, [x])
    penalty.backward()  # the penalty trains the discriminator: d(a.a)/da = 2a
    torch.testing.assert_close(a.grad, 2 * a.detach())


def test_logistic_loss_by_hand():
    real, fake = torch.tensor([0.0]), torch.tensor([0.0])
    assert logistic_discriminator_loss(real, fake).item() == pytest.approx(2 * math.log(2))


def test_path_length_of_a_linear_generator():
    wplus = torch.randn(2, 3, 4, requires_grad=True)
    images = 5.0 * wplus.view(2, 1, 3, 4)  # H = 3 styles, W = 4 entries: J^T y = 5 y
    torch.manual_seed(3)
    penalty, lengths, mean = path_length_penalty(images, wplus, torch.tensor(0.0), decay=0.5)
    torch.manual_seed(3)
    y = torch.randn(2, 1, 3, 4) / math.sqrt(12)
    expected = torch.sqrt((5 * y).view(2, 3, 4).square().sum(2).mean(1))
    torch.testing.assert_close(lengths, expected)
    torch.testing.assert_close(mean, 0.5 * expected.mean())
    torch.testing.assert_close(penalty, (expected - 0.5 * expected.mean()).square().mean())


def test_noise_regularisation_is_zero_for_alternating_noise_and_counts_each_sample():
    checker = (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2 * 2.0 - 1  # +-1 checkerboard
    ones = torch.ones(1, 1, 8, 8)
    assert noise_regularisation([checker.view(1, 1, 8, 8)]).item() == pytest.approx(2.0)  # correlation -1 both ways
    assert noise_regularisation([ones.repeat(3, 1, 1, 1)]).item() == pytest.approx(6.0)
    # a 16x16 map is counted at 16 and at 8 pixels
    assert noise_regularisation([torch.ones(1, 1, 16, 16)]).item() == pytest.approx(4.0)


def test_soft_dice_and_label_planes_by_hand():
    labels = torch.tensor([[[0, 1, 255]]])
    probabilities = torch.tensor([[[[1.0, 0.5, 0.3]], [[0.0, 0.5, 0.7]]]])
    # class 0: 2 * 1 / (1.5 + 1); class 1: 2 * 0.5 / (0.5 + 1); the void pixel left out
    assert soft_dice_loss(probabilities, labels).item() == pytest.approx(1 - (0.8 + 2 / 3) / 2)
    planes = label_planes(labels, 2)
    assert planes[0, :, 0].tolist() == [[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]]


def test_inversion_learning_rate_warms_up_holds_and_ramps_down():
    rates = [inversion_learning_rate(0.1, t, 100) for t in (0, 2, 5, 50, 75, 99)]
    assert rates[0] == 0 and rates[1] == pytest.approx(0.04) and rates[2] == rates[3] == rates[4] == pytest.approx(0.1)
    assert 0 < rates[5] < 0.001


def _tiny(seed: int = 0) -> tuple[SemanticGenerator, StyleEncoder]:
    torch.manual_seed(seed)
    generator = SemanticGenerator(num_classes=NUM_CLASSES, size=(8, 16), levels=2, channels=8, max_channels=16,
                                  style_dim=16, mapping_layers=2).eval()
    encoder = StyleEncoder(generator.num_styles, 16, stages=3, channels=8).eval()
    encoder.mean_style.copy_(generator.mean_style(256))
    return generator, encoder


def test_inversion_reduces_the_reconstruction_error_and_each_image_is_its_own():
    generator, encoder = _tiny()
    with torch.no_grad():
        targets, _ = generator.synthesis(generator.styles(torch.randn(2, 16)),
                                         [torch.zeros(2, 1, h, w) for h, w in generator.noise_shapes()])
    settings = InversionSettings(steps=40, lr=0.1, mse=0.1, noise_regularisation=1000.0, latent=0.0, batch_size=2)
    result = invert(generator, encoder, targets, settings)
    assert (result.error < 0.5 * result.start_error).all(), (result.start_error, result.error)
    torch.testing.assert_close(result.error, reconstruction_error(result.images, targets, 0.1))
    alone = invert(generator, encoder, targets[:1], settings)
    torch.testing.assert_close(alone.wplus, result.wplus[:1], rtol=1e-4, atol=1e-4)
    encoder_only = invert(generator, encoder, targets, settings, steps=0)
    torch.testing.assert_close(encoder_only.error, result.start_error)


def test_sample_fidelity_table_by_hand():
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    confusion[0, 0], confusion[0, 1], confusion[1, 1] = 3, 1, 4  # road: 3/4; sidewalk: 4/5
    table = sample_fidelity_table(confusion).set_index("class")
    assert table.loc["road", "oracle_iou"] == 75.0 and table.loc["sidewalk", "oracle_iou"] == 80.0
    assert table.loc["road", "pixels"] == 50.0 and table.loc["mean", "oracle_iou"] == 77.5
    assert np.isnan(table.loc["mean", "model_iou"]) and np.isnan(table.loc["car", "oracle_iou"])


def _save_generator(path, generator, classes=None, size=(8, 16)):
    from selfpanoptic.classes import CLASS_NAMES

    spec = {"levels": 2, "channels": 8, "max_channels": 16, "style_dim": 16, "mapping_layers": 2,
            "num_classes": NUM_CLASSES, "size": list(size)}
    save_model_file(path, generator, "semantic_gan", spec, size, {"classes": classes or list(CLASS_NAMES)})
    return spec


def test_a_generator_of_another_label_set_or_size_is_refused(tmp_path):
    generator, encoder = _tiny()
    _save_generator(tmp_path / "g.pt", generator)
    loaded, saved = load_generator(tmp_path / "g.pt", (8, 16))
    torch.testing.assert_close(loaded.constant, generator.constant)
    with pytest.raises(InputError, match="draws 8x16 pixels, but the images here are 16x32"):
        load_generator(tmp_path / "g.pt", (16, 32))
    _save_generator(tmp_path / "other.pt", generator, classes=["road", "car"])
    with pytest.raises(InputError, match="another label set"):
        load_generator(tmp_path / "other.pt")
    with pytest.raises(InputError, match="no --encoder was given"):
        load_encoder(None, saved, tmp_path / "g.pt")
    spec = {"stages": 3, "channels": 8, "num_styles": generator.num_styles, "style_dim": 16}
    save_model_file(tmp_path / "e.pt", encoder, "gan_encoder", spec, (8, 16), {"generator_spec": dict(saved["spec"], channels=4)})
    with pytest.raises(InputError, match="another generator"):
        load_encoder(tmp_path / "e.pt", saved, tmp_path / "g.pt")
    with pytest.raises(InputError, match="is a semantic_gan model, but this command needs a gan_encoder model"):
        load_encoder(tmp_path / "g.pt", saved, tmp_path / "g.pt")


def test_the_config_refuses_pairs_that_do_not_exist_and_sizes_the_generator_cannot_draw():
    from selfpanoptic.config import validate_config

    validate_config({"semantic_gan": {"enabled": True, "labels_from": "round2"}})
    with pytest.raises(InputError, match="semantic_gan.labels_from is round3, but there is no such round"):
        validate_config({"semantic_gan": {"enabled": True, "labels_from": "round3"}})
    with pytest.raises(InputError, match="round0 has no pseudo-labels"):
        validate_config({"semantic_gan": {"enabled": True, "labels": "pseudo"}})
    with pytest.raises(InputError, match="mixing.translated is 0"):
        validate_config({"semantic_gan": {"enabled": True, "pairs": "translated"}})
    with pytest.raises(InputError, match=r"working size 48x128 .* not divisible by 2\*\*semantic_gan.generator.levels = 32"):
        validate_config({"data": {"height": 48, "width": 128}, "semantic_gan": {"enabled": True, "generator": {"levels": 5}}})
    validate_config({"semantic_gan": {"labels_from": "round9"}})  # off: not checked


# -- the stages on tiny caches ---------------------------------------------------------------------

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
TINY = {"pairs": "target_labels", "target_labels": 3,
        "train": {"steps": 4, "batch_size": 2, "checkpoint_every": 2},
        "generator": {"levels": 2, "channels": 4, "max_channels": 8, "style_dim": 8, "mapping_layers": 1},
        "discriminator": {"channels": 8, "layers": 2, "scales": 1},
        "encoder": {"stages": 3, "channels": 4, "train": {"steps": 2, "batch_size": 2}},
        "inversion": {"steps": 2, "batch_size": 4}, "samples": 3, "grid": 2}


def gan_settings(**extra) -> list[str]:
    import json

    return ["--semantic_gan-settings", json.dumps({**TINY, **extra})]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from selfpanoptic.cli import main
    from test_training import tiny_cache

    root = tmp_path_factory.mktemp("semantic_gan")
    target = tiny_cache(root / "target.h5")
    assert main(["train-semantic-gan", *gan_settings(), "--target", str(target), "--out", str(root / "g.pt"),
                 "--work-dir", str(root / "gw"), *CPU]) == 0
    assert main(["train-gan-encoder", *gan_settings(), "--generator", str(root / "g.pt"), "--target", str(target),
                 "--out", str(root / "e.pt"), "--work-dir", str(root / "ew"), *CPU]) == 0
    return root, target


def test_generator_training_resumes_exactly_after_a_crash(trained, tmp_path, capsys):
    from selfpanoptic.intermediates import DatasetCache
    from selfpanoptic.models import build_semantic_gan
    from selfpanoptic.gan_settings import SemanticGanSettings
    from selfpanoptic.stages.train_semantic_gan import generator_spec
    from selfpanoptic.train.engine import train
    from selfpanoptic.train.semantic_gan import GanCritics, GanData, semantic_gan_step

    from selfpanoptic.config import validate_config

    _, target = trained
    section = validate_config({"semantic_gan": TINY})["semantic_gan"]
    settings, cpu = SemanticGanSettings.from_config(section), torch.device("cpu")

    def run(work, crash_at=None):
        torch.manual_seed(0)
        generator = build_semantic_gan(generator_spec(section, (32, 64)))
        critics = GanCritics(generator, settings, cpu)
        with DatasetCache.open(target) as cache:
            data = GanData(cache, np.arange(6), cache, np.arange(3), lambda i: cache.read("labels", i))
            step = semantic_gan_step(data, generator, critics, settings, cpu)

            def crashing(model, rng, index):
                if index == crash_at:
                    raise RuntimeError("killed")
                return step(model, rng, index)

            train(generator, crashing, settings.train, work, "id", cpu, progress=False, extra_state={"critics": critics})
        return generator, critics

    reference, reference_critics = run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "work", crash_at=3)  # after the checkpoint at step 2
    capsys.readouterr()
    resumed, resumed_critics = run(tmp_path / "work")
    assert "resuming from the checkpoint at step 2" in capsys.readouterr().out
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    for part in ("image", "pair", "ema"):
        for key, value in reference_critics.state_dict()[part].items():
            assert torch.equal(value, resumed_critics.state_dict()[part][key]), (part, key)


def test_readout_writes_a_prediction_and_refuses_a_missing_encoder(trained, tmp_path, capsys):
    from selfpanoptic.cli import main
    from selfpanoptic.intermediates import SemanticPrediction

    root, target = trained
    out = tmp_path / "pred.h5"
    assert main(["predict-semantic-gan", *gan_settings(), "--generator", str(root / "g.pt"), "--encoder",
                 str(root / "e.pt"), "--data", str(target), "--out", str(out), "--grid", str(tmp_path / "g.png"), *CPU]) == 0
    with SemanticPrediction.open(out) as h5:
        labels = h5["labels"][()]
    assert labels.shape == (6, 32, 64) and labels.max() < NUM_CLASSES
    assert main(["predict-semantic-gan", *gan_settings(), "--generator", str(root / "g.pt"), "--data", str(target),
                 "--out", str(tmp_path / "none.h5"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "no --encoder was given" in err and "Traceback" not in err and not (tmp_path / "none.h5").exists()


def test_pairs_without_their_file_and_more_labels_than_images_are_refused(trained, tmp_path, capsys):
    from selfpanoptic.cli import main

    _, target = trained
    args = ["--target", str(target), "--out", str(tmp_path / "g.pt"), "--work-dir", str(tmp_path / "w"), *CPU]
    assert main(["train-semantic-gan", *gan_settings(pairs="pseudo"), *args]) == 2
    assert "semantic_gan.pairs is pseudo, which needs the round0 label maps, and no --labels" in capsys.readouterr().err
    assert main(["train-semantic-gan", *gan_settings(target_labels=9), *args]) == 2
    assert "set semantic_gan.target_labels to at most 6" in capsys.readouterr().err
    assert not (tmp_path / "g.pt").exists()


def test_samples_form_a_gta5_dataset_with_label_ids(trained, tmp_path):
    from selfpanoptic.cli import main
    from selfpanoptic.classes import label_ids_to_train_ids
    from PIL import Image

    def read_png(path):
        return np.asarray(Image.open(path))

    root, _ = trained
    assert main(["sample-semantic-gan", *gan_settings(), "--generator", str(root / "g.pt"), "--out",
                 str(tmp_path / "s"), "--grid", str(tmp_path / "s.png"), *CPU]) == 0
    images = sorted((tmp_path / "s/images").glob("*.png"))
    labels = sorted((tmp_path / "s/labels").glob("*.png"))
    assert [p.name for p in images] == [p.name for p in labels] == ["00000.png", "00001.png", "00002.png"]
    train_ids = label_ids_to_train_ids(read_png(labels[0]))
    assert train_ids.shape == (32, 64) and train_ids.max() < NUM_CLASSES  # every pixel a class, none void
    assert read_png(images[0]).shape == (32, 64, 3)


def test_report_section_shows_the_readouts_the_fidelity_and_both_grids(tmp_path):
    import pandas as pd

    from selfpanoptic.report_semantic_gan import semantic_gan_lines

    rows = [(run, "semantic", "mIoU", cls, value) for run, base in (("round0", 15.0), ("gan_inversion", 9.0))
            for cls, value in (("all", base), ("all16", base + 1), ("all13", base + 2))]
    table = pd.DataFrame(rows, columns=["run", "task", "metric", "class", "value"])
    for name in ("samples.png", "inversions.png"):
        (tmp_path / name).write_bytes(b"png")
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    confusion[0, 0], confusion[0, 1], confusion[1, 1] = 3, 1, 4
    sample_fidelity_table(confusion).to_csv(tmp_path / "fidelity.csv", index=False)
    out = tmp_path / "summary"
    lines = semantic_gan_lines(table, str(tmp_path / "samples.png"), str(tmp_path / "inversions.png"),
                               str(tmp_path / "fidelity.csv"), out)
    text = "\n".join(lines)
    assert "| round0 | 15.0 | 17.0 |" in text and "| gan_inversion | 9.0 | 11.0 |" in text
    assert "| gan_encoder |" not in text  # a run the table lacks gets no row
    assert "**77.5 mIoU** over the 2 classes the samples draw" in text
    assert "](../samples.png)" in text and "](../inversions.png)" in text
    with pytest.raises(InputError, match="SemanticGAN output does not exist"):
        semantic_gan_lines(table, str(tmp_path / "missing.png"), str(tmp_path / "inversions.png"), None, out)
