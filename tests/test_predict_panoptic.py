"""``selfpanoptic predict-panoptic``: a trained run applied to a folder of the user's images."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfpanoptic.atomic import MARKER
from selfpanoptic.classes import train_ids_to_label_ids
from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.data import ImageFolderDataset
from selfpanoptic.data.images import image_folder
from selfpanoptic.errors import InputError
from selfpanoptic.formats.cityscapes_ids import cityscapes_categories
from selfpanoptic.formats.panoptic_png import read_panoptic_png
from selfpanoptic.overlays import instance_borders, panoptic_overlay, semantic_overlay
from conftest import random_cityscapes_split
from test_training import tiny_cache

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
TINY = {"steps": 1, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100}
CONFIG = {"data": {"height": 32, "width": 64}, "instance": {"groups": {"vehicles": ["car"]}},
          "panoptic": {"stuff_min_area": 4, "morphology": {"min_size": 2}}}
FILES = {"a.png": (40, 80), "b.png": (24, 50), "city/c.png": (40, 80), "d.jpg": (30, 44)}
"""Image file -> (height, width); ``d`` is a JPG, ``c`` lies in a subfolder (its id is ``c``)."""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with 1-step models; the semantic model says car everywhere, so that instances appear."""
    root = tmp_path_factory.mktemp("predict")
    cache = tiny_cache(root / "cache.h5")
    config = validate_config({"semantic": {"train": TINY}, "instance": {"train": TINY, **CONFIG["instance"]}})
    run = root / "round1"
    (run / "instance" / "vehicles").mkdir(parents=True)
    assert main(["pretrain-semantic", "--data", str(cache), "--out", str(run / "semantic" / "model.pt"), "--work-dir",
                 str(root / "w1"), "--semantic-settings", json.dumps(config["semantic"]), *CPU]) == 0
    assert main(["pretrain-instance", "--data", str(cache), "--out", str(run / "instance" / "vehicles" / "model.pt"),
                 "--work-dir", str(root / "w2"), "--instance-settings", json.dumps(config["instance"]),
                 "--group", "vehicles", *CPU]) == 0
    model_file = run / "semantic" / "model.pt"
    saved = torch.load(model_file, weights_only=True)
    bias = next(k for k, v in saved["state_dict"].items() if k.startswith("head") and k.endswith("bias")
                and v.shape == (19,))
    saved["state_dict"][bias][13] += 100.0  # car wins every pixel
    torch.save(saved, model_file)
    (root / "config.yaml").write_text(json.dumps(CONFIG))
    return run


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    rng = np.random.default_rng(1)
    for name, (height, width) in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    (folder / "notes.txt").write_text("not an image")
    return folder


def predict(run: Path, images: Path, out: Path, *extra: str) -> int:
    return main(["predict-panoptic", "--run", str(run), "--images", str(images), "--out", str(out),
                 "--config", str(run.parent / "config.yaml"), *extra, *CPU])


def test_every_output_at_each_image_size(run_dir, images, tmp_path, capsys):
    from selfpanoptic.inference import predict_semantic_batch
    from selfpanoptic.settings import InferenceSettings
    from selfpanoptic.models import model_from_file
    from selfpanoptic.data.base import resize_image

    out = tmp_path / "out"
    assert predict(run_dir, images, out) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("predict-panoptic: 4 images at 32x64, ") and str(out) in summary

    model = model_from_file(run_dir / "semantic" / "model.pt", "semantic")
    prediction = json.loads((out / "panoptic.json").read_text())
    assert prediction["categories"] == cityscapes_categories()
    assert prediction["images"] == [  # sorted by id; the file's name without its folder
        {"id": Path(name).stem, "file_name": Path(name).name, "height": h, "width": w}
        for name, (h, w) in sorted(FILES.items(), key=lambda item: Path(item[0]).stem)
    ]
    annotations = {a["image_id"]: a for a in prediction["annotations"]}
    assert sorted(annotations) == ["a", "b", "c", "d"]
    instances = 0
    for name, size in FILES.items():
        image_id, sub = Path(name).stem, Path(name).parent  # per-image outputs keep the subfolder
        image = np.asarray(Image.open(images / name).convert("RGB"))
        label_ids = np.asarray(Image.open(out / "semantic" / "labelIds" / sub / f"{image_id}.png"))
        expected, _ = predict_semantic_batch(model, resize_image(image, (32, 64))[None], torch.device("cpu"),
                                             InferenceSettings.from_config(validate_config({})["inference"]), size)
        np.testing.assert_array_equal(label_ids, train_ids_to_label_ids(expected[0]))
        assert Image.open(out / "semantic" / "colour" / sub / f"{image_id}.png").size == size[::-1]
        assert Image.open(out / "overlays" / sub / f"{image_id}.png").size == size[::-1]

        annotation = annotations[image_id]
        assert annotation["file_name"] == f"{image_id}_panoptic.png"  # flat, as fuse-panoptic writes it
        ids = read_panoptic_png(out / "panoptic" / annotation["file_name"])
        assert ids.shape == size
        segments = {s["id"]: s for s in annotation["segments_info"]}
        assert set(np.unique(ids).tolist()) - {0} == set(segments)
        for segment_id, segment in segments.items():
            assert segment["area"] == int((ids == segment_id).sum())

        lines = (out / "instance" / sub / f"{image_id}.txt").read_text().splitlines()
        instances += len(lines)
        for line in lines:
            mask_name, label_id, score = line.split()
            mask = np.asarray(Image.open(out / "instance" / sub / mask_name))
            assert mask.shape == size and label_id == "26" and 0 <= float(score) <= 1
    assert instances > 0, "the car-everywhere model finds cars"
    assert f" {instances} instances" in summary
    assert (out / "instance" / "city" / "c.txt").is_file() and (out / "panoptic" / "c_panoptic.png").is_file()


def test_cityscapes_named_images_are_scored_against_their_ground_truth(run_dir, tmp_path, monkeypatch):
    """Image ids are the Cityscapes ids, so every evaluator pairs each prediction with its ground truth."""
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    data = tmp_path / "cityscapes"
    ids = random_cityscapes_split(data, "val", 3, 40, 80, seed=5)
    (tmp_path / "gt").mkdir()
    convert2panoptic(str(data / "gtFine"), str(tmp_path / "gt"), setNames=["val"])
    gt_json, gt_folder = tmp_path / "gt" / "cityscapes_panoptic_val.json", tmp_path / "gt" / "cityscapes_panoptic_val"
    out = tmp_path / "out"
    assert predict(run_dir, data / "leftImg8bit" / "val", out) == 0

    prediction, gt = json.loads((out / "panoptic.json").read_text()), json.loads(gt_json.read_text())
    assert [image["id"] for image in prediction["images"]] == sorted(ids) == sorted(a["image_id"] for a in gt["annotations"])
    assert [a["file_name"] for a in prediction["annotations"]] == [f"{i}_panoptic.png" for i in sorted(ids)]
    assert prediction["images"][0]["file_name"] == f"{sorted(ids)[0]}_leftImg8bit.png"

    result = tmp_path / "pq.json"
    assert main(["evaluate", "panoptic", "--gt-json-file", str(gt_json), "--gt-folder", str(gt_folder),
                 "--prediction-json-file", str(out / "panoptic.json"), "--prediction-folder", str(out / "panoptic"),
                 "--out", str(result)]) == 0
    ours = json.loads(result.read_text())
    assert ours["num_images"] == len(ids)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 1)  # the official code forks one worker per core
    theirs = evaluatePanoptic(str(gt_json), str(gt_folder), str(out / "panoptic.json"), str(out / "panoptic"),
                              str(tmp_path / "official.json"))
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["pq"] == pytest.approx(theirs[group]["pq"], abs=1e-9), group
    # the semantic and instance files are named so that their evaluators find them too
    for task, prediction_folder in (("semantic", out / "semantic" / "labelIds"), ("instance", out / "instance")):
        assert main(["evaluate", task, "--gt-folder", str(data / "gtFine" / "val"),
                     "--prediction-folder", str(prediction_folder)]) == 0, task


def test_a_run_without_instance_models_writes_semantic_outputs_only(run_dir, images, tmp_path, capsys):
    run = tmp_path / "gta_round0"
    shutil.copytree(run_dir / "semantic", run / "semantic")
    (run.parent / "config.yaml").write_text((run_dir.parent / "config.yaml").read_text())
    out = tmp_path / "out"
    assert predict(run, images, out) == 0
    printed = capsys.readouterr().out
    assert printed.count("no instance models") == 1 and "semantic only" in printed
    assert sorted(p.name for p in out.iterdir()) == [".selfpanoptic-output.json", "overlays", "semantic"]
    assert Image.open(out / "overlays" / "city" / "c.png").size == (80, 40)


@pytest.mark.parametrize("problem", ["missing", "empty", "garbage", "truncated"])
def test_bad_image_folders_stop_with_one_message(run_dir, tmp_path, capsys, problem):
    folder = tmp_path / "images"
    if problem != "missing":
        folder.mkdir()
    if problem in ("garbage", "truncated"):
        Image.fromarray(np.zeros((40, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    if problem == "garbage":
        (folder / "sub").mkdir()
        (folder / "sub" / "bad.png").write_bytes(b"\x00garbage bytes, not a PNG" * 10)
    if problem == "truncated":  # the header reads; the pixels do not
        noise = np.random.default_rng(0).integers(0, 256, (40, 80, 3), dtype=np.uint8)
        Image.fromarray(noise).save(folder / "b.png")
        (folder / "b.png").write_bytes((folder / "b.png").read_bytes()[:4000])
    out = tmp_path / "out"
    assert predict(run_dir, folder, out) == 2
    err = capsys.readouterr().err
    expected = {"missing": "images: image folder does not exist", "empty": "images: no images (*.png, *.jpg, *.jpeg)",
                "garbage": f"{folder / 'sub' / 'bad.png'}: cannot decode image",
                "truncated": f"{folder / 'b.png'}: cannot decode image"}[problem]
    assert expected in err and "Traceback" not in err
    assert err.count("error:") == 1
    assert not out.exists() and not list(tmp_path.glob("out.tmp-*"))


def test_a_broken_image_link_is_refused_as_an_unreadable_image(run_dir, images, tmp_path, capsys):
    (images / "city" / "e.png").symlink_to(tmp_path / "moved" / "e.png")
    (images / "loop.jpg").symlink_to("loop.jpg")
    out = tmp_path / "out"
    assert predict(run_dir, images, out) == 2
    err = capsys.readouterr().err
    assert f"{images}: 2 image link(s) below this folder point to no file:" in err
    assert f"  {images / 'city' / 'e.png'} -> {tmp_path / 'moved' / 'e.png'}" in err and "loop.jpg -> loop.jpg" in err
    assert "fix: restore the files they point to, or remove the links" in err
    assert "Traceback" not in err and err.count("error:") == 1 and not out.exists()


@pytest.mark.parametrize("config", [True, False])
def test_inline_inference_scales_are_checked_against_the_working_size(run_dir, images, tmp_path, capsys, config):
    """The inline section is validated alone; the scales are judged against the run's models and
    the working size it predicts at (--config's, or the model file's)."""
    extra = ["--inference-settings", json.dumps({"scales": [0.5, 1.0]})]
    out = tmp_path / "out"
    if config:
        assert predict(run_dir, images, out, *extra) == 2
    else:
        assert main(["predict-panoptic", "--run", str(run_dir), "--images", str(images), "--out", str(out),
                     *extra, *CPU]) == 2
    err = capsys.readouterr().err
    size_from = "data.height x data.width" if config else f"recorded in {run_dir / 'semantic' / 'model.pt'}"
    assert (f"--inference-settings (inference): invalid config: inference.scales has 0.5, which makes the 32x64 "
            f"working image ({size_from}) 16x32 pixels, under 32 pixels a side, the instance model's output stride") in err
    assert "fix: use scales of at least 1 for a 32x64 working image, or predict at a larger working size" in err
    assert "Traceback" not in err and err.count("error:") == 1 and not out.exists()


def test_a_missing_run_folder_or_model_is_named(images, tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("{}")
    assert predict(tmp_path / "round9", images, tmp_path / "out") == 2
    assert "round9: run folder does not exist" in capsys.readouterr().err
    (tmp_path / "round9").mkdir()
    assert predict(tmp_path / "round9", images, tmp_path / "out") == 2
    assert "round9: holds no semantic/model.pt, so it is not a trained run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_results_folder_is_answered_with_its_runs(run_dir, images, tmp_path, capsys):
    assert main(["predict-panoptic", "--run", str(run_dir.parent), "--images", str(images),
                 "--out", str(tmp_path / "out"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "is a folder of runs (round1), not a run" in err and f"--run {run_dir}" in err


def test_the_working_size_comes_from_the_model_file_unless_told(run_dir, images, tmp_path, capsys):
    """The models were trained at 32x64; the schema's default working size is another."""
    default = validate_config({})["data"]
    assert (default["height"], default["width"]) != (32, 64)
    assert main(["predict-panoptic", "--run", str(run_dir), "--images", str(images), "--out", str(tmp_path / "a"),
                 *CPU]) == 0
    assert "4 images at 32x64," in capsys.readouterr().out
    assert main(["predict-panoptic", "--run", str(run_dir), "--images", str(images), "--out", str(tmp_path / "b"),
                 "--data-settings", json.dumps({"height": 16, "width": 32}), *CPU]) == 0
    assert "4 images at 16x32," in capsys.readouterr().out


def test_outputs_never_replace_what_the_tool_did_not_write(run_dir, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(run_dir, images, out) == 0
    first = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert predict(run_dir, images, out) == 0, "its own earlier output is replaced"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == first
    (out / "overlays" / "mine.txt").write_text("a user's file")
    capsys.readouterr()
    assert predict(run_dir, images, out) == 2
    err = capsys.readouterr().err
    assert "--out exists and holds files selfpanoptic did not write (overlays/mine.txt)" in err
    assert (out / "overlays" / "mine.txt").read_text() == "a user's file"
    for target, expected in ((run_dir, "--out is also the input --run"), (run_dir.parent, "--out holds the input --"),
                             (images, "--out is also the input --images")):
        before = sorted(target.rglob("*"))
        assert predict(run_dir, images, target) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and err.count("error:") == 1
        assert sorted(target.rglob("*")) == before
    inside = images / "predictions"  # below the input folder: allowed, and not read as images
    assert predict(run_dir, images, inside) == 0
    assert predict(run_dir, images, inside) == 0
    assert "4 images at" in capsys.readouterr().out
    assert predict(run_dir, images, images / "second") == 0  # the first output's overlays are no images
    assert "4 images at" in capsys.readouterr().out


def test_image_folder_ids(tmp_path):
    for name in ("b.PNG", "a b.jpeg", "sub/c.jpg", "lindau/lindau_000000_000019_leftImg8bit.png", "out/old.png",
                 "notes.txt", f"earlier/{MARKER}", "earlier/overlays/b.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert image_folder(tmp_path, exclude=tmp_path / "out") == [
        ("a_b", tmp_path / "a b.jpeg"), ("b", tmp_path / "b.PNG"), ("c", tmp_path / "sub" / "c.jpg"),
        ("lindau_000000_000019", tmp_path / "lindau" / "lindau_000000_000019_leftImg8bit.png")]
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "other" / "sub" / "c.png").write_bytes(b"")
    with pytest.raises(InputError, match="2 image id\\(s\\) occur more than once") as error:
        image_folder(tmp_path, exclude=tmp_path / "out")
    assert f"b: {tmp_path / 'b.PNG'}, {tmp_path / 'b.jpg'}" in str(error.value)
    assert f"c: {tmp_path / 'other' / 'sub' / 'c.png'}, {tmp_path / 'sub' / 'c.jpg'}" in str(error.value)
    with pytest.raises(InputError, match="is a file, not a folder"):
        image_folder(tmp_path / "b.jpg")


def test_a_file_has_one_id_as_a_dataset_target_and_in_predict_panoptic(tmp_path):
    for n, name in enumerate(("x/p.png", "y/lindau_000000_000019_leftImg8bit.png", "z q.png")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((2, 4, 3), n, dtype=np.uint8)).save(tmp_path / name)
    dataset = ImageFolderDataset(tmp_path, "train", glob="**/*.png")
    assert [(f.image_id, f.image_path) for f in dataset.files] == image_folder(tmp_path)
    assert [f.image_id for f in dataset.files] == ["lindau_000000_000019", "p", "z_q"]


def test_predicting_does_not_import_the_report():
    """Overlays live in selfpanoptic.overlays: predict-panoptic runs without matplotlib."""
    code = ("import sys, selfpanoptic.stages.predict_panoptic as s, selfpanoptic.folder_prediction; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_overlays_blend_segments_and_keep_instance_borders_white():
    image = np.full((4, 6, 3), 100, dtype=np.uint8)
    ids = np.zeros((4, 6), dtype=np.int32)
    ids[:, :2] = 7             # road
    ids[:, 2:4] = 26000        # two touching cars
    ids[:, 4:] = 26001
    borders = instance_borders(ids)
    assert borders[:, 2].all() and borders[:, 4].all() and not borders[:, [0, 1, 3, 5]].any()
    out = panoptic_overlay(image, ids, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], np.rint(0.5 * 100 + 0.5 * np.array([128, 64, 128])))  # road colour
    assert (out[borders] == 255).all()
    ids[0, 0] = 0  # void keeps the image
    np.testing.assert_array_equal(panoptic_overlay(image, ids, alpha=0.5)[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(panoptic_overlay(image, ids, alpha=0.0)[:, [0, 1, 3, 5]], image[:, [0, 1, 3, 5]])

    labels = np.array([[0, 255]], dtype=np.uint8)
    out = semantic_overlay(np.zeros((1, 2, 3), dtype=np.uint8), labels, alpha=1.0)
    np.testing.assert_array_equal(out, [[[128, 64, 128], [0, 0, 0]]])
    with pytest.raises(ValueError, match="alpha"):
        semantic_overlay(image[:1, :2], labels, alpha=2.0)
