"""Label-to-image translation of the source: rendering label maps, the translated dataset's files,
and the label-fidelity score.

A trained translator (:func:`~selfpanoptic.models.build_translator`, a SPADE generator) paints
a label map in the look of the target images it learnt from. :func:`translate_labels` renders a
batch; :func:`translated_paths` says where a source sample's translated image and its (linked,
unchanged) label files go, mirroring the source dataset's own layout, so that the dataset
readers index the translated source like any Synthia or GTA5 folder.

Label fidelity is the segmentation-to-SPADE pipeline's feedback loop: the labelling round's
semantic model segments each translated image, and the result is scored against the label map
the image was generated from (:func:`fidelity_table`). Where the generator ignores its input,
the class's fidelity IoU falls below the model's IoU on the real source image.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .classes import CLASS_NAMES, NUM_CLASSES
from .errors import InputError
from .metrics.semantic import class_iou, mean_iou

__all__ = ["FIDELITY_COLUMNS", "check_translator", "fidelity_table", "link_or_copy", "sample_grid", "translate_labels",
           "translated_paths"]


def check_translator(saved: dict[str, Any], path: str | Path, size: tuple[int, int]) -> None:
    """Refuse a translator file made for another label set or another working resolution.

    ``saved``: the file as :func:`~selfpanoptic.models.load_model_file` returns it (``classes``,
    ``working_size`` besides the weights); ``size``: ``(H, W)`` of the label maps it is to render.
    """
    # translator files written before model files recorded ``working_size`` call it ``size``
    classes, trained = list(saved.get("classes", [])), tuple(saved.get("working_size", saved.get("size", ())))
    if classes != list(CLASS_NAMES):
        raise InputError(
            f"the translator was trained on another label set ({len(classes)} classes: "
            f"{', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}; this project's are the 19 Cityscapes classes)",
            path, "retrain it (delete the file and rerun the train_translator rule)")
    if trained != tuple(size):
        raise InputError(
            f"the translator was trained at {trained[0] if trained else '?'}x{trained[1] if len(trained) > 1 else '?'} "
            f"pixels, but the label maps to translate are {size[0]}x{size[1]} (data.height x data.width)",
            path, "retrain it at this working resolution (delete the file and rerun the train_translator rule)")


def translate_labels(generator, labels: np.ndarray, device) -> np.ndarray:
    """Images the ``generator`` paints for label maps.

    Parameters
    ----------
    generator : torch.nn.Module
        A translator in eval mode (on ``device``): one-hot label map (B, 20, H, W) -> (B, 3, H, W) in [0, 1].
    labels : numpy.ndarray of uint8, shape (B, H, W)
        trainIds 0..18; 255 (and anything above 18) is the void channel.

    device : torch.device
        Where the generator is.

    Returns
    -------
    numpy.ndarray of uint8, shape (B, H, W, 3)
    """
    # torch here, not at the top: the report reads this module's table format without paying for it
    import torch

    from .models.spade import label_one_hot

    with torch.no_grad():
        segmap = label_one_hot(torch.from_numpy(labels.astype(np.int64)).to(device), NUM_CLASSES)
        images = generator(segmap).float().clamp(0.0, 1.0)
    return (images.permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def translated_paths(row: Any, out_root: str | Path) -> dict[str, Path | None]:
    """Where one manifest row's files go in the translated dataset ``out_root/<dataset>/``.

    ``row``: a manifest row (``dataset``, ``root``, ``image_path``, ``label_path``,
    ``instance_path``). Each file keeps its path relative to its dataset root, so the folder
    has the source's own layout (Synthia ``RGB/`` + ``GT/LABELS/``, GTA5 ``images/`` + ``labels/``).
    Returns ``root``, ``image_path``, ``label_path`` and ``instance_path`` (None when the row has none).
    """
    root = Path(out_root) / str(row.dataset)

    def moved(path: Any) -> Path | None:
        if not isinstance(path, str) or not path:
            return None
        relative = os.path.relpath(path, row.root)
        if relative.startswith(".."):
            raise InputError(f"file {path} is outside its dataset root {row.root}", None,
                             "rebuild the manifest from the dataset (rerun the index_dataset rule)")
        return root / relative

    return {"root": root, "image_path": moved(row.image_path), "label_path": moved(row.label_path),
            "instance_path": moved(row.instance_path)}


def link_or_copy(source: str | Path, destination: Path) -> None:
    """A hard link to ``source`` at ``destination`` (no second copy of the label files), a copy
    where the file system cannot link (another device, no hard links)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


FIDELITY_COLUMNS = ["class", "real_iou", "translated_iou", "ratio", "oracle_translated_iou"]


def fidelity_table(real: np.ndarray, translated: np.ndarray, oracle: np.ndarray | None = None,
                   classes: Sequence[int] | None = None) -> pd.DataFrame:
    """Per-class IoU of one semantic model on real source images and on their translations.

    ``real``, ``translated``: confusion matrices ``(19, 20)`` (rows: the label map's class,
    columns: the prediction, as :func:`~selfpanoptic.metrics.semantic.confusion_matrix` counts
    them) over the same images; ``oracle``: the same for a model trained on target labels on the
    translations, or None. Returns one row per class plus ``mean`` (over the classes present in
    the label maps, or ``classes``): ``real_iou``, ``translated_iou`` (the label fidelity),
    ``ratio`` = translated / real and ``oracle_translated_iou``, all in percent. NaN where a
    class has no pixels, no ratio where the real IoU is 0, no oracle column values without one.

    The labelling model is itself adapted to the domain it learnt in, so the more target-like the
    translation, the more its domain gap shows in ``translated_iou``; a target-trained model
    reads target-like images best, which is what ``oracle_translated_iou`` adds.
    """
    real_iou, translated_iou = class_iou(real), class_iou(translated)
    oracle_iou = class_iou(oracle) if oracle is not None else np.full(NUM_CLASSES, np.nan)
    present = np.flatnonzero(real[:, :NUM_CLASSES].sum(axis=1) > 0) if classes is None else np.asarray(classes)
    rows = [(name, real_iou[c], translated_iou[c], oracle_iou[c]) for c, name in enumerate(CLASS_NAMES)]
    rows.append(("mean", mean_iou(real_iou, present), mean_iou(translated_iou, present), mean_iou(oracle_iou, present)))
    table = pd.DataFrame(rows, columns=["class", "real_iou", "translated_iou", "oracle_translated_iou"])
    table[["real_iou", "translated_iou", "oracle_translated_iou"]] *= 100.0
    # no ratio where the model gets a class wrong on real images too: nothing to be a share of
    real_known = table["real_iou"].where(table["real_iou"] > 0)
    table["ratio"] = 100.0 * table["translated_iou"] / real_known
    return table[FIDELITY_COLUMNS].round(2)


def sample_grid(rows: list[list[np.ndarray]], gutter: int = 2) -> np.ndarray:
    """Rows of equally sized (H, W, 3) uint8 images as one (H', W', 3) uint8 image, white gutters
    of ``gutter`` pixels between them (label-fidelity's grid of translated samples)."""
    height, width = rows[0][0].shape[:2]
    out = np.full((len(rows) * (height + gutter) - gutter, len(rows[0]) * (width + gutter) - gutter, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = r * (height + gutter), c * (width + gutter)
            out[top:top + height, left:left + width] = image
    return out
