"""Scores at the ground truth's resolution, the official-format exports, and agreement of both with
cityscapesscripts' own evaluators on the same files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import random_cityscapes_split
from selfpanoptic.cli import main
from selfpanoptic.classes import CLASS_NAMES, THING_TRAIN_IDS
from selfpanoptic.config import validate_config
from selfpanoptic.data.ground_truth import GroundTruth
from selfpanoptic.formats.semantic_png import write_semantic_prediction
from selfpanoptic.intermediates import InstancePrediction, SemanticPrediction
from selfpanoptic.metrics.instance import min_region_size_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from official_eval import instance_level, pixel_level  # noqa: E402  (cityscapesscripts, bridged to numpy 2)

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
GT_SIZE, WORK_SIZE = (48, 96), (24, 48)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict:
    """A random Cityscapes val split at 48x96, its index, its 24x48 cache and a 1-step semantic model."""
    root = tmp_path_factory.mktemp("fullres")
    data = root / "cityscapes"
    ids = random_cityscapes_split(data, "val", 5, *GT_SIZE, seed=3)
    manifest, cache = root / "val.csv", root / "val.h5"
    assert main(["index", "--name", "target", "--format", "cityscapes", "--root", str(data), "--split", "val",
                 "--out", str(manifest), "--quiet"]) == 0
    settings = validate_config({"data": {"height": WORK_SIZE[0], "width": WORK_SIZE[1]}})["data"]
    assert main(["cache", "--manifest", str(manifest), "--out", str(cache), "--data-settings", json.dumps(settings),
                 "--quiet"]) == 0
    semantic = root / "semantic.pt"
    train = {"steps": 1, "batch_size": 2, "crop": list(WORK_SIZE), "checkpoint_every": 100}
    config = validate_config({"semantic": {"train": train}})
    assert main(["pretrain-semantic", "--data", str(cache), "--out", str(semantic), "--work-dir", str(root / "w"),
                 "--semantic-settings", json.dumps(config["semantic"]), *CPU]) == 0
    return {"root": root, "data": data, "ids": ids, "manifest": manifest, "cache": cache, "semantic": semantic}


def random_predictions(split: dict, tmp: Path, seed: int) -> tuple[Path, Path]:
    """Semantic and instance prediction HDF5 files of the split at the ground truth's size, random but
    overlapping the ground truth (so that IoUs and APs are neither all 0 nor all 1)."""
    rng = np.random.default_rng(seed)
    gt = GroundTruth(split["manifest"])
    sem_path, inst_path = tmp / "sem.h5", tmp / "inst.h5"
    rows, scores = [], []
    with SemanticPrediction.create(sem_path, gt.image_ids, GT_SIZE, {}) as sem, \
            InstancePrediction.create(inst_path, gt.image_ids, GT_SIZE, {}) as inst:
        for i in range(len(gt)):
            labels, instances = gt.read(i)
            noisy = np.where(rng.random(GT_SIZE) < 0.3, rng.integers(0, 19, GT_SIZE), labels)
            sem["labels"][i] = np.where(noisy == 255, rng.integers(0, 19, GT_SIZE), noisy).astype(np.uint8)
            sem["confidence"][i] = rng.random(GT_SIZE).astype(np.float16)
            predicted = np.zeros(GT_SIZE, dtype=np.int32)
            for k, gt_id in enumerate(np.unique(instances[instances > 0]), start=1):
                mask = np.roll(instances == gt_id, int(rng.integers(-2, 3)), axis=1)
                predicted[mask] = k
                present = np.unique(predicted)
                if k in present:
                    cls = int(rng.choice(THING_TRAIN_IDS)) if rng.random() < 0.2 else int(labels[instances == gt_id][0])
                    rows.append((i, k, cls, int((predicted == k).sum())))
                    scores.append(float(rng.random()))
            kept = {r[1] for r in rows if r[0] == i}
            inst["instances"][i] = np.where(np.isin(predicted, list(kept)), predicted, 0)
        InstancePrediction.write_segments(inst, rows, scores)
    return sem_path, inst_path


def metrics(path: Path) -> dict[tuple[str, str], float]:
    import pandas as pd

    table = pd.read_csv(path)
    return {(m, c): v for m, c, v in zip(table["metric"], table["class"], table["value"])}


def test_min_region_size_scales_the_official_100_pixels_by_area():
    assert min_region_size_for(1024, 2048) == 100
    assert min_region_size_for(512, 1024) == 25
    assert min_region_size_for(128, 256) == 2  # 1.5625
    assert min_region_size_for(48, 96) == 0  # 0.22


def test_ground_truth_is_read_at_the_files_resolution(split):
    gt = GroundTruth(split["manifest"])
    assert gt.image_ids == split["ids"] and gt.size == GT_SIZE
    labels, instances = gt.read(0)
    assert labels.shape == instances.shape == GT_SIZE
    assert set(np.unique(instances[instances > 0]) // 1000) <= {24, 25, 26, 27, 28, 31, 32, 33}


def test_ground_truth_of_images_of_several_sizes_is_refused(split, tmp_path):
    import pandas as pd

    manifest = pd.read_csv(split["manifest"], dtype={"image_id": str})
    manifest.loc[0, "height"] = 40
    path = tmp_path / "mixed.csv"
    manifest.to_csv(path, index=False)
    with pytest.raises(Exception, match="differ in size: 96x48 \\(.* images, e.g. .*\\), 96x40 \\(1 image, e.g. "):
        GroundTruth(path).size


def test_full_resolution_labels_are_the_argmax_of_upsampled_probabilities(split, tmp_path):
    from selfpanoptic.augment.normalise import normalise
    from selfpanoptic.intermediates import DatasetCache
    from selfpanoptic.models import model_from_file

    out = tmp_path / "pred.h5"
    assert main(["predict-semantic", "--model", str(split["semantic"]), "--data", str(split["cache"]),
                 "--full-resolution", str(split["manifest"]), "--out", str(out), *CPU]) == 0
    model = model_from_file(split["semantic"], "semantic").eval()
    with DatasetCache.open(split["cache"]) as cache, SemanticPrediction.open(out, cache.image_ids) as pred:
        assert pred["labels"].shape == (5, *GT_SIZE)
        with torch.no_grad():
            prob = torch.softmax(model(normalise(cache.read("images", 0)[None])).float(), dim=1)
        assert prob.shape[2:] == WORK_SIZE
        up = torch.nn.functional.interpolate(prob, size=GT_SIZE, mode="bilinear", align_corners=False)[0]
        np.testing.assert_array_equal(pred["labels"][0], up.argmax(0).numpy())
        np.testing.assert_allclose(pred["confidence"][0], up.max(0).values.numpy(), atol=1e-3)


def test_full_resolution_needs_the_caches_images(split, tmp_path, capsys):
    other = tmp_path / "other"
    random_cityscapes_split(other, "val", 2, *GT_SIZE)
    manifest = tmp_path / "other.csv"
    assert main(["index", "--name", "target", "--format", "cityscapes", "--root", str(other), "--split", "val",
                 "--out", str(manifest), "--quiet"]) == 0
    out = tmp_path / "pred.h5"
    assert main(["predict-semantic", "--model", str(split["semantic"]), "--data", str(split["cache"]),
                 "--full-resolution", str(manifest), "--out", str(out), *CPU]) == 2
    assert "does not list the same images as the cache" in capsys.readouterr().err and not out.exists()


def test_a_working_resolution_prediction_is_not_scored_against_full_resolution_truth(split, tmp_path, capsys):
    out = tmp_path / "pred.h5"
    assert main(["predict-semantic", "--model", str(split["semantic"]), "--data", str(split["cache"]), "--out", str(out),
                 *CPU]) == 0
    assert main(["score-semantic", "--prediction", str(out), "--ground-truth", str(split["manifest"]), "--run", "round0",
                 "--out", str(tmp_path / "e.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the prediction is 48x24 but the ground truth is 96x48" in err and "--full-resolution" in err


def test_label_ids_png_holds_label_ids(tmp_path):
    from selfpanoptic import pngio

    write_semantic_prediction(tmp_path / "a" / "x.png", np.array([[0, 18, 255]], dtype=np.uint8), tmp_path / "c" / "x.png")
    assert pngio.read_single_channel(tmp_path / "a" / "x.png").tolist() == [[7, 33, 0]]
    assert pngio.read_rgb(tmp_path / "c" / "x.png")[0, 0].tolist() == [128, 64, 128]  # road's colour
    with pytest.raises(ValueError, match="not trainIds: \\[19\\]"):
        write_semantic_prediction(tmp_path / "b.png", np.array([[19]], dtype=np.uint8))


@pytest.mark.parametrize("seed", [0, 1])
def test_semantic_scores_equal_the_official_pixel_evaluator_on_the_exported_files(split, tmp_path, seed):
    sem, _ = random_predictions(split, tmp_path, seed)
    out = tmp_path / "eval.csv"
    assert main(["score-semantic", "--prediction", str(sem), "--ground-truth", str(split["manifest"]), "--run", "round0",
                 "--out", str(out), "--quiet"]) == 0
    exported = tmp_path / "labelIds"
    assert main(["export-semantic", "--prediction", str(sem), "--manifest", str(split["manifest"]), "--out", str(exported),
                 "--colour-out", str(tmp_path / "colour"), "--quiet"]) == 0
    assert sorted(p.name for p in (exported / "lindau").iterdir()) == sorted(f"{i}_leftImg8bit.png" for i in split["ids"])
    assert len(list((tmp_path / "colour" / "lindau").iterdir())) == 5

    theirs = pixel_level(split["data"] / "gtFine" / "val", exported)
    ours = metrics(out)
    for name in CLASS_NAMES:
        assert ours["IoU", name] == pytest.approx(100 * theirs["classScores"][name], abs=5e-5, nan_ok=True), name
    assert ours["mIoU", "all"] == pytest.approx(100 * theirs["averageScoreClasses"], abs=5e-5)

    capsys_free = tmp_path / "files.json"  # the file-based evaluator gives the same numbers
    assert main(["evaluate", "semantic", "--gt-folder", str(split["data"] / "gtFine" / "val"),
                 "--prediction-folder", str(exported), "--out", str(capsys_free)]) == 0
    files = json.loads(capsys_free.read_text())
    assert 100 * files["mIoU"] == pytest.approx(ours["mIoU", "all"], abs=5e-5)
    assert 100 * files["mIoU13"] == pytest.approx(ours["mIoU", "all13"], abs=5e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_instance_scores_equal_the_official_instance_evaluator_on_the_exported_files(split, tmp_path, seed):
    _, inst = random_predictions(split, tmp_path, seed)
    out = tmp_path / "eval.csv"
    settings = json.dumps({"instance_min_region_size": 6})
    assert main(["score-instance", "--prediction", str(inst), "--ground-truth", str(split["manifest"]), "--run", "round0",
                 "--out", str(out), "--evaluation-settings", settings, "--quiet"]) == 0
    exported = tmp_path / "official"
    assert main(["export-instance", "--prediction", str(inst), "--out", str(exported), "--quiet"]) == 0
    assert sorted(p.name for p in exported.glob("*.txt")) == sorted(f"{i}.txt" for i in split["ids"])

    theirs = instance_level(split["data"] / "gtFine" / "val", exported, 6, tmp_path)
    ours = metrics(out)
    assert ours["AP", "all"] == pytest.approx(100 * theirs["allAp"], abs=5e-5)
    assert ours["AP50", "all"] == pytest.approx(100 * theirs["allAp50%"], abs=5e-5)
    for t in THING_TRAIN_IDS:
        name = CLASS_NAMES[t]
        assert ours["AP", name] == pytest.approx(100 * theirs["classes"][name]["ap"], abs=5e-5, nan_ok=True), name

    result = tmp_path / "files.json"
    assert main(["evaluate", "instance", "--gt-folder", str(split["data"] / "gtFine" / "val"), "--prediction-folder",
                 str(exported), "--min-region-size", "6", "--out", str(result)]) == 0
    assert 100 * json.loads(result.read_text())["AP"] == pytest.approx(ours["AP", "all"], abs=5e-5)


def test_file_evaluators_name_a_missing_prediction(split, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "semantic", "--gt-folder", str(split["data"] / "gtFine" / "val"),
                 "--prediction-folder", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no prediction match lindau_000000_000019*.png" in err and "Traceback" not in err
