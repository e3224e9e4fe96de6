"""A plain folder of images (no labels): what ``predict-panoptic`` runs a trained round on.

Every ``*.png``, ``*.jpg`` and ``*.jpeg`` below the folder (any depth, any letter case) is an
image. Its id is its path relative to the folder without the extension, ``/``-separated, so
that ``city/a.png`` gives ``city/a`` and the outputs keep the folder structure. Whitespace and
backslashes in an id become ``_``: the official instance txt separates its fields with spaces,
and one id names every output of an image.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError

__all__ = ["IMAGE_SUFFIXES", "image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File-name endings (compared in lower case) of the images of a folder."""


def image_folder(folder: str | Path, exclude: str | Path | None = None) -> list[tuple[str, Path]]:
    """The images below ``folder`` and their ids, sorted by relative path.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder to search, recursively.
    exclude : str or pathlib.Path, optional
        A path whose files are not images of the folder even when they lie below it (an output
        folder inside the input folder, so that a rerun does not read its own overlays).

    Returns
    -------
    list of (str, pathlib.Path)
        ``(image id, file)`` per image, sorted by the file's path relative to ``folder``.

    Raises
    ------
    InputError
        When ``folder`` does not exist, is not a folder, holds no image, or two files get one
        id (``a.png`` and ``a.jpg``; ``a b.png`` and ``a_b.png``).
    """
    folder = Path(folder)
    kinds = ", ".join(f"*{s}" for s in IMAGE_SUFFIXES)
    if not folder.exists():
        raise InputError("image folder does not exist", folder, "give the folder holding your images")
    if not folder.is_dir():
        raise InputError("is a file, not a folder of images", folder, "give the folder that holds the image")
    excluded = None if exclude is None else Path(exclude).absolute()
    files = []
    for path in folder.rglob("*"):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if excluded is not None and (path.absolute() == excluded or excluded in path.absolute().parents):
            continue
        files.append(path)
    if not files:
        raise InputError(f"no images ({kinds}) in this folder or below it", folder,
                         "give the folder holding your images")
    found: dict[str, Path] = {}
    for path in sorted(files, key=lambda p: p.relative_to(folder).as_posix()):
        image_id = re.sub(r"[\s\\]", "_", path.relative_to(folder).with_suffix("").as_posix())
        if image_id in found:
            raise InputError(f"{found[image_id]} and {path} would both be written as {image_id!r}", folder,
                             "rename one of them: every image needs its own name without the extension")
        found[image_id] = path
    return list(found.items())
