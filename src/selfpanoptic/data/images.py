"""Folders of images, read with one id rule: the ``images`` dataset format and the plain image
folder of ``predict-panoptic``.

Image ids
---------
An image's id is its file name without the extension, less a trailing ``_leftImg8bit``, with
whitespace and backslashes made ``_`` (:func:`image_id_of`)::

    lindau/lindau_000000_000019_leftImg8bit.png  ->  lindau_000000_000019
    day/0001.jpg                                 ->  0001
    a b.png                                      ->  a_b

The folders above the file are not part of the id, so that a Cityscapes-named image gets the id
its gtFine labels and the Cityscapes panoptic ground truth use (``createPanopticImgs`` names an
image ``<id>`` after ``<id>_gtFine_instanceIds.png``), and every id can prefix the official
prediction files (``<id>_panoptic.png``, ``<id>.txt``: no ``/``, no spaces). Ids must be unique
across the folder: two files with one id (``a/x.png`` and ``b/x.png``, ``x.png`` and ``x.jpg``)
stop the reader with one message naming them all. Outputs that mirror the folder
(``predict-panoptic``'s per-image files) keep each image's subfolder in their path.

Readers
-------
* :func:`image_folder`: every ``*.png``, ``*.jpg`` and ``*.jpeg`` below a folder (any depth, any
  letter case), without labels;
* :class:`ImageFolderDataset`: the images matched by a glob (any format Pillow decodes) as a
  target domain. Without a labels folder the split is unlabelled (see :mod:`.labelled`). With
  one, each image ``<id>`` needs ``<id>_gtFine_labelIds.png`` (Cityscapes labelIds) and
  ``<id>_gtFine_instanceIds.png`` (Cityscapes instanceIds) anywhere below that folder, as
  Cityscapes' gtFine has them; images or label files without their partner fall under the
  ``unpaired`` policy.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import MARKER
from ..errors import InputError
from .base import DatasetReader, SampleFiles
from .cityscapes import decode_gtfine
from .problems import Problem

__all__ = ["IMAGE_SUFFIXES", "ImageFolderDataset", "files_by_name", "image_folder", "image_id_of", "label_key_of"]

LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File-name endings (compared in lower case) of the images of a plain folder (:func:`image_folder`)."""
SHOWN = 5
"""Duplicate ids listed in a message."""


def image_id_of(path: Path) -> str:
    """The id of an image file (the module's rule): its stem less a trailing ``_leftImg8bit``,
    whitespace and backslashes made ``_``.

    The official instance txt separates its fields with spaces, and one id names every output of
    an image, so no whitespace may remain.
    """
    return _no_whitespace(Path(path).stem.removesuffix(CITYSCAPES_IMAGE_SUFFIX))


def label_key_of(path: Path) -> str:
    """The name a label file is paired by: its file name with the image ids' whitespace rule, so
    that ``a b_gtFine_labelIds.png`` pairs with the image ``a b.png`` (id ``a_b``)."""
    return _no_whitespace(Path(path).name)


def _no_whitespace(name: str) -> str:
    return re.sub(r"[\s\\]", "_", name)


def files_by_name(paths: list[Path], key: Callable[[Path], str], what: str, fix: str) -> dict[str, Path]:
    """``{key(path): path}`` of ``paths``, raising one :class:`InputError` if keys repeat.

    Parameters
    ----------
    paths:
        Files found below a folder, sorted.
    key:
        The name a file is known by (:func:`image_id_of`, :func:`label_key_of`).
    what:
        What the names are, for the message (``image id``, ``label file name``).
    fix:
        How to make them unique.
    """
    seen: dict[str, list[Path]] = {}
    for path in paths:
        seen.setdefault(key(path), []).append(path)
    repeated = {name: found for name, found in seen.items() if len(found) > 1}
    if repeated:
        lines = [f"  {name}: {', '.join(map(str, found))}" for name, found in sorted(repeated.items())[:SHOWN]]
        more = f"\n  ... and {len(repeated) - SHOWN} more" if len(repeated) > SHOWN else ""
        raise InputError(f"{len(repeated)} {what}(s) occur more than once:\n" + "\n".join(lines) + more, None, fix)
    return {name: found[0] for name, found in seen.items()}


class ImageFolderDataset(DatasetReader):
    """Images matched by ``glob`` below ``root``, with the gtFine-style labels in ``labels`` if given.

    Parameters
    ----------
    root, split, size:
        As :class:`DatasetReader`; ``split`` only names the split in messages.
    glob:
        Pattern of the images relative to ``root`` (``**`` descends into folders).
    labels:
        Folder holding ``<id>_gtFine_labelIds.png`` and ``<id>_gtFine_instanceIds.png``
        (searched recursively); None: the split is unlabelled.
    """

    format = "images"
    layout_hint = (
        "image files matched by the glob below the root (ids from file names, unique); labels, if any, as "
        "<id>_gtFine_labelIds.png + <id>_gtFine_instanceIds.png below the labels folder"
    )

    def __init__(self, root: str | Path, split: str | None = None, size: tuple[int, int] | None = None,
                 glob: str = "**/*.png", labels: str | Path | None = None):
        self.glob = glob
        self.labels = None if labels is None else Path(labels)
        super().__init__(root, split, size)

    def list_files(self) -> tuple[list[SampleFiles], list[Problem]]:
        matched = sorted(self.root.glob(self.glob))
        # a link to no file is not a file: it would be left out of the split without a word
        broken = [p for p in matched if p.is_symlink() and not p.exists()]
        if broken:
            shown = ", ".join(f"{p.relative_to(self.root)} -> {os.readlink(p)}" for p in broken[:3])
            raise InputError(
                f"{len(broken)} image link(s) matched by {self.glob!r} point to no file: {shown}"
                f"{' ...' if len(broken) > 3 else ''}", self.root,
                "restore the files the links point to, or remove the links")
        images = [p for p in matched if p.is_file()]
        if not images:
            raise InputError(
                f"no image matches {self.glob!r} below the image folder", self.root,
                "set this split's glob (datasets.target.train_glob or val_glob) to a pattern of the images relative to datasets.target.root, "
                "e.g. 'train/**/*.png'",
            )
        by_id = files_by_name(images, image_id_of, "image id",
                              "rename the images or narrow the split's glob (datasets.target.train_glob or val_glob): "
                              "ids are file names without the extension and _leftImg8bit")
        if self.labels is None:
            return [SampleFiles(image_id, path, None) for image_id, path in sorted(by_id.items())], []
        if not self.labels.is_dir():
            raise InputError("labels folder does not exist", self.labels,
                             "set datasets.target.val_labels to the folder of the *_gtFine_labelIds.png files, "
                             "or leave it out (null) to use the images without labels")
        found = files_by_name(sorted(self.labels.rglob("*_gtFine_*Ids.png")), label_key_of, "label file name",
                              "keep one label file per image id below the labels folder")
        samples, unpaired = [], []
        for image_id, path in sorted(by_id.items()):
            pair = [f"{image_id}{LABEL_SUFFIX}", f"{image_id}{INSTANCE_SUFFIX}"]
            missing = [name for name in pair if name not in found]
            if missing:
                unpaired.append(Problem("missing_label", path, f"no {' and no '.join(missing)} below {self.labels}"))
                continue
            samples.append(SampleFiles(image_id, path, found[pair[0]], found[pair[1]]))
        for name, path in sorted(found.items()):
            image_id = name.removesuffix(LABEL_SUFFIX).removesuffix(INSTANCE_SUFFIX)
            if image_id not in by_id:
                unpaired.append(Problem("missing_image", path, f"no image with id {image_id!r} matches {self.glob!r}"))
        return samples, unpaired

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        return decode_gtfine(files.label_path, files.instance_path)


def image_folder(folder: str | Path, exclude: str | Path | None = None) -> list[tuple[str, Path]]:
    """The images below ``folder`` and their ids (:func:`image_id_of`), sorted by id.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder to search, recursively: every file whose name ends in one of
        :data:`IMAGE_SUFFIXES` (any letter case) is an image.
    exclude : str or pathlib.Path, optional
        A path whose files are not images of the folder even when they lie below it (an output
        folder inside the input folder, so that a rerun does not read its own overlays). Every
        folder below ``folder`` that holds :data:`~selfpanoptic.atomic.MARKER` (a finished
        selfpanoptic output) is left out too.

    Returns
    -------
    list of (str, pathlib.Path)
        ``(image id, file)`` per image, sorted by id.

    Raises
    ------
    InputError
        When ``folder`` does not exist, is not a folder, holds no image, or two files get one
        id (``a.png`` and ``a.jpg``; ``a b.png`` and ``a_b.png``; ``x/c.png`` and ``y/c.png``).
    """
    folder = Path(folder)
    kinds = ", ".join(f"*{s}" for s in IMAGE_SUFFIXES)
    if not folder.exists():
        raise InputError("image folder does not exist", folder, "give the folder holding your images")
    if not folder.is_dir():
        raise InputError("is a file, not a folder of images", folder, "give the folder that holds the image")
    # earlier outputs inside the folder (predict-panoptic --out img/pred1) hold overlays, not images
    excluded = {Path(exclude).absolute()} if exclude is not None else set()
    candidates = []
    for path in folder.rglob("*"):  # one walk: the markers and the images
        if path.name == MARKER and path.parent != folder:
            excluded.add(path.parent.absolute())
        elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            candidates.append(path)
    files = [path for path in candidates
             if path.absolute() not in excluded and not excluded.intersection(path.absolute().parents)]
    if not files:
        raise InputError(f"no images ({kinds}) in this folder or below it", folder,
                         "give the folder holding your images")
    by_id = files_by_name(sorted(files), image_id_of, "image id",
                          "rename one of them: an image's id is its file name without the extension and "
                          "_leftImg8bit, whatever its subfolder")
    return sorted(by_id.items())
