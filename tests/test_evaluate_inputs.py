"""``evaluate`` and ``cache`` on inputs a user probe found: prediction ids that are not labelIds,
undefined scores in the ``--out`` JSON, and a manifest without rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfpanoptic.classes import CLASS_NAMES, MAX_LABEL_ID
from selfpanoptic.cli import main
from selfpanoptic.formats.cityscapes_ids import cityscapes_categories
from selfpanoptic.formats.panoptic_png import ids_to_rgb
from selfpanoptic.metrics.semantic_files import unknown_label_ids
from selfpanoptic.stages.evaluate import json_safe
from conftest import random_cityscapes_split


def _strict_json(path: Path):
    """The JSON of ``path``, refusing the ``NaN``/``Infinity`` Python's parser would let through."""
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _one_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"selfpanoptic {command}: error: ") and err.count("error:") == 1, err
    return err


# ---------------------------------------------------------------------------------------------
# prediction ids that are not Cityscapes labelIds
# ---------------------------------------------------------------------------------------------

def test_unknown_label_ids_are_the_values_outside_0_to_33():
    assert unknown_label_ids(np.array([[0, 7, 33], [33, 26, 0]], np.uint8)) == []
    assert unknown_label_ids(np.array([[34, 7, 255], [200, 200, 0]], np.uint8)) == [34, 200, 255]
    assert unknown_label_ids(np.array([[-1, 1000], [5, 33]], np.int32)) == [-1, 1000]  # 16-bit files read as int32
    assert unknown_label_ids(np.zeros((0, 3), np.uint8)) == []


def test_valid_label_ids_are_those_the_official_evaluator_accepts():
    from cityscapesscripts.helpers.labels import labels

    # evalPixelLevelSemanticLabeling's confusion matrix: every labelId >= 0 (-1 fits no PNG)
    assert sorted(label.id for label in labels if label.id >= 0) == list(range(MAX_LABEL_ID + 1))


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict:
    """Two random Cityscapes val images (16x32) and perfect labelIds predictions of them."""
    root = tmp_path_factory.mktemp("split")
    ids = random_cityscapes_split(root / "cityscapes", "val", 2, 16, 32)
    gt = root / "cityscapes" / "gtFine" / "val"
    for image_id in ids:
        labels = np.asarray(Image.open(gt / "lindau" / f"{image_id}_gtFine_labelIds.png"))
        (root / "perfect").mkdir(exist_ok=True)
        Image.fromarray(labels).save(root / "perfect" / f"{image_id}_leftImg8bit.png")
    return {"root": root, "ids": ids, "gt": gt}


@pytest.mark.parametrize("bad", [200, 34, 255])
def test_a_prediction_with_an_unknown_id_is_refused(split, tmp_path, capsys, bad):
    pred = tmp_path / "pred"
    pred.mkdir()
    for path in (split["root"] / "perfect").iterdir():
        labels = np.asarray(Image.open(path)).copy()
        if path.name.startswith(split["ids"][1]):
            labels[0, :3] = [bad, 7, bad]
        Image.fromarray(labels).save(pred / path.name)
    out = tmp_path / "results.json"
    code = main(["evaluate", "semantic", "--gt-folder", str(split["gt"]), "--prediction-folder", str(pred),
                 "--out", str(out)])
    err = _one_error(capsys, "evaluate")
    assert code == 2
    assert f"{pred / (split['ids'][1] + '_leftImg8bit.png')}: prediction holds id(s) that are not Cityscapes " \
           f"labelIds: {bad}\n" in err, err
    assert "fix: predictions must be Cityscapes labelIds 0-33" in err and "export-semantic" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["pred"]


def test_a_ground_truth_with_an_unknown_id_is_refused(split, tmp_path, capsys):
    gt = tmp_path / "gt" / "lindau"
    gt.mkdir(parents=True)
    for path in (split["gt"] / "lindau").glob("*_gtFine_labelIds.png"):
        labels = np.asarray(Image.open(path)).copy()
        labels[1, 1] = 40  # a trainId map or a damaged file, not labelIds
        Image.fromarray(labels).save(gt / path.name)
    code = main(["evaluate", "semantic", "--gt-folder", str(gt.parent), "--prediction-folder",
                 str(split["root"] / "perfect")])
    err = _one_error(capsys, "evaluate")
    assert code == 2
    assert "_gtFine_labelIds.png: ground truth holds id(s) that are not Cityscapes labelIds: 40\n" in err, err
    assert "fix: --gt-folder must hold Cityscapes *_gtFine_labelIds.png files" in err


def test_a_16_bit_prediction_with_a_large_id_is_refused(split, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for path in (split["root"] / "perfect").iterdir():
        labels = np.asarray(Image.open(path)).astype(np.uint16)
        labels[-1, -1] = 1026  # once clipped to 255, i.e. ignored
        Image.fromarray(labels).save(pred / path.name)
    assert main(["evaluate", "semantic", "--gt-folder", str(split["gt"]), "--prediction-folder", str(pred)]) == 2
    assert "not Cityscapes labelIds: 1026\n" in _one_error(capsys, "evaluate")


# ---------------------------------------------------------------------------------------------
# undefined scores are null in the --out JSON
# ---------------------------------------------------------------------------------------------

def test_json_safe_makes_non_finite_floats_none_at_any_depth():
    value = {"a": math.nan, "b": [1.5, math.inf, (-math.inf, 2)], "c": {"d": np.float64("nan"), "e": "nan"},
             "f": 3, "g": True, "h": None, "i": np.float64(0.25)}
    assert json_safe(value) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None, "e": "nan"},
                                "f": 3, "g": True, "h": None, "i": 0.25}
    assert math.isnan(value["a"])  # the input is left as it was
    assert json_safe(math.nan) is None and json_safe([]) == [] and json_safe(0.0) == 0.0


def test_semantic_out_writes_null_for_classes_in_neither_truth_nor_prediction(split, tmp_path):
    out = tmp_path / "semantic.json"
    assert main(["evaluate", "semantic", "--gt-folder", str(split["gt"]), "--prediction-folder",
                 str(split["root"] / "perfect"), "--out", str(out)]) == 0
    result = _strict_json(out)
    assert result["mIoU"] == 1.0 and result["images"] == 2
    ious = [result[name] for name in CLASS_NAMES]
    assert set(ious) == {1.0, None}, ious  # two images of four bands each miss some stuff classes


def test_instance_out_writes_null_for_classes_without_instances(split, tmp_path):
    pred = tmp_path / "instances"
    pred.mkdir()
    for image_id in split["ids"]:
        (pred / f"{image_id}.txt").write_text("")  # no predicted instance
    out = tmp_path / "instance.json"
    assert main(["evaluate", "instance", "--gt-folder", str(split["gt"]), "--prediction-folder", str(pred),
                 "--min-region-size", "0", "--out", str(out)]) == 0
    result = _strict_json(out)
    per_class = [scores["AP"] for scores in result["per_class"].values()]
    assert set(per_class) == {0.0, None}, per_class  # 0: missed instances; None: no ground truth of the class
    assert result["AP"] == 0.0


def test_panoptic_out_writes_null_for_absent_classes(tmp_path):
    ids = np.full((4, 6), 7, np.int32)  # road and one car
    ids[1:3, 2:4] = 26001
    segments = [{"id": 7, "category_id": 7, "iscrowd": 0}, {"id": 26001, "category_id": 26, "iscrowd": 0}]
    for folder in ("gt", "pred"):
        (tmp_path / folder).mkdir()
        Image.fromarray(ids_to_rgb(ids)).save(tmp_path / folder / "a_panoptic.png")
        document = {"annotations": [{"image_id": "a", "file_name": "a_panoptic.png", "segments_info": segments}],
                    "categories": cityscapes_categories()}
        (tmp_path / f"{folder}.json").write_text(json.dumps(document))
    out = tmp_path / "panoptic.json"
    assert main(["evaluate", "panoptic", "--gt-json-file", str(tmp_path / "gt.json"),
                 "--gt-folder", str(tmp_path / "gt"), "--prediction-json-file", str(tmp_path / "pred.json"),
                 "--prediction-folder", str(tmp_path / "pred"), "--out", str(out)]) == 0
    result = _strict_json(out)
    assert result["All"]["pq"] == 1.0 and result["per_class"]["bus"]["pq"] == 0.0  # 0 when absent, as official
    assert result["semantic_iou"]["road"] == 1.0 and result["semantic_iou"]["sky"] is None  # NaN: empty union


# ---------------------------------------------------------------------------------------------
# a manifest with a header but no rows
# ---------------------------------------------------------------------------------------------

def test_cache_of_a_manifest_without_rows_is_refused_before_writing(split, tmp_path, capsys):
    full = tmp_path / "full.csv"
    assert main(["index", "--name", "target", "--format", "cityscapes", "--root", str(split["root"] / "cityscapes"),
                 "--split", "val", "--out", str(full), "--quiet"]) == 0
    manifest = tmp_path / "empty.csv"
    manifest.write_text(full.read_text().splitlines()[0] + "\n")
    out = tmp_path / "cache.h5"
    assert main(["cache", "--manifest", str(manifest), "--out", str(out), "--quiet"]) == 2
    err = _one_error(capsys, "cache")
    assert f"{manifest}: manifest lists no images" in err and "rerun `selfpanoptic index`" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "full.csv"]
