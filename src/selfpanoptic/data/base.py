"""What every dataset reader shares: the sample record, resizing and the file checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import IGNORE
from ..errors import InputError
from .. import pngio
from .problems import DataFileError, DatasetProblemsError, Problem, problem_from_error


@dataclass(frozen=True)
class SampleFiles:
    """The files of one sample.

    ``instance_path`` is None for formats without instances; ``label_path`` (and then
    ``instance_path``) is None for a sample of an unlabelled split (:attr:`labelled`).
    """

    image_id: str
    image_path: Path
    label_path: Path | None
    instance_path: Path | None = None

    @property
    def labelled(self) -> bool:
        """Whether the sample has label files; unlabelled samples read as all ignore."""
        return self.label_path is not None


def unlabelled_arrays(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """What a sample without label files reads as: (H, W) uint8 all ignore (255), (H, W) int32 all 0."""
    return np.full(shape, IGNORE, dtype=np.uint8), np.zeros(shape, dtype=np.int32)


@dataclass
class Sample:
    """One decoded sample.

    Attributes
    ----------
    image_id:
        The sample's id within its dataset.
    image:
        (H, W, 3) uint8 RGB.
    labels:
        (H, W) uint8 trainIds, 255 = ignore.
    instances:
        (H, W) int32, 0 = no instance, otherwise an id unique within the image.
    inverse_depth:
        (H, W) float32 inverse depth in 1/m, NaN = unknown/invalid; None when the sample has
        no depth file (GTA5, or a Synthia/Cityscapes sample without its optional depth or
        disparity file).
    """

    image_id: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    inverse_depth: np.ndarray | None = None


class DatasetReader:
    """A dataset on disk in one of the supported formats, read as trainId samples.

    Subclasses list their files (:meth:`list_files`) and decode one sample's label files
    (:meth:`decode_labels`); this class checks sizes and resizes to the working resolution.
    Formats with depth data (Synthia's ``Depth/``, Cityscapes' ``disparity/``) also find a
    sample's optional depth file (:meth:`depth_path`) and decode it to inverse depth
    (:meth:`decode_inverse_depth`); ``reader[i]`` then fills :attr:`Sample.inverse_depth`.

    ``files`` holds the complete samples only; images without their label files and label files
    without their image are in ``unpaired`` (see :meth:`check_all`). A split without any label
    file is unlabelled (:attr:`labelled` False, decided by :mod:`.labelled`): ``files`` then
    holds every image with ``label_path`` None, read as all ignore (:func:`unlabelled_arrays`). Checking and the
    ``unpaired`` / ``size_mismatch`` policies are the index's job
    (:func:`selfpanoptic.data.manifest.build_manifest`): reading a sample (``reader[i]``) trusts
    that only the pairs the index let through are read, and brings a label whose size differs
    from its image to the image's size (nearest), as the ``size_mismatch: resize`` policy asks.

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
        if self.root.exists() and not self.root.is_dir():
            raise InputError(
                f"{self.format} dataset root is a file, not a folder",
                self.root,
                f"set the dataset's root to the folder laid out as {self.layout_hint}",
            )
        if not self.root.is_dir():
            raise InputError(
                f"{self.format} dataset root does not exist",
                self.root,
                f"set the dataset's root in the config to a folder laid out as {self.layout_hint}",
            )
        self.files, self.unpaired = self.list_files()
        self.labelled = all(files.labelled for files in self.files)
        if not self.files and not self.unpaired:
            raise InputError(
                f"no samples found in this {self.format} dataset"
                + (f" (split {split!r})" if split else ""),
                self.root,
                f"the folder must be laid out as {self.layout_hint}",
            )

    def list_files(self) -> tuple[list[SampleFiles], list[Problem]]:
        """The complete samples and the files without their partner (see :func:`.listing.paired_files`)."""
        raise NotImplementedError

    def decode_labels(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray]:
        """Decode (trainId labels uint8, instance ids int32) at the file's own resolution."""
        raise NotImplementedError

    def depth_path(self, files: SampleFiles) -> Path | None:
        """The depth (or disparity) file of a sample, if the format has one and it exists.

        Depth files are optional: a sample without one is read with ``inverse_depth=None``.

        Parameters
        ----------
        files:
            The sample's files, as listed by :meth:`list_files`.

        Returns
        -------
        Path or None
            The existing depth file; None for formats without depth (the default) or when the
            file is absent.
        """
        return None

    def decode_inverse_depth(self, path: Path) -> np.ndarray:
        """Decode a depth file (from :meth:`depth_path`) at the file's own resolution.

        Parameters
        ----------
        path:
            The depth or disparity file.

        Returns
        -------
        np.ndarray
            (H, W) float32 inverse depth in 1/m; NaN where the file marks the pixel invalid.

        Raises
        ------
        InputError
            The file cannot be decoded (naming it).
        """
        raise NotImplementedError(f"the {self.format or type(self).__name__} format has no depth files")

    def read_inverse_depth(self, files: SampleFiles, image_shape: tuple[int, int]) -> np.ndarray | None:
        """The inverse depth of a sample at its image's size, or None without a depth file.

        Parameters
        ----------
        files:
            The sample's files.
        image_shape:
            (height, width) of the sample's image file; the depth file must have this size.

        Returns
        -------
        np.ndarray or None
            (H, W) float32 inverse depth in 1/m, NaN = unknown/invalid.

        Raises
        ------
        DataFileError
            ``depth_size`` when the depth file's size differs from its image's.
        InputError
            The depth file cannot be decoded.
        """
        path = self.depth_path(files)
        if path is None:
            return None
        inverse_depth = self.decode_inverse_depth(path)
        if inverse_depth.shape != tuple(image_shape):
            height, width = image_shape
            raise DataFileError(
                "depth_size",
                f"depth {inverse_depth.shape[1]}x{inverse_depth.shape[0]} does not match its image "
                f"{files.image_path} ({width}x{height})",
                path,
                "a sample's depth/disparity file must have the image's width and height",
            )
        return inverse_depth

    def __len__(self) -> int:
        return len(self.files)

    def read_labels(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and instances of sample ``index`` at native resolution, after all checks."""
        files = self.files[index]
        height, width = pngio.image_size(files.image_path)
        if not files.labelled:
            return unlabelled_arrays((height, width))
        labels, instances = self.decode_labels(files)
        if labels.shape != (height, width):
            raise DataFileError(
                "size_mismatch",
                size_mismatch_detail(labels.shape, (height, width), files.image_path),
                files.label_path,
                "image and label files of a sample must have the same width and height",
            )
        return labels, instances

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index`` at the working resolution; ``inverse_depth`` is filled when it has a depth file.

        Raises
        ------
        InputError
            A file of the sample cannot be decoded, or its depth file's size differs from its
            image's (:class:`DataFileError`).
        """
        files = self.files[index]
        image = pngio.read_rgb(files.image_path)
        labels, instances = self.decode_labels(files) if files.labelled else unlabelled_arrays(image.shape[:2])
        inverse_depth = self.read_inverse_depth(files, image.shape[:2])
        if image.shape[:2] != labels.shape:
            # Only the index checks sizes: it lists a mismatched pair only under size_mismatch: resize.
            labels, instances = fit_labels(labels, instances, image.shape[:2])
        if self.size is not None and image.shape[:2] != tuple(self.size):
            image, labels, instances = resize_sample(image, labels, instances, self.size)
            if inverse_depth is not None:
                inverse_depth = fit_depth(inverse_depth, self.size)
        return Sample(files.image_id, image, labels, instances, inverse_depth)

    def check_all(self) -> None:
        """Decode every label file and check every image header; raise one error listing all bad files.

        Unlike the index, this applies no policy: unpaired files and size mismatches are errors.

        Raises
        ------
        DatasetProblemsError
            Every problem found, grouped by kind.
        """
        problems = list(self.unpaired)
        for index in range(len(self)):
            try:
                self.read_labels(index)
            except InputError as err:
                problems.append(problem_from_error(err, self.files[index].label_path))
        if problems:
            raise DatasetProblemsError(f"{self.format} at {self.root}", problems, layout_hint=self.layout_hint)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image resized bilinearly to ``size`` = (height, width), as caches store it."""
    height, width = size
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def resize_sample(
    image: np.ndarray, labels: np.ndarray, instances: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize to ``size`` = (height, width): bilinear for the image, nearest for ids."""
    labels, instances = fit_labels(labels, instances, size)
    return resize_image(image, size), labels, instances


def fit_labels(labels: np.ndarray, instances: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize trainIds and instance ids to ``size`` = (height, width) with nearest sampling."""
    height, width = size
    labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.NEAREST))
    instances = np.asarray(
        Image.fromarray(instances.astype(np.int32)).resize((width, height), Image.NEAREST)
    ).astype(np.int32)
    return labels, instances


def fit_depth(inverse_depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (H, W) float32 inverse depth map to ``size`` = (height, width) with nearest sampling.

    Nearest keeps NaN (invalid) pixels from spreading into their neighbours.
    """
    height, width = size
    image = Image.fromarray(np.ascontiguousarray(inverse_depth, dtype=np.float32))  # mode "F"
    resized = image.resize((width, height), Image.NEAREST)
    return np.asarray(resized, dtype=np.float32)


def size_mismatch_detail(label_shape: tuple[int, int], image_shape: tuple[int, int], image_path: Path) -> str:
    """What a label file whose size differs from its image's is told, e.g. ``label 1914x1054, image ... 1914x1052``."""
    return (f"label {label_shape[1]}x{label_shape[0]} does not match its image {image_path} "
            f"({image_shape[1]}x{image_shape[0]})")


def check_id_range(values: np.ndarray, valid: np.ndarray, path: Path, what: str, fix: str) -> None:
    """Raise if ``values`` contains an id for which ``valid[id]`` is False (or beyond the table)."""
    present = np.unique(values)
    bad = present[(present >= len(valid)) | ~valid[np.minimum(present, len(valid) - 1)]]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10])
        raise DataFileError("id_range", f"{what} out of range: {shown}", path, fix)

