"""HDF5 intermediates: atomic writes, per-image chunked stacks and provenance attributes.

Every intermediate of the workflow is one HDF5 file whose root attributes say what made it:
``stage``, ``config`` (the stage's config slice as JSON), ``config_hash``, ``package_version``,
``inputs`` (JSON list of input paths), ``created`` (UTC, ISO 8601) and ``complete``.
Files are written to a temporary name in the same folder and renamed into place only after
they were closed successfully, so an interrupted writer never leaves a file under the final
name; the temporary file is removed on any Python exception, and a killed process leaves
only a ``*.tmp-<pid>.h5`` file, which ``complete`` (absent) also marks as unfinished.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from . import __version__
from .atomic import atomic_output
from .errors import InputError

COMPRESSIONS: dict[str, dict[str, Any]] = {
    "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf", "shuffle": True},
    "none": {},
}
"""HDF5 filters of each ``compression`` a stack may have (the byte-shuffle filter groups the bytes
of multi-byte values, which helps both compressors; without compression it would be wasted work).
h5py reads all of them transparently, so a reader never needs to know which one a file uses."""
DEFAULT_COMPRESSION = "gzip"
"""Of every intermediate but the dataset cache, whose ``data.compression`` is a config setting."""


def config_hash(config_slice: Any) -> str:
    """Short, stable hash (12 hex digits of SHA-256) of a JSON-serialisable config slice."""
    text = json.dumps(config_slice, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def atomic_h5(
    path: str | Path,
    stage: str,
    config_slice: Any,
    inputs: Sequence[str | Path] = (),
) -> Iterator[h5py.File]:
    """Open ``path`` for writing as a new HDF5 file that appears only when complete.

    Yields an open :class:`h5py.File` on a temporary file with the provenance attributes
    already set; on normal exit marks it ``complete``, closes it, flushes it to disk and renames
    it to ``path`` (replacing an older file only then). On an exception the temporary file
    is deleted and ``path`` is left as it was.
    """
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["stage"] = stage
            h5.attrs["config"] = json.dumps(config_slice, sort_keys=True)
            h5.attrs["config_hash"] = config_hash(config_slice)
            h5.attrs["package_version"] = __version__
            h5.attrs["inputs"] = json.dumps([str(p) for p in inputs])
            h5.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            h5.attrs["complete"] = False
            yield h5
            h5.attrs["complete"] = True


def create_stack(
    h5: h5py.File, name: str, count: int, item_shape: Sequence[int], dtype: Any,
    compression: str = DEFAULT_COMPRESSION, **attrs: Any,
) -> h5py.Dataset:
    """Create a dataset of ``count`` stacked items, chunked one item per chunk.

    Parameters
    ----------
    h5:
        The file to create it in.
    name:
        The dataset's name.
    count:
        Number of items (an empty stack has no chunks and no filters).
    item_shape, dtype:
        Shape and type of one item.
    compression:
        A key of :data:`COMPRESSIONS`: ``gzip`` (level 4), ``lzf`` or ``none``.
    **attrs:
        Attributes of the dataset (e.g. ``description``).
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
    dataset = h5.create_dataset(
        name,
        shape=(count, *item_shape),
        dtype=dtype,
        chunks=(1, *item_shape) if count else None,
        **(COMPRESSIONS[compression] if count else {}),
    )
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return dataset


def write_strings(h5: h5py.File, name: str, values: Sequence[str]) -> h5py.Dataset:
    """Store a list of strings as a variable-length UTF-8 string dataset."""
    return h5.create_dataset(name, data=np.array(list(values), dtype=object), dtype=h5py.string_dtype())


def read_strings(h5: h5py.File, name: str) -> list[str]:
    """Read a string dataset written by :func:`write_strings`."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in h5[name][()]]


def provenance(h5: h5py.File) -> dict[str, Any]:
    """The provenance attributes of an open file, JSON fields decoded."""
    info: dict[str, Any] = {}
    for key, value in h5.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if key in ("config", "inputs", "class_names") and isinstance(value, str):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        if isinstance(value, np.generic):
            value = value.item()
        info[key] = value
    return info


def open_intermediate(path: str | Path) -> h5py.File:
    """Open an intermediate read-only; refuse files that are not HDF5 or were never completed."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not an HDF5 file", path, "give one of the .h5 files the workflow writes")
    if not path.is_file():
        raise InputError("file does not exist", path, "run the workflow stage that writes it first")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(
            f"not a readable HDF5 file ({exc})", path,
            "give the .h5 file this option expects; if it is a damaged intermediate, delete it and rerun its stage",
        ) from exc
    if not bool(h5.attrs.get("complete", False)):
        h5.close()
        raise InputError(
            "file was not completely written (its writer stopped early)",
            path,
            "delete it and rerun its stage (snakemake --rerun-incomplete)",
        )
    return h5
