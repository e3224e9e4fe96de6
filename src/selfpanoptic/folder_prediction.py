"""A run's predictions on a folder of images (``predict-panoptic``), each image through :mod:`selfpanoptic.panoptic`.

The output folder holds, for every image (``<id>``: its id, ``<sub>``: its subfolder below the
input folder, both :mod:`selfpanoptic.data.images`):

- ``semantic/labelIds/<sub>/<id>.png`` (Cityscapes labelIds) and ``semantic/colour/<sub>/<id>.png``;
- ``instance/<sub>/<id>.txt`` and ``instance/<sub>/masks/*.png``: the official instance format,
  instances before the clean-up, as ``export-instance`` writes them;
- ``panoptic/<id>_panoptic.png`` and ``panoptic.json``: exactly what ``fuse-panoptic`` writes
  (:func:`selfpanoptic.panoptic.write_panoptic_files`), with one ``images`` entry per image
  (``id``, ``file_name`` = the image's file name, ``height``, ``width``) and the Cityscapes
  categories, so that the official panoptic evaluator and ``selfpanoptic evaluate panoptic`` pair
  a Cityscapes-named image with its ground truth;
- ``overlays/<sub>/<id>.png``: the image with the panoptic segments drawn over it.

Without instance models (a semantic-only run) only ``semantic/`` and ``overlays/`` (of the
semantic prediction) are written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from .atomic import MARKER
from .data.images import IMAGE_SUFFIXES
from .errors import InputError
from .formats.cityscapes_ids import cityscapes_categories
from .formats.instance_files import write_instance_prediction
from .formats.semantic_png import write_semantic_prediction
from .overlays import panoptic_overlay, semantic_overlay
from .panoptic import Predictor, fuse, write_panoptic_files
from .settings import FusionSettings
from .pngio import image_size, read_rgb, write_png

__all__ = ["check_image_links", "image_entries", "predict_image_folder"]

SHOWN_LINKS = 5
"""Broken links listed in a message."""


def check_image_links(folder: str | Path, exclude: str | Path | None = None) -> None:
    """Refuse image links below ``folder`` that point to no file (dangling, or a loop).

    :func:`selfpanoptic.data.images.image_folder` lists files only, so such a link would be left
    out silently, while an image file that cannot be read stops the command: a broken link is
    refused as an unreadable image is. Links below ``exclude`` or below a finished output (its
    :data:`~selfpanoptic.atomic.MARKER`) are left out, as ``image_folder`` leaves them.

    Raises
    ------
    InputError
        Naming the links (the first few) and where each points.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return  # image_folder says what is wrong with it
    broken = sorted(path for path in folder.rglob("*")
                    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_symlink() and not path.exists())
    skipped = {Path(exclude).absolute()} if exclude is not None else set()
    broken = [path for path in broken if not skipped.intersection([path.absolute(), *path.absolute().parents])
              and not any((folder / sub / MARKER).is_file() for sub in path.relative_to(folder).parents[:-1])]
    if not broken:
        return
    shown = "\n".join(f"  {path} -> {path.readlink()}" for path in broken[:SHOWN_LINKS])
    more = f"\n  ... and {len(broken) - SHOWN_LINKS} more" if len(broken) > SHOWN_LINKS else ""
    raise InputError(f"{len(broken)} image link(s) below this folder point to no file:\n{shown}{more}", folder,
                     "restore the files they point to, or remove the links")


def image_entries(images: list[tuple[str, Path]]) -> list[dict]:
    """The ``images`` entries of ``panoptic.json``, read from the files' headers.

    Parameters
    ----------
    images : list of (str, pathlib.Path)
        ``(image id, file)``, as :func:`selfpanoptic.data.images.image_folder` returns them.

    Returns
    -------
    list of dict
        ``{"id", "file_name", "height", "width"}`` per image, in the order given; ``file_name``
        is the file's name without its folder (``lindau_000000_000019_leftImg8bit.png``).

    Raises
    ------
    InputError
        Naming the first file whose header cannot be read: called before any model work, an
        unreadable image stops a prediction before it starts.
    """
    entries = []
    for image_id, path in images:
        height, width = image_size(path)
        entries.append({"id": image_id, "file_name": path.name, "height": int(height), "width": int(width)})
    return entries


def predict_image_folder(
    images: list[tuple[str, Path]], root: Path, entries: list[dict], out: Path, predictor: Predictor,
    fusion: FusionSettings, show_progress: bool = False,
) -> int | None:
    """Write every output of the images below ``root`` into the existing folder ``out``.

    Parameters
    ----------
    images : list of (str, pathlib.Path)
        ``(image id, file)`` below ``root`` (:func:`selfpanoptic.data.images.image_folder`).
    root : pathlib.Path
        The folder searched: each file's subfolder below it is kept in the per-image outputs.
    entries : list of dict
        :func:`image_entries` of ``images``.
    out : pathlib.Path
        The output folder (the module docstring lists what it receives).
    predictor : Predictor
        The run's models and how they run.
    fusion : FusionSettings
        The clean-up and fusion of the panoptic maps.
    show_progress : bool
        Whether to show a progress bar.

    Returns
    -------
    int or None
        The number of instances found in all images (before the clean-up); None without
        instance models.
    """
    root, out = Path(root), Path(out)
    progress = tqdm(images, desc="predict panoptic", disable=not show_progress)
    if not predictor.groups:
        for image_id, path in progress:
            image = read_rgb(path)
            labels, sub = predictor.predict(image).labels, path.parent.relative_to(root)
            _write_semantic(out, sub, image_id, labels)
            _write_overlay(out, sub, image_id, semantic_overlay(image, labels))
        return None
    found: list[int] = []
    write_panoptic_files(out, _fused(progress, root, out, predictor, fusion, found), entries, cityscapes_categories())
    return sum(found)


def _fused(images, root: Path, out: Path, predictor: Predictor, fusion: FusionSettings, found: list[int]):
    """``(image id, panoptic ids, segments)`` per image for :func:`write_panoptic_files`; the image's
    semantic, instance and overlay files are written on the way, its instance count appended to ``found``."""
    for image_id, path in images:
        image = read_rgb(path)
        prediction = predictor.predict(image)
        sub = path.parent.relative_to(root)
        _write_semantic(out, sub, image_id, prediction.labels)
        found.append(len(prediction.classes))
        write_instance_prediction(out / "instance" / sub, image_id, prediction.instances, prediction.classes,
                                  prediction.scores)
        ids, segments = fuse(prediction.labels, prediction.instances, fusion)
        _write_overlay(out, sub, image_id, panoptic_overlay(image, np.asarray(ids)))
        yield image_id, ids, segments


def _write_semantic(out: Path, sub: Path, image_id: str, labels: np.ndarray) -> None:
    """``semantic/labelIds/<sub>/<id>.png`` and ``semantic/colour/<sub>/<id>.png`` of (H, W) uint8 trainIds."""
    write_semantic_prediction(out / "semantic" / "labelIds" / sub / f"{image_id}.png", labels,
                              out / "semantic" / "colour" / sub / f"{image_id}.png")


def _write_overlay(out: Path, sub: Path, image_id: str, picture: np.ndarray) -> None:
    """``overlays/<sub>/<id>.png`` of an (H, W, 3) uint8 picture."""
    path = out / "overlays" / sub / f"{image_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, picture)
