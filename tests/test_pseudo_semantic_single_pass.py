"""``pseudo-semantic`` forwards every view once: its file equals the two-forward computation.

The reference below is the stage as it was before the scratch store (issue #27 item 5): a first
forward of every batch for the class prior, then :func:`make_pseudo_labels` (a second forward)
for the labels, with the stage's batches, views and guidance. The stage's file must hold the same
arrays, bit for bit; the float16 store (not the default) is held to its measured bound.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from test_training import tiny_cache

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
GUIDANCE = {"from_round": 2, "min_kept_share": 0.0, "min_agreement": 0.0, "fill_ignored": True}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Ten noise images of 32x64 (two batches of the stage: 8 + 2) and a random-weight toy teacher
    (config.yaml's DeepLabv3+ ResNet-18)."""
    from selfpanoptic.models import build_semantic_model
    from selfpanoptic.train.engine import save_model_file

    root = tmp_path_factory.mktemp("single-pass")
    spec = validate_config({})["semantic"]["model"] | {"init": "none"}
    torch.manual_seed(0)
    teacher = build_semantic_model(spec)
    with torch.no_grad():  # a random head's softmax is nearly flat: sharpen it, so thresholds keep and drop pixels
        teacher.head.weight.mul_(30.0)
    model = root / "semantic.pt"
    save_model_file(model, teacher, "semantic", spec, (32, 64))
    return {"cache": tiny_cache(root / "cache.h5", count=10), "model": model}


def settings(gt_instance_fraction: float = 0.0, **semantic) -> dict:
    """Three views, no threshold floor; guided by ground-truth instances when ``gt_instance_fraction`` > 0."""
    section = validate_config({"selftrain": {
        "semantic": {"views": 3, "threshold_floor": 0.0, **semantic},
        "guidance": GUIDANCE | {"gt_instance_fraction": gt_instance_fraction}}})["selftrain"]
    section.pop("rounds")
    return section


def run_stage(inputs: dict[str, Path], out: Path, section: dict) -> dict[str, np.ndarray]:
    """Round 1's file of the stage, every array but the image ids."""
    assert main(["pseudo-semantic", "--model", str(inputs["model"]), "--data", str(inputs["cache"]), "--out", str(out),
                 "--source", str(inputs["cache"]), "--round", "1",
                 "--selftrain-settings", json.dumps(section), *CPU]) == 0
    with h5py.File(out) as h5:
        return {name: h5[name][()] for name in h5 if name != "image_ids"}


@torch.no_grad()
def two_forward(inputs: dict[str, Path], section: dict, batch_size: int = 8) -> dict[str, np.ndarray]:
    """The stage's arrays made the old way: every view of every image forwarded twice."""
    from selfpanoptic.augment.normalise import to_unit
    from selfpanoptic.augment.views import random_view_affines, warp_to_reference
    from selfpanoptic.inference import batches
    from selfpanoptic.intermediates import DatasetCache
    from selfpanoptic.models import model_from_file
    from selfpanoptic.pseudo.semantic import make_pseudo_labels, teacher_views
    from selfpanoptic.settings import GuidanceSettings, SelfSemanticSettings
    from selfpanoptic.stages._guidance import load_guidance, source_shares

    teacher = model_from_file(inputs["model"], "semantic")
    sem = SelfSemanticSettings.from_config(section["semantic"])
    seed, views = sem.train.seed, sem.views
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(DatasetCache.open(inputs["cache"]))
        guide = load_guidance(section["guidance"], 1, cache, None, seed, stack)
        n, shape = len(cache), (cache.height, cache.width)

        def batch(idx: range):
            images = to_unit(np.stack([cache.read("images", i) for i in idx]))
            return images, torch.cat([random_view_affines(1, views.views, np.random.default_rng([seed, i]),
                                                          views.min_scale, views.max_scale, views.flip_p) for i in idx])

        prob_sum = torch.zeros(19, dtype=torch.float64)
        for idx in batches(n, batch_size):  # forward 1: the prior
            images, affines = batch(idx)
            fused = warp_to_reference(teacher_views(teacher, images, affines)[1], affines)[0]
            prob_sum += fused.double().sum(dim=(0, 2, 3))
        prior = (prob_sum / (n * shape[0] * shape[1])).float()
        made = [make_pseudo_labels(teacher, *batch(idx), prior, sem.pseudo,  # forward 2: the labels
                                   guide[idx.start:idx.stop] if guide is not None else None,
                                   GuidanceSettings.from_config(section["guidance"]),
                                   source_shares(sem.pseudo.alignment, str(inputs["cache"])))
                for idx in batches(n, batch_size)]
    arrays = {"labels": [m.labels for m in made], "argmax": [m.argmax for m in made],
              "confidence": [m.confidence for m in made], "thresholds": [m.thresholds for m in made]}
    if guide is not None:
        arrays["labels_before_guidance"] = [m.labels_before_guidance for m in made]
    dtypes = {"confidence": np.float16, "thresholds": np.float32}  # as the file stores them
    out = {name: torch.cat(parts).numpy().astype(dtypes.get(name, np.uint8)) for name, parts in arrays.items()}
    return out | {"prior": prior.numpy()}


@pytest.mark.parametrize("alignment, quantile, fraction", [(0.5, 0.0, 0.0), (0.0, 0.3, 0.0), (0.5, 0.2, 0.5)],
                         ids=["aligned-full-store", "maxima-store-with-quantile", "aligned-ground-truth-guidance"])
def test_one_forward_gives_the_two_forward_file_bit_for_bit(inputs, tmp_path, alignment, quantile, fraction):
    from selfpanoptic.pseudo.fused_store import STORED_DTYPE

    assert STORED_DTYPE == np.float32  # the default: every layout is exact
    section = settings(fraction, alignment=alignment, class_quantile=quantile)
    got = run_stage(inputs, tmp_path / "pseudo.h5", section)
    want = two_forward(inputs, section)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), name
    kept = (want["labels"] != 255).mean()
    assert 0.05 < kept < 0.95  # thresholds really decided pixels both ways
    assert ("labels_before_guidance" in want) == (fraction > 0)
    if fraction > 0:
        assert (want["labels"] != want["labels_before_guidance"]).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo.h5"]  # the scratch file is gone


def test_float16_store_changes_few_labels_within_its_rounding(inputs, tmp_path, monkeypatch):
    """The half-disk variant (``STORED_DTYPE = float16``): the prior is exact (summed before the
    rounding); thresholds move by at most float16 rounding; few labels change (measured here: 22
    of 20,480 labels and 12 argmax, 0.1%; on the toy default data 68 of 1,638,400)."""
    import selfpanoptic.pseudo.fused_store as fused_store

    monkeypatch.setattr(fused_store, "STORED_DTYPE", np.float16)
    section = settings(alignment=0.5)
    got, want = run_stage(inputs, tmp_path / "pseudo.h5", section), two_forward(inputs, section)
    assert np.array_equal(got["prior"], want["prior"])
    np.testing.assert_allclose(got["thresholds"], want["thresholds"], rtol=2e-3, atol=0)
    assert 0 < (got["labels"] != want["labels"]).mean() <= 0.005  # 0: the float16 store was not used
    assert (got["argmax"] != want["argmax"]).mean() <= 0.005


def test_maxima_layout_is_exact_by_hand():
    """One image, three classes, 2x3 pixels, a tie at (0, 0) and an uncovered pixel (1, 2): the
    maxima layout reads back a map whose labels, argmax, confidence and thresholds are the full map's."""
    import selfpanoptic.pseudo.fused_store as fused_store
    from selfpanoptic.pseudo.semantic import threshold_fused

    fused = torch.tensor([[[[0.4, 0.7, 0.2], [0.1, 0.5, 0.0]],
                           [[0.4, 0.2, 0.3], [0.8, 0.25, 0.0]],
                           [[0.2, 0.1, 0.5], [0.1, 0.25, 0.0]]]])
    covered = torch.tensor([[[[True, True, True], [True, True, False]]]])
    with h5py.File("scratch.h5", "w", driver="core", backing_store=False) as h5:
        store = fused_store.FusedStore(h5, all_classes=False, classes=3)
        for name, item, dtype in (("argmax", (2, 3), np.uint8), ("confidence", (2, 3), np.float32),
                                  ("covered", (2, 3), np.bool_)):
            h5.create_dataset(name, (1, *item), dtype)
        store.write(slice(0, 1), fused, covered)
        back, back_covered = store.read(slice(0, 1), torch.device("cpu"))
    assert back[0, :, 0, 0].tolist() == [fused[0, 0, 0, 0].item(), 0.0, 0.0] and not back[0, :, 1, 2].any()
    assert torch.equal(back_covered, covered)
    prior = torch.tensor([0.3, 0.5, 0.2])
    for want, got in zip(threshold_fused(fused, covered, prior, quantile=0.5),
                         threshold_fused(back, back_covered, prior, quantile=0.5)):
        assert torch.equal(want, got)
    labels = threshold_fused(back, back_covered, prior)[0][0]
    # thresholds 0.75 * peak (prior / temperature >> 1): class 0 0.75 * 0.7, 1 0.75 * 0.8, 2 0.75 * 0.5;
    # (0, 0) is class 0 (the tie's first) at 0.4 and (1, 1) class 0 at 0.5, both below 0.525
    assert labels.tolist() == [[255, 0, 2], [1, 255, 255]]


def test_scratch_file_lies_beside_the_output_and_goes_on_failure(inputs, tmp_path, monkeypatch):
    import selfpanoptic.pseudo.semantic as semantic
    from selfpanoptic.pseudo.fused_store import scratch_path

    out = tmp_path / "round1" / "pseudo.h5"
    seen = []

    def fail(*args, **kwargs):
        seen.append(scratch_path(out).is_file() and h5py.is_hdf5(scratch_path(out)))
        raise RuntimeError("made to fail after the forward pass")

    monkeypatch.setattr(semantic, "labels_from_fused", fail)
    with pytest.raises(RuntimeError, match="made to fail"):
        run_stage(inputs, out, settings())
    assert seen == [True] and scratch_path(out) == tmp_path / "round1" / "pseudo.tmp-fused.h5"
    assert list(out.parent.iterdir()) == []  # neither the scratch file nor the output's temporary


@pytest.mark.parametrize("stale", ["garbage", "other-hdf5"])
def test_a_killed_runs_scratch_file_is_replaced_by_the_rerun(inputs, tmp_path, stale):
    from selfpanoptic.pseudo.fused_store import scratch_path

    out = tmp_path / "pseudo.h5"
    if stale == "garbage":  # what SIGKILL may leave: a file cut off anywhere
        scratch_path(out).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(1000))
    else:  # a complete file of another split's shape
        with h5py.File(scratch_path(out), "w") as h5:
            h5.create_dataset("fused", data=np.ones((3, 19, 4, 4), np.float32))
    section = settings(alignment=0.0)
    assert np.array_equal(run_stage(inputs, out, section)["labels"], two_forward(inputs, section)["labels"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo.h5"]


def test_a_disk_without_room_for_the_scratch_file_is_refused_before_the_forward_pass(inputs, tmp_path, monkeypatch,
                                                                                     capsys):
    import selfpanoptic.pseudo.fused_store as fused_store

    # 10 images of 32x64, 19 float32 classes + covered: 77 bytes a pixel
    assert fused_store.scratch_bytes(10, 19, (32, 64), all_classes=True) == 10 * 32 * 64 * 77
    assert fused_store.scratch_bytes(10, 19, (32, 64), all_classes=False) == 10 * 32 * 64 * 6
    monkeypatch.setattr(fused_store.shutil, "disk_usage", lambda path: SimpleNamespace(free=10 * 32 * 64 * 77 - 1))
    out = tmp_path / "pseudo.h5"
    assert main(["pseudo-semantic", "--model", str(inputs["model"]), "--data", str(inputs["cache"]), "--out", str(out),
                 "--source", str(inputs["cache"]), "--round", "1",
                 "--selftrain-settings", json.dumps(settings(alignment=0.5)), *CPU]) == 2
    assert "scratch file needs 1.5 MiB beside the output, but only 1.5 MiB are free" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

