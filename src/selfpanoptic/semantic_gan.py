"""SemanticGAN's files and outputs: checked loading of generator and encoder files, labelled
samples, and the label-fidelity table of those samples.

A generator file holds the moving-average generator (what is sampled and inverted) with the label
set and the working size it was trained at; an encoder file records the spec of the generator it
was trained against, so that a pair that does not belong together is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .classes import CLASS_NAMES, NUM_CLASSES
from .errors import InputError
from .metrics.semantic import class_iou, mean_iou
from .models import load_model_file, model_from_saved
from .models.stylegan import SemanticGenerator

__all__ = ["load_encoder", "load_generator", "sample_fidelity_table", "sample_pairs", "to_uint8_images"]


def load_generator(path: str | Path, size: tuple[int, int] | None = None) -> tuple[SemanticGenerator, dict[str, Any]]:
    """The generator of a generator file (eval mode) and the file's contents.

    Refuses a file of another label set, or (``size``: (height, width) of the images it is to
    meet) of another working size, with the fix.
    """
    saved = load_model_file(path, "semantic_gan")
    classes = list(saved.get("classes", []))
    if classes != list(CLASS_NAMES):
        raise InputError(f"the generator was trained on another label set ({len(classes)} classes: "
                         f"{', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}; this project's are the "
                         f"{NUM_CLASSES} Cityscapes classes)", path,
                         "retrain it (delete the file and rerun the train_semantic_gan rule)")
    trained = tuple(saved["working_size"])
    if size is not None and trained != tuple(size):
        raise InputError(f"the generator draws {trained[0]}x{trained[1]} pixels, but the images here are "
                         f"{size[0]}x{size[1]} (data.height x data.width)", path,
                         "retrain it at this working size (delete the file and rerun the train_semantic_gan rule)")
    return model_from_saved(saved, path), saved


def load_encoder(path: str | Path | None, generator_saved: dict[str, Any], generator_path: str | Path) -> torch.nn.Module:
    """The encoder of an encoder file (eval mode), checked against the generator it is used with."""
    if not path:
        raise InputError("reading labels out of images starts from the encoder's styles, and no --encoder was given",
                         generator_path, "train the encoder (train-gan-encoder, rule train_gan_encoder) and pass it "
                         "with --encoder")
    saved = load_model_file(path, "gan_encoder")
    if saved.get("generator_spec") != generator_saved["spec"]:
        raise InputError("the encoder was trained against another generator (its recorded generator spec differs)",
                         path, f"retrain the encoder against {generator_path} (rerun the train_gan_encoder rule)")
    return model_from_saved(saved, path)


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8, clipped."""
    unit = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return unit.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def sample_pairs(generator: SemanticGenerator, count: int, truncation: float, seed: int, device: torch.device,
                 batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``count`` labelled samples: images (N, H, W, 3) uint8 and label maps (N, H, W) uint8
    trainIds (the label branch's argmax; every pixel gets a class). Codes, noise and the mean
    style all come from a generator seeded with ``seed``: the same samples on every rerun."""
    torch.manual_seed(seed)
    centre = generator.mean_style() if truncation != 1.0 else None
    images, labels = [], []
    for start in range(0, count, batch_size):
        z = torch.randn(min(batch_size, count - start), generator.style_dim, device=device)
        image, logits = generator.synthesis(generator.styles(z, truncation=truncation, centre=centre))
        images.append(to_uint8_images(image))
        labels.append(logits.argmax(1).to(torch.uint8).cpu().numpy())
    return np.concatenate(images), np.concatenate(labels)


def sample_fidelity_table(oracle: np.ndarray, model: np.ndarray | None = None) -> pd.DataFrame:
    """Per-class IoU (percent) of segmentations of generated samples against their generated labels.

    ``oracle``: confusion matrix (19, 20) of the target-trained model's segmentation (rows: the
    generated label, columns: the segmentation); ``model``: the same for another model (the run
    whose labels taught the GAN), or None. One row per class, then ``mean`` over the classes the
    samples draw; columns ``class``, ``pixels`` (share of sample pixels, percent), ``oracle_iou``,
    ``model_iou`` (NaN without ``model``).
    """
    pixels = oracle[:, :NUM_CLASSES].sum(axis=1)
    present = np.flatnonzero(pixels > 0)
    oracle_iou = class_iou(oracle)
    model_iou = class_iou(model) if model is not None else np.full(NUM_CLASSES, np.nan)
    share = 100.0 * pixels / max(pixels.sum(), 1)
    rows = [(name, share[c], 100 * oracle_iou[c], 100 * model_iou[c]) for c, name in enumerate(CLASS_NAMES)]
    rows.append(("mean", 100.0, 100 * mean_iou(oracle_iou, present), 100 * mean_iou(model_iou, present)))
    return pd.DataFrame(rows, columns=["class", "pixels", "oracle_iou", "model_iou"]).round(2)
