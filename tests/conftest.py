"""Shared fixtures: tiny datasets written by hand in each real format (not through the generator)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import png
import pytest
import torch
from PIL import Image

# scripts/official_eval.py runs cityscapesscripts' own evaluators (bridged to numpy 2); tests import it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def save_rgb(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), "RGB").save(path)


def save_grey8(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), "L").save(path)


def save_grey16(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = array.shape
    png.Writer(width, height, greyscale=True, bitdepth=16).write(
        open(path, "wb"), array.astype(np.uint16).tolist()
    )


def save_rgb16(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width, _ = array.shape
    with open(path, "wb") as handle:
        png.Writer(width, height, greyscale=False, bitdepth=16).write(
            handle, array.astype(np.uint16).reshape(height, width * 3).tolist()
        )


def image_of(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# Synthia ids: 3 road, 10 pedestrian, 8 car, 18 truck (void in semantic, instance kept), 22 lanemarking.
def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per core, at most 2 (each worker holds torch and models, about 1-2
    GB, and the workflow tests start Snakemake with 2 cores of their own)."""
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


SMOKE_RUNS: list[Path] = []
"""Folders where ``configs/smoke.yaml`` ran to the end locally (the SLURM tests' reference run): the
workflow tests start from a copy of one instead of running the same jobs again."""

SYNTHIA_CLASSES = np.array([[3, 3, 10, 10], [8, 8, 0, 22]])
SYNTHIA_INSTANCES = np.array([[0, 0, 4, 4], [9, 9, 12, 0]])
SYNTHIA_EXPECTED_TRAIN_IDS = np.array([[0, 0, 11, 11], [13, 13, 255, 255]], dtype=np.uint8)

# Cityscapes labelIds: 7 road, 24 person, 26 car, 29 caravan (not evaluated), 0 unlabeled.
CITYSCAPES_LABEL_IDS = np.array([[7, 24, 24, 26], [7, 26, 29, 0]])
CITYSCAPES_INSTANCE_IDS = np.array([[7, 24000, 24001, 26000], [7, 26000, 29000, 0]])
CITYSCAPES_EXPECTED_TRAIN_IDS = np.array([[0, 11, 11, 13], [0, 13, 255, 255]], dtype=np.uint8)
CITYSCAPES_EXPECTED_INSTANCES = np.array([[0, 24000, 24001, 26000], [0, 26000, 0, 0]])

# GTA5 labels are Cityscapes labelIds: 23 sky, 21 vegetation, 27 truck, 31 train, 4 static.
GTA_LABEL_IDS = np.array([[23, 23, 21, 4], [27, 27, 31, 31]])
GTA_EXPECTED_TRAIN_IDS = np.array([[10, 10, 8, 255], [14, 14, 16, 16]], dtype=np.uint8)


@pytest.fixture
def synthia_root(tmp_path: Path) -> Path:
    root = tmp_path / "synthia"
    for i in range(2):
        save_rgb(root / "RGB" / f"000000{i}.png", image_of(2, 4, i))
        labels = np.zeros((2, 4, 3), dtype=np.uint16)
        labels[..., 0] = SYNTHIA_CLASSES
        labels[..., 1] = SYNTHIA_INSTANCES
        save_rgb16(root / "GT" / "LABELS" / f"000000{i}.png", labels)
    return root


@pytest.fixture
def gta_root(tmp_path: Path) -> Path:
    root = tmp_path / "gta"
    save_rgb(root / "images" / "00001.png", image_of(2, 4))
    # GTA5 ships palette PNGs: the palette index is the labelId.
    label = Image.fromarray(GTA_LABEL_IDS.astype(np.uint8), "P")
    label.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    (root / "labels").mkdir(parents=True)
    label.save(root / "labels" / "00001.png")
    return root


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    for split, city in (("train", "aachen"), ("val", "lindau")):
        stem = f"{city}_000000_000019"
        save_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image_of(2, 4))
        save_grey8(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", CITYSCAPES_LABEL_IDS)
        save_grey16(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png", CITYSCAPES_INSTANCE_IDS)
    return root


def random_cityscapes_split(root: Path, split: str, count: int, height: int, width: int, seed: int = 0) -> list[str]:
    """Write ``count`` random Cityscapes samples of one split (images, labelIds, instanceIds); return their ids.

    Each label map: a few horizontal bands of stuff classes, some void, and rectangles of thing
    classes, each an instance (``labelId * 1000 + k``), some of them tiny.
    """
    rng = np.random.default_rng(seed)
    stuff = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 0]  # labelIds; 0 = unlabeled (void)
    things = [24, 25, 26, 27, 28, 31, 32, 33]
    ids = []
    for n in range(count):
        image_id = f"lindau_{n:06d}_000019"
        city = root / "gtFine" / split / "lindau"
        labels = np.repeat(rng.choice(stuff, size=(4, 1)), height // 4 + 1, axis=0)[:height].repeat(width, axis=1)
        instances = labels.astype(np.int32).copy()
        for k in range(int(rng.integers(2, 7))):
            label = int(rng.choice(things))
            h, w = (int(v) for v in rng.integers(1, [height // 2, width // 3]))
            top, left = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            labels[top:top + h, left:left + w] = label
            instances[top:top + h, left:left + w] = label * 1000 + k
        save_rgb(root / "leftImg8bit" / split / "lindau" / f"{image_id}_leftImg8bit.png", image_of(height, width, seed + n))
        save_grey8(city / f"{image_id}_gtFine_labelIds.png", labels)
        save_grey16(city / f"{image_id}_gtFine_instanceIds.png", instances)
        ids.append(image_id)
    return ids


# View geometry shared by the view and threshold tests (2x3 matrices, see augment/views.py).
IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
FLIP = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
CENTRE_HALF = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]  # middle half of the image, zoomed 2x


def affines(*views) -> torch.Tensor:
    """(1, V, 2, 3) from 2x3 nested lists."""
    return torch.tensor([views], dtype=torch.float32)
