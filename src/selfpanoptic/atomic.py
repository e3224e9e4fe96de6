"""Outputs that appear only when complete: write under a temporary name, then rename.

A rename within one folder is atomic, so a reader (or Snakemake) never sees a half-written
file or folder under its final name. A writer killed with SIGKILL leaves only its
``*.tmp-<pid>*`` sibling behind, which nothing mistakes for a finished output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


def temporary_sibling(path: Path) -> Path:
    """``dir/name.tmp-<pid>.ext`` beside ``path`` (same folder, so the final rename is atomic)."""
    return path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` (a file or a folder) to; move it into place on success.

    On any exception, including KeyboardInterrupt, the temporary output is removed and an
    existing ``path`` is left untouched. A folder that already exists at ``path`` is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file (CSV, Markdown, JSON) atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
