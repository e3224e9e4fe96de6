"""Generative co-learning and linear self-correction: the pure functions on hand-checkable
arrays, the generation head, and both options through the training stages on tiny caches."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.losses.focal import focal_confidence_ce
from selfpanoptic.losses.generation import (
    co_learning_beta, discriminator_loss, generator_adversarial_loss, reconstruction_loss,
)
from selfpanoptic.losses.self_correction import annealed_alpha, self_corrected_targets
from selfpanoptic.models import build_semantic_model, model_from_file
from selfpanoptic.models.generation import GenerationHead, PatchDiscriminator
from selfpanoptic.settings import CoLearningSettings, TrainSettings
from selfpanoptic.train.co_learning import CoLearner, CoLearning, depth_target, segmenter_of
from test_selftrain_training import CPU, TINY_TRAIN, round0, selftrain_settings  # noqa: F401 (fixture)
from test_training import tiny_cache

# -- linear self-correction ---------------------------------------------------------------------

STUDENT = torch.tensor([2.0, 0.0, -1.0]).view(1, 3, 1, 1)
ANCILLARY = torch.tensor([-1.0, 1.0, 0.5]).view(1, 3, 1, 1)


def test_alpha_zero_gives_the_student_and_a_huge_alpha_the_ancillary_model():
    assert torch.allclose(self_corrected_targets(STUDENT, ANCILLARY, 0.0), torch.softmax(STUDENT, 1))
    assert torch.allclose(self_corrected_targets(STUDENT, ANCILLARY, 1e6), torch.softmax(ANCILLARY, 1), atol=1e-5)


def test_targets_are_the_normalised_weighted_geometric_mean_of_the_two_distributions():
    alpha = 3.0
    p, p_anc = torch.softmax(STUDENT, 1), torch.softmax(ANCILLARY, 1)
    geometric = (p * p_anc ** alpha) ** (1.0 / (1.0 + alpha))
    expected = geometric / geometric.sum(dim=1, keepdim=True)
    got = self_corrected_targets(STUDENT, ANCILLARY, alpha)
    assert torch.allclose(got, expected, atol=1e-6)
    # by hand: mixed logits (l + 3 l_anc) / 4 = (-0.25, 0.75, 0.125)
    mixed = torch.tensor([-0.25, 0.75, 0.125])
    assert torch.allclose(got.flatten(), torch.exp(mixed) / torch.exp(mixed).sum(), atol=1e-6)


def test_targets_ignore_log_probability_offsets_and_carry_no_gradient():
    student = STUDENT.clone().requires_grad_(True)
    shifted = torch.log_softmax(ANCILLARY, 1)  # logits minus a per-pixel constant
    got = self_corrected_targets(student, shifted, 2.0)
    assert torch.allclose(got, self_corrected_targets(STUDENT, ANCILLARY, 2.0), atol=1e-6)
    assert not got.requires_grad


def test_alpha_is_annealed_geometrically_from_start_to_end():
    assert annealed_alpha(30.0, 0.5, 0, 11) == pytest.approx(30.0)
    assert annealed_alpha(30.0, 0.5, 10, 11) == pytest.approx(0.5)
    assert annealed_alpha(30.0, 0.5, 5, 11) == pytest.approx(math.sqrt(15.0))
    with pytest.raises(ValueError):
        annealed_alpha(0.0, 0.5, 0, 10)


def test_soft_targets_keep_the_pixels_and_weights_of_the_hard_labels():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]]).T.reshape(1, 2, 1, 3)  # 3 pixels, 2 classes
    labels = torch.tensor([[[0, 1, 255]]])
    confidence = torch.tensor([[[0.5, 1.0, 1.0]]])
    prior = torch.tensor([0.5, 0.0])
    one_hot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).reshape(1, 2, 1, 3)
    hard = focal_confidence_ce(logits, labels, confidence, prior, power=1.0)
    assert torch.allclose(focal_confidence_ce(logits, labels, confidence, prior, 1.0, targets=one_hot), hard)
    # by hand: pixel 0 (class 0, weight 0.5, confidence 0.5) with q = (0.25, 0.75), pixel 1 hard
    soft = one_hot.clone()
    soft[0, :, 0, 0] = torch.tensor([0.25, 0.75])
    log_p0 = torch.log_softmax(torch.tensor([1.0, 0.0]), 0)
    log_p1 = torch.log_softmax(torch.tensor([0.0, 2.0]), 0)
    expected = (0.5 * 0.5 * -(0.25 * log_p0[0] + 0.75 * log_p0[1]) + 1.0 * 1.0 * -log_p1[1]) / 2
    assert focal_confidence_ce(logits, labels, confidence, prior, 1.0, targets=soft).item() == pytest.approx(
        expected.item(), rel=1e-6)


# -- generation losses ---------------------------------------------------------------------------

def test_reconstruction_loss_averages_over_known_entries_only():
    generated = torch.tensor([0.0, 0.5, 1.0, 0.2]).view(1, 1, 2, 2).requires_grad_(True)
    target = torch.tensor([1.0, float("nan"), 0.5, 0.2]).view(1, 1, 2, 2)
    assert reconstruction_loss(generated, target, "l1").item() == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert reconstruction_loss(generated, target, "l2").item() == pytest.approx((1.0 + 0.25 + 0.0) / 3)
    unknown = reconstruction_loss(generated, torch.full_like(target, float("nan")))
    assert unknown.item() == 0.0 and unknown.requires_grad
    unknown.backward()  # no NaN leaks into the gradient
    assert torch.isfinite(generated.grad).all()


def test_gan_losses_at_an_undecided_discriminator_are_log_two():
    zero = torch.zeros(2, 1, 3, 3)
    assert generator_adversarial_loss(zero).item() == pytest.approx(math.log(2))
    assert discriminator_loss(zero, zero).item() == pytest.approx(math.log(2))
    confident = torch.full((2, 1, 3, 3), 20.0)
    assert discriminator_loss(confident, -confident).item() == pytest.approx(0.0, abs=1e-6)


def test_beta_schedules():
    assert co_learning_beta("constant", 0.3, 7, 10) == 0.3
    assert co_learning_beta("linear", 0.3, 0, 11) == 1.0
    assert co_learning_beta("linear", 0.3, 5, 11) == pytest.approx(0.5)
    assert co_learning_beta("linear", 0.3, 10, 11) == 0.0


def test_depth_target_saturates_near_and_keeps_unknown():
    inverse = torch.tensor([[[1.0, 0.25, 0.0, float("nan")]]])  # 1 m, 4 m, infinity, unknown
    got = depth_target(inverse, near_m=2.0)
    assert got.shape == (1, 1, 1, 4)
    assert got[0, 0, 0, :3].tolist() == [1.0, 0.5, 0.0] and math.isnan(got[0, 0, 0, 3])


# -- the head and the discriminator ----------------------------------------------------------------

@pytest.mark.parametrize("skips", [True, False])
def test_generation_head_gives_an_image_in_unit_range_at_the_input_size(skips):
    model = build_semantic_model(validate_config({})["semantic"]["model"])
    head = GenerationHead(model.encoder.channels, 3, 16, skips)
    net = CoLearner(model, head).eval()
    x = torch.randn(2, 3, 37, 70)
    out = net.generate(x)
    assert out.shape == (2, 3, 37, 70) and 0.0 <= out.min() and out.max() <= 1.0
    assert torch.equal(net(x), model(x))  # the wrapper segments as the model does
    encoder = {id(p) for p in model.encoder.parameters()}
    assert all(id(p) not in encoder for p in net.head_parameters())
    assert {id(p) for p in head.parameters()} <= {id(p) for p in net.head_parameters()}
    assert segmenter_of(net) is model and segmenter_of(model) is model


def test_patch_discriminator_scores_patches():
    disc = PatchDiscriminator(4, 8)
    assert disc(torch.rand(2, 3, 32, 64), torch.rand(2, 1, 32, 64)).shape == (2, 1, 6, 14)


def test_gan_co_learning_trains_its_discriminator_and_restores_it():
    settings = validate_config({"semantic": {"co_learning": {"enabled": True, "loss": "gan", "channels": 16,
                                                                "gan": {"channels": 8}}}})["semantic"]["co_learning"]
    settings = CoLearningSettings.from_config(settings)
    task = CoLearning(settings, 10, torch.device("cpu"))
    net = task.wrap(build_semantic_model(validate_config({})["semantic"]["model"]))
    before = {k: v.clone() for k, v in task.state_dict()["discriminator"].items()}
    loss, parts = task.loss(net, torch.rand(2, 3, 32, 64), None, np.random.default_rng(0))
    assert torch.isfinite(loss) and {"generation", "discriminator", "adversarial"} <= set(parts)
    after = task.state_dict()
    assert any(not torch.equal(before[k], after["discriminator"][k]) for k in before)
    other = CoLearning(settings, 10, torch.device("cpu"))
    other.load_state_dict(after)
    assert all(torch.equal(v, other.state_dict()["discriminator"][k]) for k, v in after["discriminator"].items())


# -- through the stages -----------------------------------------------------------------------------

def _pretrain(cache, out, work, co_learning, target=None) -> int:
    config = validate_config({"semantic": {"train": TINY_TRAIN, "co_learning": {"enabled": True, "channels": 16,
                                                                                 "samples": 2, **co_learning}}})
    extra = ["--target", str(target)] if target else []
    return main(["pretrain-semantic", "--data", str(cache), *extra, "--out", str(out), "--work-dir", str(work),
                 "--semantic-settings", json.dumps(config["semantic"]), *CPU])


def test_pretraining_with_rgb_co_learning_saves_only_the_deeplab_and_the_audit_figure(tmp_path):
    cache = tiny_cache(tmp_path / "cache.h5")
    assert _pretrain(cache, tmp_path / "model.pt", tmp_path / "work", {"target_batch_size": 1}, target=cache) == 0
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert not any(k.startswith("generator") for k in saved["state_dict"])
    model_from_file(tmp_path / "model.pt", "semantic")  # loads as a plain DeepLab
    from selfpanoptic.pngio import read_rgb
    figure = read_rgb(tmp_path / "co_learning.png")
    assert figure.shape == (2 * 32, 3 * 64, 3)  # two images: input | generated | real
    inputs = figure[:, :64]
    assert (inputs[..., 0] == inputs[..., 1]).all()  # the rgb generator sees greyscale
    header = (tmp_path / "work" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"ce", "generation", "beta"} <= set(header)


def test_depth_co_learning_without_depth_in_the_caches_is_refused(tmp_path, capsys):
    cache = tiny_cache(tmp_path / "cache.h5")
    assert _pretrain(cache, tmp_path / "model.pt", tmp_path / "work", {"target": "depth"}) == 2
    err = capsys.readouterr().err
    assert "co_learning.target is depth" in err and "Traceback" not in err
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("ancillary", ["teacher", "previous_round"])
def test_selftraining_with_self_correction_and_co_learning_runs_and_logs_alpha(round0, tmp_path, ancillary):  # noqa: F811
    settings = selftrain_settings(
        train={"steps": 3, "batch_size": 2, "crop": [32, 64]},
        self_correction={"enabled": True, "ancillary": ancillary},
        co_learning={"enabled": True, "channels": 16, "samples": 1, "loss": "gan", "gan": {"channels": 8}},
    )
    assert main(["selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--source", str(round0["cache"]), "--round", "1", "--out", str(tmp_path / "r1.pt"),
                 "--work-dir", str(tmp_path / "work"), "--selftrain-settings", json.dumps(settings), *CPU]) == 0
    rows = (tmp_path / "work" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"alpha", "target", "generation", "discriminator", "beta"} <= set(header)
    alphas = [float(r.split(",")[header.index("alpha")]) for r in rows[1:]]
    assert alphas[0] == pytest.approx(30.0) and alphas[-1] == pytest.approx(0.5)
    assert (tmp_path / "co_learning.png").is_file()
    model_from_file(tmp_path / "r1.pt", "semantic")


def test_gan_co_learning_resumes_exactly_after_a_crash(tmp_path, capsys):
    from selfpanoptic.intermediates import DatasetCache
    from selfpanoptic.train.engine import train
    from selfpanoptic.train.semantic import semantic_step

    cache_path = tiny_cache(tmp_path / "cache.h5")
    section = validate_config({"semantic": {
        "train": {"steps": 4, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 2},
        "co_learning": {"enabled": True, "loss": "gan", "channels": 16, "gan": {"channels": 8}},
    }})["semantic"]
    cpu = torch.device("cpu")

    def run(work, crash_at=None):
        torch.manual_seed(0)
        task = CoLearning(CoLearningSettings.from_config(section["co_learning"]), 4, cpu)
        net = task.wrap(build_semantic_model(section["model"]))
        with DatasetCache.open(cache_path) as cache:
            step = semantic_step(cache, TrainSettings.from_config(section["train"]), cpu, task, cache, 1)

            def crashing(model, rng, index):
                if index == crash_at:
                    raise RuntimeError("killed")
                return step(model, rng, index)

            train(net, crashing, TrainSettings.from_config(section["train"]), work, "id", cpu, progress=False, extra_state={"co_learning": task})
        return net, task

    reference, reference_task = run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "work", crash_at=3)  # after the checkpoint at step 2
    capsys.readouterr()
    resumed, resumed_task = run(tmp_path / "work")
    # a restart from step 0 would match too; the discriminator's state matters only when resumed
    assert "resuming from the checkpoint at step 2" in capsys.readouterr().out
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    for key, value in reference_task.state_dict()["discriminator"].items():
        assert torch.equal(value, resumed_task.state_dict()["discriminator"][key]), key
