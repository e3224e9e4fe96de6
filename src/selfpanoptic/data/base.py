"""What every dataset reader shares: the sample record, resizing and the file checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BadFilesError, InputError
from .. import pngio


@dataclass(frozen=True)
class SampleFiles:
    """The files of one sample. ``instance_path`` is None for formats without instances."""

    image_id: str
    image_path: Path
    label_path: Path
    instance_path: Path | None = None


@dataclass
class Sample:
    """One decoded sample.

    image: (H, W, 3) uint8 RGB.
    labels: (H, W) uint8 trainIds, 255 = ignore.
    instances: (H, W) int32, 0 = no instance, otherwise an id unique within the image.
    """

    image_id: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray


class DatasetReader:
    """A dataset on disk in one of the supported formats, read as trainId samples.

    Subclasses list their files (:meth:`list_files`) and decode one sample's label files
    (:meth:`decode_labels`); this class checks sizes and resizes to the working resolution.

    Parameters
    ----------
    root:
        The dataset's root folder, laid out as the real dataset is.
    split:
        The split to read, for formats that have splits.
    size:
        Working resolution (height, width); None keeps each file's own size. Images are
        resized bilinearly, labels and instances with nearest neighbour.
    """

    format: str = ""
    has_instances: bool = True
    layout_hint: str = ""

    def __init__(self, root: str | Path, split: str | None = None, size: tuple[int, int] | None = None):
        self.root = Path(root)
        self.split = split
        self.size = size
        if not self.root.is_dir():
            raise InputError(
                f"{self.format} dataset root does not exist",
                self.root,
                f"set the dataset's root in the config to a folder laid out as {self.layout_hint}",
            )
        self.files = self.list_files()
        if not self.files:
            raise InputError(
                f"no samples found in this {self.format} dataset"
                + (f" (split {split!r})" if split else ""),
                self.root,
                f"the folder must be laid out as {self.layout_hint}",
            )

    def list_files(self) -> list[SampleFiles]:
        raise NotImplementedError

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        """Decode (trainId labels uint8, instance ids int32) at the file's own resolution."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.files)

    def read_labels(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and instances of sample ``index`` at native resolution, after all checks."""
        files = self.files[index]
        labels, instances = self.decode_labels(files)
        height, width = pngio.image_size(files.image_path)
        if labels.shape != (height, width):
            raise InputError(
                f"label size {labels.shape[1]}x{labels.shape[0]} does not match its image "
                f"{files.image_path} ({width}x{height})",
                files.label_path,
                "image and label files of a sample must have the same width and height",
            )
        return labels, instances

    def __getitem__(self, index: int) -> Sample:
        files = self.files[index]
        labels, instances = self.read_labels(index)
        image = pngio.read_rgb(files.image_path)
        if image.shape[:2] != labels.shape:
            raise InputError(
                f"image size does not match its label file {files.label_path}",
                files.image_path,
                "image and label files of a sample must have the same width and height",
            )
        if self.size is not None and image.shape[:2] != tuple(self.size):
            image, labels, instances = resize_sample(image, labels, instances, self.size)
        return Sample(files.image_id, image, labels, instances)

    def check_all(self) -> None:
        """Decode every label file and check every image header; raise one error listing all bad files."""
        problems = []
        for index in range(len(self)):
            try:
                self.read_labels(index)
            except InputError as err:
                problems.append(err)
        if problems:
            raise BadFilesError(f"{self.format}:{self.root}", problems)


def resize_sample(
    image: np.ndarray, labels: np.ndarray, instances: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize to ``size`` = (height, width): bilinear for the image, nearest for ids."""
    height, width = size
    image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.NEAREST))
    instances = np.asarray(
        Image.fromarray(instances.astype(np.int32)).resize((width, height), Image.NEAREST)
    ).astype(np.int32)
    return image, labels, instances


def check_id_range(values: np.ndarray, valid: np.ndarray, path: Path, what: str, fix: str) -> None:
    """Raise if ``values`` contains an id for which ``valid[id]`` is False (or beyond the table)."""
    present = np.unique(values)
    bad = present[(present >= len(valid)) | ~valid[np.minimum(present, len(valid) - 1)]]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10])
        raise InputError(f"{what} out of range: {shown}", path, fix)

