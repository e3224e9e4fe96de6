"""Fingerprints of the code behind a stage, so that editing a stage's modules reruns it."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def stage_code_hash(modules: list[str], root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 (first 12 hex digits) over the Python sources of ``modules``.

    Each entry is a file (``"mixing.py"``) or a sub-package folder (``"train"``, all its ``*.py``)
    relative to ``root``. Paths and contents both enter the hash, in sorted order; a missing
    entry raises ``FileNotFoundError`` so a typo in the stage table cannot pass silently.
    """
    digest = hashlib.sha256()
    for entry in sorted(modules):
        path = root / entry
        if path.is_dir():
            files = sorted(path.rglob("*.py"))
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"stage module {entry!r} not found under {root}")
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]
