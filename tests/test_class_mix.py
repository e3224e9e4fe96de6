"""Cross-domain mixing (ClassMix): the masks, the paste, and both self-training steps with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfpanoptic.augment.class_mix import half_of_ids, paste
from selfpanoptic.classes import IGNORE
from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.train.self_instance import MixCrops, _mix_instances

from test_selftrain_training import CPU, round0, selftrain_settings  # noqa: F401 (module fixture)


def test_half_of_ids_picks_half_of_the_present_classes_rounded_up():
    labels = np.array([[[0, 0, 1, 1],
                        [2, 2, IGNORE, IGNORE]],
                       [[5, 5, 5, 5],
                        [IGNORE, IGNORE, IGNORE, IGNORE]],
                       [[IGNORE] * 4, [IGNORE] * 4]], dtype=np.int64)
    masks = half_of_ids(labels, np.random.default_rng(3))
    # image 0: three classes -> two chosen; the ignore label is never pasted
    chosen0 = set(np.unique(labels[0][masks[0]]).tolist())
    assert len(chosen0) == 2 and chosen0 <= {0, 1, 2}
    assert np.array_equal(masks[0], np.isin(labels[0], sorted(chosen0)))
    # image 1: one class -> it is chosen; image 2: nothing to choose
    assert np.array_equal(masks[1], labels[1] == 5)
    assert not masks[2].any()


def test_half_of_ids_follows_the_generator_and_skips_the_background_for_instances():
    instances = np.array([[[0, 3, 3, 7], [0, 9, 9, 7]]], dtype=np.int64)
    masks = half_of_ids(instances, np.random.default_rng(0), exclude=(0,))
    order = np.random.default_rng(0).permutation(3)  # ids [3, 7, 9], ceil(3 / 2) = 2 drawn
    expected = np.isin(instances[0], np.array([3, 7, 9])[order[:2]])
    assert np.array_equal(masks[0], expected)
    assert not masks[0][instances[0] == 0].any()
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        half_of_ids(instances[0], np.random.default_rng(0))


def test_paste_takes_the_source_inside_the_mask_for_maps_and_images():
    mask = torch.tensor([[[True, False], [False, True]]])
    source = torch.tensor([[[1, 2], [3, 4]]])
    target = torch.tensor([[[10, 20], [30, 40]]])
    assert paste(mask, source, target).tolist() == [[[1, 20], [30, 4]]]
    images_source = torch.ones(1, 3, 2, 2)
    images_target = torch.zeros(1, 3, 2, 2)
    mixed = paste(mask, images_source, images_target)
    assert torch.equal(mixed, mask.unsqueeze(1).expand(1, 3, 2, 2).float())
    with pytest.raises(ValueError, match="bool"):
        paste(mask.long(), source, target)
    with pytest.raises(ValueError, match="share"):
        paste(mask, source, target[:, :1])


def test_pasted_instances_get_ids_above_the_pseudo_instances_and_cut_them():
    pseudo = torch.tensor([[[1, 1, 2, 0]], [[0, 0, 0, 0]]])
    source_ids = torch.tensor([[[0, 5, 5, 6]], [[4, 4, 0, 0]]])
    masks = torch.tensor([[[False, True, True, False]], [[True, True, False, False]]])
    images = torch.zeros(2, 3, 1, 4)
    mix = MixCrops(torch.ones(2, 3, 1, 4), source_ids, masks)
    things = torch.tensor([[[True, True, True, False]], [[False] * 4]])
    parts = {}
    mixed, instances, mixed_things = _mix_instances(images, pseudo, things, mix, parts)
    # image 0: source id 5 -> 5 + 2 (largest pseudo id); pseudo 1 keeps one pixel, 2 is covered
    assert instances.tolist() == [[[1, 7, 7, 0]], [[4, 4, 0, 0]]]
    assert torch.equal(mixed[:, 0], masks.float())
    assert mixed_things.tolist() == [[[True, True, True, False]], [[True, True, False, False]]]
    assert parts["pasted"] == pytest.approx(4 / 8)


def test_semantic_selftraining_with_class_mix_pastes_and_trains(round0, tmp_path):  # noqa: F811
    runs = {}
    for name, mix in (("plain", False), ("mixed", True)):
        settings = selftrain_settings(train={"steps": 3, "batch_size": 2, "crop": [32, 64]}, class_mix=mix)
        assert main(["selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                     "--source", str(round0["cache"]), "--round", "1", "--out", str(tmp_path / f"{name}.pt"),
                     "--work-dir", str(tmp_path / name), "--selftrain-settings", json.dumps(settings), *CPU]) == 0
        runs[name] = torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]
    log = (tmp_path / "mixed" / "metrics.csv").read_text().splitlines()
    header = log[0].split(",")
    pasted = [float(row.split(",")[header.index("pasted")]) for row in log[1:]]
    assert all(0 < share < 1 for share in pasted)
    assert "pasted" not in (tmp_path / "plain" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert any(not torch.equal(runs["plain"][k], runs["mixed"][k]) for k in runs["plain"]
               if runs["plain"][k].is_floating_point())


def test_semantic_class_mix_needs_a_source_cache(round0, tmp_path, capsys):  # noqa: F811
    settings = selftrain_settings(train={"steps": 1, "batch_size": 2, "crop": [32, 64]}, class_mix=True,
                                  source_batch_size=0)
    assert main(["selftrain-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--round", "1", "--out", str(tmp_path / "m.pt"), "--work-dir", str(tmp_path / "w"),
                 "--selftrain-settings", json.dumps(settings), *CPU]) == 2
    err = capsys.readouterr().err
    assert "class_mix" in err and "--source" in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_instance_selftraining_with_class_mix_logs_the_pasted_share(round0, tmp_path):  # noqa: F811
    semantic = tmp_path / "semantic.h5"
    assert main(["predict-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--out", str(semantic), *CPU]) == 0
    config = validate_config({"instance": {"groups": {"vehicles": ["car"]}}, "selftrain": {"instance": {
        "train": {"steps": 2, "batch_size": 4, "crop": [32, 64]}, "min_size": 4, "min_confidence": 0.0,
        "source_fraction": 0.0, "class_mix": True,
    }}})
    assert main(["selftrain-instance", "--model", str(round0["instance"]), "--data", str(round0["cache"]),
                 "--semantic", str(semantic), "--source", str(round0["cache"]), "--out", str(tmp_path / "r1.pt"),
                 "--work-dir", str(tmp_path / "r1"), "--round", "1", "--group", "vehicles", *CPU,
                 "--selftrain-settings", json.dumps({"instance": config["selftrain"]["instance"]}),
                 "--instance-settings", json.dumps(config["instance"])]) == 0
    log = (tmp_path / "r1" / "metrics.csv").read_text().splitlines()
    header = log[0].split(",")
    assert all(float(row.split(",")[header.index("pasted")]) > 0 for row in log[1:])


def test_the_semantic_step_refuses_class_mix_without_a_source_cache():
    from selfpanoptic.settings import SelfSemanticSettings
    from selfpanoptic.train.self_semantic import SelfSemanticData, self_semantic_step

    section = validate_config({})["selftrain"]["semantic"]
    assert section["class_mix"] is True  # the default
    with pytest.raises(ValueError, match="source cache"):
        self_semantic_step(torch.nn.Identity(), None, SelfSemanticData(target=None), SelfSemanticSettings.from_config(section),
                           torch.device("cpu"))
