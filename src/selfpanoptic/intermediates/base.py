"""The common reader/writer of the HDF5 intermediates: stage check, image alignment, atomic writes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import h5py

from ..classes import CLASS_NAMES
from ..errors import InputError
from ..h5io import DEFAULT_COMPRESSION, atomic_h5, create_stack, open_intermediate, read_strings, write_strings


def _stage(h5: h5py.File) -> str:
    stage = h5.attrs.get("stage", "")
    return stage.decode() if isinstance(stage, bytes) else str(stage)


def _is_foreign(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file selfpanoptic did not write: neither a ``stage`` nor a
    ``complete`` attribute (an interrupted write of selfpanoptic has both, ``complete`` False)."""
    try:
        with h5py.File(path, "r") as h5:
            return "stage" not in h5.attrs and "complete" not in h5.attrs
    except OSError:
        return False


def _open_h5(path: str | Path, fix: str) -> h5py.File:
    """:func:`~selfpanoptic.h5io.open_intermediate`, telling a foreign HDF5 file (``fix``) from an incomplete one."""
    try:
        return open_intermediate(path)
    except InputError:
        # open_intermediate reads any file without complete=True as an interrupted write
        if _is_foreign(path):
            raise InputError("not a selfpanoptic file: it has no provenance attributes (stage, complete), so "
                             "selfpanoptic did not write it", path, fix) from None
        raise


class Intermediate:
    """An open intermediate file of one kind; a subclass per kind sets the class attributes.

    Attributes
    ----------
    STAGE:
        The ``stage`` attribute its writer sets; :meth:`open` refuses files of another stage.
    KIND:
        What the file is, in words, for messages.
    FIX:
        How to remake the file, for messages.
    STACKS:
        Per-image datasets ``name -> (dtype, description)``, each ``(N, H, W)`` (or
        ``(N, H, W, 3)`` for ``images``), chunked one image per chunk and compressed.
    """

    STAGE: ClassVar[str] = ""
    KIND: ClassVar[str] = "intermediate"
    FIX: ClassVar[str] = "rerun the stage that writes it"
    STACKS: ClassVar[dict[str, tuple[Any, str]]] = {}

    def __init__(self, h5: h5py.File, path: str | Path):
        self.h5 = h5
        self.path = Path(path)
        self._pid = os.getpid()  # the process whose handle self.h5 is (see reopen)
        self.image_ids: list[str] = read_strings(h5, "image_ids") if "image_ids" in h5 else []

    # reading ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, expect_image_ids: Sequence[str] | None = None,
             expected_from: str | Path | None = None, fix: str | None = None, **options: Any):
        """Open ``path`` read-only as this kind of file.

        ``expect_image_ids``: the images the caller pairs the file with, in order (e.g. a
        cache's ``image_ids``); a file listing other images is refused, naming
        ``expected_from`` (where those ids came from) and ``fix`` (default: :attr:`FIX`).
        ``options`` go to the subclass.
        """
        h5 = _open_h5(path, f"give the {cls.KIND} this command expects (see its --help)")
        try:
            stage = _stage(h5)
            if cls.STAGE and stage != cls.STAGE:
                what = f"is a {stage!r} file" if stage else "is no selfpanoptic file (no stage attribute)"
                raise InputError(f"{what} where a {cls.STAGE!r} file ({cls.KIND}) is needed",
                                 path, f"give the {cls.KIND} this command expects (see its --help)")
            opened = cls(h5, path, **options)
            if expect_image_ids is not None and list(opened.image_ids) != list(expect_image_ids):
                other = f" as {expected_from}" if expected_from is not None else ""
                raise InputError(f"the {cls.KIND} does not list the same images{other}", path, fix or cls.FIX)
        except BaseException:
            h5.close()
            raise
        return opened

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, name: str) -> h5py.Dataset:
        return self.h5[name]

    def __contains__(self, name: str) -> bool:
        return name in self.h5

    def read(self, key: str, index: int):
        """One image's array of stack ``key`` (image ``index``): one chunk read from the file."""
        return self.h5[key][index]

    def reopen(self) -> None:
        """Give this process its own HDF5 handle (a data-loading worker after a fork); once per process.

        The inherited handle is dropped, not closed: closing it could touch state the parent
        process still uses. A second call in the same process keeps the handle it has.
        """
        if self._pid != os.getpid():
            self.h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()

    def close(self) -> None:
        self.h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # writing ---------------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def create(cls, path: str | Path, image_ids: Sequence[str], shape: tuple[int, int], config: Any,
               inputs: Sequence[str | Path] = (), stacks: Sequence[str] | None = None,
               compression: str = DEFAULT_COMPRESSION, **attrs: Any) -> Iterator[h5py.File]:
        """Write a new file of this kind atomically; yields the open file with its stacks created.

        ``shape``: ``(H, W)``; ``config``: the config slice recorded as provenance; ``stacks``:
        which of :attr:`STACKS` to create (all by default); ``compression``: their HDF5 filter
        (a key of :data:`~selfpanoptic.h5io.COMPRESSIONS`); ``attrs``: extra root attributes.
        The caller fills the stacks (``h5[name][i] = ...``) and any further datasets.
        """
        with atomic_h5(path, cls.STAGE, config, inputs=inputs) as h5:
            h5.attrs["class_names"] = list(CLASS_NAMES)
            for key, value in attrs.items():
                h5.attrs[key] = value
            for name in cls.STACKS if stacks is None else stacks:
                dtype, description = cls.STACKS[name]
                item = (*shape, 3) if name == "images" else tuple(shape)
                create_stack(h5, name, len(image_ids), item, dtype, compression=compression, description=description)
            write_strings(h5, "image_ids", image_ids)
            yield h5


AUDIT_FIX = ("audit the HDF5 files selfpanoptic writes: dataset caches (results/data/cache/*.h5), predictions "
             "and pseudo-labels")


def open_any(path: str | Path) -> Intermediate:
    """Open any intermediate (for the audit): the class of its stage, or the generic reader."""
    from .cache import DatasetCache
    from .predictions import InstancePrediction, SemanticPrediction
    from .pseudo_labels import InstancePseudoLabels, SemanticPseudoLabels

    kinds = {k.STAGE: k for k in (DatasetCache, SemanticPrediction, InstancePrediction, InstancePseudoLabels,
                                   SemanticPseudoLabels)}
    h5 = _open_h5(path, AUDIT_FIX)
    try:
        kind = kinds.get(_stage(h5), Intermediate)
        return kind(h5, path, **({"preload_mb": 0} if kind is DatasetCache else {}))
    except BaseException:
        h5.close()
        raise
