"""A folder of images as a target domain: images matched by a glob, optional Cityscapes-style labels.

Every file under ``root`` that matches the glob is an image (any format Pillow decodes). Its id
is the file's stem, less a trailing ``_leftImg8bit`` (so that Cityscapes-named files pair with
their gtFine labels); ids must be unique across the folder. Without a labels folder the split is
unlabelled (see :mod:`.labelled`). With one, each image ``<id>`` needs
``<id>_gtFine_labelIds.png`` (Cityscapes labelIds) and ``<id>_gtFine_instanceIds.png``
(Cityscapes instanceIds) anywhere below that folder, as Cityscapes' gtFine has them; images or
label files without their partner fall under the ``unpaired`` policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import DatasetReader, SampleFiles
from .cityscapes import decode_gtfine
from .problems import Problem

LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
SHOWN = 5
"""Duplicate ids listed in a message."""


def image_id_of(path: Path) -> str:
    """The id of an image file: its stem, less a trailing ``_leftImg8bit``."""
    return path.stem.removesuffix(CITYSCAPES_IMAGE_SUFFIX)


def files_by_name(paths: list[Path], what: str, fix: str) -> dict[str, Path]:
    """``{name: path}`` of ``paths``, raising one :class:`InputError` if names repeat.

    Parameters
    ----------
    paths:
        Files found below a folder, sorted.
    what:
        What the names are, for the message (``image id``, ``label file name``).
    fix:
        How to make them unique.
    """
    seen: dict[str, list[Path]] = {}
    for path in paths:
        name = image_id_of(path) if what == "image id" else path.name
        seen.setdefault(name, []).append(path)
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
        "image files matched by the glob below the root (ids from file stems, unique); labels, if any, as "
        "<id>_gtFine_labelIds.png + <id>_gtFine_instanceIds.png below the labels folder"
    )

    def __init__(self, root: str | Path, split: str | None = None, size: tuple[int, int] | None = None,
                 glob: str = "**/*.png", labels: str | Path | None = None):
        self.glob = glob
        self.labels = None if labels is None else Path(labels)
        super().__init__(root, split, size)

    def list_files(self) -> tuple[list[SampleFiles], list[Problem]]:
        images = sorted(p for p in self.root.glob(self.glob) if p.is_file())
        if not images:
            raise InputError(
                f"no image matches {self.glob!r} below the image folder", self.root,
                "set this split's glob (datasets.target.train_glob or val_glob) to a pattern of the images relative to datasets.target.root, "
                "e.g. 'train/**/*.png'",
            )
        by_id = files_by_name(images, "image id",
                              "rename the images or narrow the split's glob (datasets.target.train_glob or val_glob): "
                              "ids are file stems")
        if self.labels is None:
            return [SampleFiles(image_id, path, None) for image_id, path in sorted(by_id.items())], []
        if not self.labels.is_dir():
            raise InputError("labels folder does not exist", self.labels,
                             "set datasets.target.val_labels to the folder of the *_gtFine_labelIds.png files, "
                             "or leave it out (null) to use the images without labels")
        found = files_by_name(sorted(self.labels.rglob("*_gtFine_*Ids.png")), "label file name",
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
