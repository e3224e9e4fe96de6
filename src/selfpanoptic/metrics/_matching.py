"""How the official Cityscapes evaluators pair a ground-truth file with its prediction file."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path


def check_folder(folder: Path, what: str) -> None:
    """Raise ``ValueError`` naming ``folder`` unless it is a folder (``what``: ``ground-truth folder``)."""
    if folder.is_file():
        raise ValueError(f"{folder}: the {what} is a file, not a folder (give the folder that holds the files)")
    if not folder.is_dir():
        raise ValueError(f"{folder}: {what} does not exist")


def ground_truth_files(folder: str | os.PathLike, suffix: str) -> list[tuple[str, Path]]:
    """``(image id, path)`` of every ``*<suffix>`` file under ``folder`` (recursively), sorted by id.

    ``suffix`` is e.g. ``_gtFine_labelIds.png``; the image id is the file name without it.
    Raises ``ValueError`` naming the folder when it is not a folder or holds none.
    """
    folder = Path(folder)
    check_folder(folder, "ground-truth folder")
    found = sorted((p.name[: -len(suffix)], p) for p in folder.rglob(f"*{suffix}"))
    if not found:
        raise ValueError(f"{folder}: no *{suffix} file in this folder or below")
    return found


class PredictionFinder:
    """Finds the prediction of an image id as the official scripts do: the one file under
    ``folder`` (recursively) whose name matches ``<image id>*<extension>``."""

    def __init__(self, folder: str | os.PathLike, extension: str):
        self.folder = Path(folder)
        check_folder(self.folder, "prediction folder")
        self.extension = extension
        self._walk = [(root, files) for root, _, files in os.walk(self.folder)]

    def __call__(self, image_id: str) -> Path:
        pattern = f"{image_id}*{self.extension}"
        found = [Path(root) / name for root, files in self._walk for name in fnmatch.filter(files, pattern)]
        if len(found) != 1:
            what = "no prediction" if not found else f"{len(found)} predictions ({found[0]}, {found[1]}, ...)"
            raise ValueError(f"{self.folder}: {what} match {pattern}; exactly one file per image is needed")
        return found[0]
