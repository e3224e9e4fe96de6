"""Label-to-image translation: the pure parts on hand-checkable arrays, the translated share of
source batches, the config checks, and the three stages end to end on tiny caches."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from selfpanoptic.augment.normalise import denormalise
from selfpanoptic.classes import CLASS_NAMES, NUM_CLASSES
from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.errors import InputError
from selfpanoptic.h5io import create_stack, write_strings
from selfpanoptic.intermediates import DatasetCache
from selfpanoptic.intermediates.base import atomic_h5
from selfpanoptic.metrics.table import run_order
from selfpanoptic.models import load_model_file, model_from_file
from selfpanoptic.report import translation_section
from selfpanoptic.train.data import TranslatedImages, sample_batch
from selfpanoptic.translation import (
    check_translator, fidelity_table, link_or_copy, sample_grid, translate_labels, translated_paths,
)
from test_training import tiny_cache

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
TINY = {"train": {"steps": 2, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100},
        "generator": {"channels": 8, "upsamplings": 2}, "discriminator": {"channels": 8, "layers": 2},
        "samples": 2, "batch_size": 4}


# -- label fidelity -------------------------------------------------------------------------------


def confusion(pairs: dict[tuple[int, int], int]) -> np.ndarray:
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    for (g, p), n in pairs.items():
        matrix[g, p] = n
    return matrix


def test_fidelity_table_scores_both_and_their_ratio():
    # road: real 8 of 10 right (2 -> sidewalk); translated 5 right, 5 -> sidewalk
    real = confusion({(0, 0): 8, (0, 1): 2, (1, 1): 10})
    fake = confusion({(0, 0): 5, (0, 1): 5, (1, 1): 10})
    table = fidelity_table(real, fake).set_index("class")
    assert table.loc["road", "real_iou"] == pytest.approx(80.0)
    assert table.loc["sidewalk", "real_iou"] == pytest.approx(100 * 10 / 12, abs=0.01)
    assert table.loc["road", "translated_iou"] == pytest.approx(50.0)
    assert table.loc["sidewalk", "translated_iou"] == pytest.approx(100 * 10 / 15, abs=0.01)
    assert table.loc["road", "ratio"] == pytest.approx(62.5)
    # the mean runs over the classes the label maps hold (road, sidewalk), not all 19
    assert table.loc["mean", "real_iou"] == pytest.approx((80 + 100 * 10 / 12) / 2, abs=0.01)
    assert table.loc["mean", "translated_iou"] == pytest.approx((50 + 100 * 10 / 15) / 2, abs=0.01)
    assert np.isnan(table.loc["sky", "real_iou"]) and table["oracle_translated_iou"].isna().all()
    assert list(table.index[:-1]) == list(CLASS_NAMES)
    oracle = fidelity_table(real, fake, oracle=confusion({(0, 0): 9, (0, 1): 1, (1, 1): 10})).set_index("class")
    assert oracle.loc["road", "oracle_translated_iou"] == pytest.approx(90.0)
    assert oracle.loc["mean", "oracle_translated_iou"] == pytest.approx((90 + 100 * 10 / 11) / 2, abs=0.01)


def test_fidelity_section_shows_the_mean_and_hides_the_classes_in_a_collapsible_block():
    # road 80 -> 50, sidewalk 83.3 -> 66.7: means 81.7 and 58.3, ratio 71.4 %
    table = fidelity_table(confusion({(0, 0): 8, (0, 1): 2, (1, 1): 10}), confusion({(0, 0): 5, (0, 1): 5, (1, 1): 10}))
    text = "\n".join(translation_section(table, "../translation/samples.png"))
    assert "| mean | 81.7 | 58.3 | 71.4 | – |" in text and "71 % of the model's mIoU" in text
    assert "<details>" in text and "| road | 80.0 | 50.0 | 62.5 | – |" in text
    assert "![translated source](../translation/samples.png)" in text


def test_translated_runs_sort_after_the_rounds_and_before_the_oracle():
    assert sorted(["oracle", "round2", "translated", "round0", "round10", "round1"], key=run_order) == [
        "round0", "round1", "round2", "round10", "translated", "oracle"]


# -- the translated dataset's files ---------------------------------------------------------------


def test_translated_paths_mirror_the_source_layout(tmp_path):
    row = types.SimpleNamespace(dataset="synthia", root="/data/synthia", image_path="/data/synthia/RGB/0001.png",
                                label_path="/data/synthia/GT/LABELS/0001.png", instance_path="")
    paths = translated_paths(row, tmp_path / "translated")
    assert paths["root"] == tmp_path / "translated" / "synthia"
    assert paths["image_path"] == tmp_path / "translated/synthia/RGB/0001.png"
    assert paths["label_path"] == tmp_path / "translated/synthia/GT/LABELS/0001.png"
    assert paths["instance_path"] is None
    outside = types.SimpleNamespace(**{**vars(row), "image_path": "/elsewhere/0001.png"})
    with pytest.raises(InputError, match="outside its dataset root"):
        translated_paths(outside, tmp_path)


def test_link_or_copy_keeps_the_bytes(tmp_path):
    source = tmp_path / "a.png"
    source.write_bytes(b"label")
    link_or_copy(source, tmp_path / "deep" / "b.png")
    assert (tmp_path / "deep" / "b.png").read_bytes() == b"label"


def test_a_translator_of_another_label_set_or_size_is_refused():
    saved = {"classes": list(CLASS_NAMES), "working_size": [32, 64]}
    check_translator(saved, "t.pt", (32, 64))
    with pytest.raises(InputError, match="another label set"):
        check_translator({**saved, "classes": ["road", "car"]}, "t.pt", (32, 64))
    with pytest.raises(InputError, match="trained at 32x64 pixels, but the label maps to translate are 64x128"):
        check_translator(saved, "t.pt", (64, 128))


# -- source batches with translated images ----------------------------------------------------------


def recoloured(cache_path: Path, out: Path, value: int) -> Path:
    """A copy of a cache whose images are all ``value``: a stand-in translated source."""
    with DatasetCache.open(cache_path) as cache, atomic_h5(out, "dataset_cache", {}) as h5:
        count = len(cache)
        create_stack(h5, "images", count, (cache.height, cache.width, 3), np.uint8)[:] = value
        create_stack(h5, "labels", count, (cache.height, cache.width), np.uint8)[:] = cache["labels"][()]
        create_stack(h5, "instances", count, (cache.height, cache.width), np.int32)[:] = cache["instances"][()]
        write_strings(h5, "image_ids", cache.image_ids)
    return out


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("translation")
    source = tiny_cache(root / "source.h5")
    return {"root": root, "source": source, "translated": recoloured(source, root / "translated.h5", 0)}


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_translated_share_is_the_share_of_drawn_images(caches, share):
    with DatasetCache.open(caches["source"]) as source, DatasetCache.open(caches["translated"]) as translated:
        mix = TranslatedImages(translated, share)
        taken = 0
        for step in range(40):
            batch = sample_batch(source, np.random.default_rng(step), np.arange(len(source)), 8, (32, 64), hflip=False,
                                 translated=mix)
            # the stand-in translated images are black; the source's are random noise
            taken += int((denormalise(batch.images).flatten(1).max(dim=1).values < 1e-3).sum())
            assert (batch.labels == torch.from_numpy(np.stack([source.read("labels", 0)] * 8)).long()).all()
    assert taken / 320 == pytest.approx(share, abs=0.08)


def test_without_translation_the_batches_are_those_of_before(caches):
    with DatasetCache.open(caches["source"]) as source:
        plain = sample_batch(source, np.random.default_rng(3), np.arange(len(source)), 4, (16, 32))
        again = sample_batch(source, np.random.default_rng(3), np.arange(len(source)), 4, (16, 32), translated=None)
    assert torch.equal(plain.images, again.images)


# -- config ----------------------------------------------------------------------------------------


def test_translation_needs_a_round_to_take_labels_from():
    validate_config({"mixing": {"translated": 0.5}, "translation": {"labels_from": "round2"}})
    with pytest.raises(InputError, match="no such round to take labels from"):
        validate_config({"mixing": {"translated": 0.5}, "translation": {"labels_from": "round3"}})
    with pytest.raises(InputError, match="round0 has no pseudo-labels"):
        validate_config({"mixing": {"translated": 0.5}, "translation": {"labels": "pseudo"}})
    # off: the section is not checked
    validate_config({"translation": {"labels_from": "round9"}})


# -- the stages end to end -------------------------------------------------------------------------


def settings(**extra) -> list[str]:
    return ["--translation-settings", json.dumps({**TINY, **extra})]


@pytest.fixture(scope="module")
def translator(caches) -> Path:
    root = caches["root"]
    out = root / "translator.pt"
    main(["train-translator", *settings(labels_from="ground_truth"), "--images", str(caches["source"]),
          "--out", str(out), "--work-dir", str(root / "work"), *CPU])
    return out


def test_train_translator_writes_a_generator_with_its_label_set_and_size(translator):
    saved = load_model_file(translator, "translator")
    assert saved["classes"] == list(CLASS_NAMES) and saved["working_size"] == [32, 64]
    generator = model_from_file(translator, "translator")
    images = translate_labels(generator, np.zeros((2, 32, 64), np.uint8), torch.device("cpu"))
    assert images.shape == (2, 32, 64, 3) and images.dtype == np.uint8


def test_train_translator_without_labels_names_the_missing_round(caches, tmp_path, capsys):
    assert main(["train-translator", *settings(), "--images", str(caches["source"]), "--out", str(tmp_path / "t.pt"),
                 "--work-dir", str(tmp_path / "w"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "translation.labels_from is round0" in err and "Traceback" not in err
    assert not (tmp_path / "t.pt").exists()


def test_a_semantic_model_is_not_a_translator(caches, translator, tmp_path, capsys):
    semantic = model_file(tmp_path, caches["source"])
    assert main(["translate-source", *settings(), "--translator", str(semantic), "--source", str(caches["source"]),
                 "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "t"), "--out-manifest",
                 str(tmp_path / "t.csv"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "is a semantic model, but this command needs a translator model" in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


def source_dataset(root: Path, count: int = 3, size: tuple[int, int] = (64, 128)) -> Path:
    """A Synthia-layout folder of ``count`` images, indexed, mixed and cached at 32x64."""
    from selfpanoptic.toy.formats import synthia_label_channels
    from selfpanoptic.pngio import write_png

    rng = np.random.default_rng(1)
    for i in range(count):
        labels = np.zeros(size, np.uint8)
        labels[size[0] // 2:] = 0
        labels[: size[0] // 2] = 10
        labels[20:40, 20:50] = 13
        instances = np.zeros(size, np.int32)
        instances[20:40, 20:50] = 1
        (root / "synthia/RGB").mkdir(parents=True, exist_ok=True)
        (root / "synthia/GT/LABELS").mkdir(parents=True, exist_ok=True)
        write_png(root / f"synthia/RGB/{i:04d}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        write_png(root / f"synthia/GT/LABELS/{i:04d}.png", synthia_label_channels(labels, instances))
    data = json.dumps({"height": 32, "width": 64})
    main(["index", "--name", "synthia", "--format", "synthia", "--root", str(root / "synthia"),
          "--out", str(root / "index.csv")])
    main(["cache", "--data-settings", data, "--manifest", str(root / "index.csv"), "--out", str(root / "source.h5"), "--quiet"])
    return root


def test_translate_source_writes_the_layout_and_a_manifest_the_cache_reads(translator, tmp_path):
    root = source_dataset(tmp_path)
    out = tmp_path / "translated"
    main(["translate-source", *settings(), "--translator", str(translator), "--source", str(root / "source.h5"),
          "--manifest", str(root / "index.csv"), "--out", str(out), "--out-manifest", str(tmp_path / "t.csv"), *CPU])
    assert sorted(p.name for p in (out / "synthia/RGB").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (out / "synthia/GT/LABELS/0000.png").read_bytes() == (root / "synthia/GT/LABELS/0000.png").read_bytes()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["images"] == 3 and provenance["labels_from"] == "ground_truth"
    manifest = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert manifest["image_path"].str.startswith(str(out)).all()
    main(["cache", "--data-settings", json.dumps({"height": 32, "width": 64}), "--manifest", str(tmp_path / "t.csv"),
          "--out", str(tmp_path / "translated.h5"), "--quiet"])
    with DatasetCache.open(root / "source.h5") as source, DatasetCache.open(tmp_path / "translated.h5") as translated:
        assert translated.image_ids == source.image_ids
        assert np.array_equal(translated["labels"][()], source["labels"][()])
        assert np.array_equal(translated["instances"][()], source["instances"][()])
        assert not np.array_equal(translated["images"][()], source["images"][()])

    semantic = model_file(tmp_path, root / "source.h5")
    main(["label-fidelity", *settings(), "--model", str(semantic), "--oracle-model", str(semantic),
          "--source", str(root / "source.h5"), "--translated", str(tmp_path / "translated.h5"),
          "--out", str(tmp_path / "fidelity.csv"), "--grid", str(tmp_path / "grid.png"), *CPU])
    table = pd.read_csv(tmp_path / "fidelity.csv")
    assert list(table.columns) == ["class", "real_iou", "translated_iou", "ratio", "oracle_translated_iou"]
    assert table["oracle_translated_iou"].notna().any()
    assert table["class"].iloc[-1] == "mean" and len(table) == NUM_CLASSES + 1
    from selfpanoptic.pngio import read_rgb
    grid = read_rgb(tmp_path / "grid.png")
    assert grid.shape == (2 * 32 + 2, 4 * 64 + 3 * 2, 3)  # 2 samples, 4 columns, 2-pixel gutters


def model_file(tmp_path: Path, cache: Path) -> Path:
    out = tmp_path / "semantic.pt"
    main(["pretrain-semantic", "--semantic-settings", json.dumps({"train": TINY["train"]}), "--data", str(cache),
          "--out", str(out), "--work-dir", str(tmp_path / "sem"), *CPU])
    return out


def test_pretraining_takes_the_translated_source_and_refuses_another_one(caches, tmp_path, capsys):
    out = tmp_path / "m.pt"
    main(["pretrain-semantic", "--semantic-settings", json.dumps({"train": TINY["train"]}), "--data", str(caches["source"]),
          "--translated", str(caches["translated"]), "--translated-share", "0.5",
          "--out", str(out), "--work-dir", str(tmp_path / "w"), *CPU])
    assert out.is_file()
    other = tiny_cache(tmp_path / "other.h5", count=4)
    assert main(["pretrain-instance", "--instance-settings", json.dumps({"train": TINY["train"]}), "--group", "all",
                 "--data", str(caches["source"]), "--translated", str(other), "--translated-share", "0.5",
                 "--out", str(tmp_path / "i.pt"), "--work-dir", str(tmp_path / "wi"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "does not list the same images" in err and "translate_source" in err


def test_a_translator_of_another_resolution_is_refused_before_anything_is_written(translator, tmp_path, capsys):
    root = source_dataset(tmp_path, count=1)
    main(["cache", "--data-settings", json.dumps({"height": 16, "width": 32}), "--manifest", str(root / "index.csv"),
          "--out", str(tmp_path / "small.h5"), "--quiet"])
    assert main(["translate-source", *settings(), "--translator", str(translator), "--source", str(tmp_path / "small.h5"),
                 "--manifest", str(root / "index.csv"), "--out", str(tmp_path / "t"), "--out-manifest",
                 str(tmp_path / "t.csv"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "trained at 32x64 pixels, but the label maps to translate are 16x32" in err and str(translator) in err
    assert not (tmp_path / "t").exists() and not (tmp_path / "t.csv").exists()


def test_no_fidelity_ratio_where_the_model_fails_on_real_images_too():
    table = fidelity_table(confusion({(0, 1): 10, (1, 1): 10}), confusion({(0, 0): 2, (0, 1): 8, (1, 1): 10}))
    road = table.set_index("class").loc["road"]
    assert road.real_iou == 0 and road.translated_iou == pytest.approx(20.0) and np.isnan(road.ratio)


def test_self_training_from_the_translated_run_needs_labels_from_before_it():
    validate_config({"mixing": {"translated": 0.5}, "translation": {"selftrain_from": "translated"}})
    validate_config({"mixing": {"translated": 0.5},
                     "translation": {"selftrain_from": "translated", "labels_from": "ground_truth"}})
    with pytest.raises(InputError, match="round 1 starts from the translated run"):
        validate_config({"mixing": {"translated": 0.5},
                         "translation": {"selftrain_from": "translated", "labels_from": "round1"}})


# -- scripts/translation_table.py -------------------------------------------------------------------


def test_translation_table_reads_the_gap_closed_from_the_files(tmp_path, capsys):
    import translation_table

    rows = [("round0", "semantic", "mIoU", "all", 20.0), ("translated", "semantic", "mIoU", "all", 25.0),
            ("oracle", "semantic", "mIoU", "all", 40.0), ("translated", "instance", "AP50", "all", 7.5)]
    (tmp_path / "run" / "summary").mkdir(parents=True)
    pd.DataFrame(rows, columns=["run", "task", "metric", "class", "value"]).to_csv(
        tmp_path / "run/summary/metrics.csv", index=False)
    (tmp_path / "run/translation").mkdir()
    fidelity_table(confusion({(0, 0): 8, (0, 1): 2}), confusion({(0, 0): 4, (0, 1): 6})).to_csv(
        tmp_path / "run/translation/fidelity.csv", index=False)
    assert translation_table.main([str(tmp_path / "run")]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    # fidelity 80 -> 40 (ratio 50), no oracle; mIoU 20 -> 25 of 40: a quarter of the gap; AP50 7.5
    assert line.startswith("| run | 80.0 | 40.0 | 50.0 | – | 20.0 | 25.0 | 25.0 | – | 7.5 |")
    assert translation_table.main([str(tmp_path / "missing")]) == 2


def test_sample_grid_places_each_image_between_white_gutters():
    black, grey = np.zeros((2, 3, 3), np.uint8), np.full((2, 3, 3), 100, np.uint8)
    grid = sample_grid([[black, grey], [grey, black]], gutter=1)
    assert grid.shape == (5, 7, 3)
    assert (grid[:2, :3] == 0).all() and (grid[:2, 4:] == 100).all() and (grid[3:, :3] == 100).all()
    assert (grid[2] == 255).all() and (grid[:, 3] == 255).all()
