"""Outputs that appear only when complete: write under a temporary name, then rename.

A rename within one folder is atomic, so a reader (or Snakemake) never sees a half-written
file or folder under its final name. A writer killed with SIGKILL leaves only its
``*.tmp-<pid>*`` sibling behind, which nothing mistakes for a finished output.

An output never replaces what selfpanoptic did not write. Every folder output carries a
:data:`MARKER` file listing the files written into it; an existing folder is replaced only when
it is empty or holds exactly the files its marker lists (:func:`check_replaceable`). A user's
folder given as an output, or one they added files to, is refused before any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import InputError

MARKER = ".selfpanoptic-output.json"
"""The file in every folder output that lists, relative to the folder, the files written into it."""
SHOWN = 3
"""Foreign files named in a refusal."""


def temporary_sibling(path: Path) -> Path:
    """``dir/name.tmp-<pid>.ext`` beside ``path`` (same folder, so the final rename is atomic)."""
    return path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _files_below(folder: Path) -> set[str]:
    """Every file and link below ``folder`` (any depth), as POSIX paths relative to it, the marker excluded."""
    found = set()
    for path in folder.rglob("*"):
        if path.is_symlink() or not path.is_dir():
            found.add(path.relative_to(folder).as_posix())
    found.discard(MARKER)
    return found


def _written_files(folder: Path) -> set[str] | None:
    """The files the marker of ``folder`` lists; None without a readable marker."""
    try:
        listed = json.loads((folder / MARKER).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return set(listed) if isinstance(listed, list) else None


def check_replaceable(path: str | Path, folder: bool, option: str = "output") -> None:
    """Refuse an output path whose existing content selfpanoptic did not write.

    Parameters
    ----------
    path : str or pathlib.Path
        Where the output goes.
    folder : bool
        Whether the output is a folder (else a file).
    option : str
        How the user named the path, for the message (``--out``).

    Raises
    ------
    InputError
        When ``path`` is an existing folder that is not empty and is not a complete selfpanoptic
        folder output (files its marker does not list, or no marker), when a file output would
        replace a folder, or when a folder output would replace a file. A missing path, an empty
        folder, a file replaced by a file and a folder output holding only what it lists pass.
    """
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return
    if not path.is_dir():
        if folder:
            raise InputError(f"{option} must be a folder, but this is a file", path,
                             "give a new folder (it is created), or remove the file yourself")
        return
    if not folder:
        raise InputError(f"{option} is an existing folder, but this output is a file", path,
                         "give a file path inside the folder, e.g. " + str(path / "output"))
    present = _files_below(path)
    if not present:
        return
    written = _written_files(path)
    foreign = sorted(present if written is None else present - written)
    if foreign:
        listed = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else "")
        raise InputError(
            f"{option} exists and holds files selfpanoptic did not write ({listed}); it would be replaced",
            path, "give a new or empty folder, or move those files away (or delete the folder) yourself")


def check_output_paths(outputs: dict[str, tuple[Path, bool]], inputs: dict[str, list[Path]]) -> None:
    """Refuse, before any work, outputs that would replace an input or content selfpanoptic did not write.

    Parameters
    ----------
    outputs : dict
        ``{option: (path, is a folder)}`` of a command's outputs (``{"--out": (Path("pred"), True)}``).
    inputs : dict
        ``{option: [paths]}`` of everything else the command was given; paths that do not exist
        are not inputs (names such as ``--run round0`` of the scorers).

    Raises
    ------
    InputError
        Naming the output option and path: when it resolves to an input, when it is a folder
        holding an input (``--out .``, ``--out results`` with ``--run results/round2``), when it
        is an existing file below an input folder (a new file there is fine), or when
        :func:`check_replaceable` refuses it.
    """
    existing = [(option, given, given.resolve()) for option, paths in inputs.items() for given in paths
                if given.exists() or given.is_symlink()]
    for option, (path, folder) in outputs.items():
        out = path.resolve()
        for source_option, given, source in existing:
            if source == out:
                raise InputError(f"{option} is also the input {source_option}; writing it would replace that input", path,
                                 "choose another output path")
            if out in source.parents:
                raise InputError(f"{option} holds the input {source_option} ({given}); writing it would replace that input",
                                 path, "choose an output folder that does not contain the inputs")
            if source in out.parents and out.is_file():
                raise InputError(f"{option} would replace {path}, a file of the input {source_option} ({given})",
                                 fix="choose an output path outside the input folder, or a new file name")
        check_replaceable(path, folder, option)


def _mark(folder: Path) -> None:
    """Write the marker of a finished folder output: the files now in it."""
    (folder / MARKER).write_text(json.dumps({"written_by": "selfpanoptic", "files": sorted(_files_below(folder))},
                                            indent=0) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` (a file or a folder) to; move it into place on success.

    On any exception, including KeyboardInterrupt, the temporary output is removed and an
    existing ``path`` is left untouched. A folder output gets its :data:`MARKER`; an existing
    folder at ``path`` is replaced only when :func:`check_replaceable` allows it, checked again
    here in case files were added while the output was written.
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
        elif tmp.is_dir():
            _mark(tmp)
        check_replaceable(path, folder=tmp.is_dir())
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


def _manifest_files(path: Path) -> set[str] | None:
    """The file names a file-set manifest lists; None without a readable one."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    listed = content.get("files") if isinstance(content, dict) and content.get("written_by") == "selfpanoptic" else None
    return set(listed) if isinstance(listed, list) else None


def check_files_replaceable(folder: str | Path, names: list[str], manifest: str, option: str = "output") -> None:
    """Refuse a set of files to add to a shared ``folder`` when one would replace what selfpanoptic did not write.

    Unlike a folder output, the folder may hold anything else; only the files ``names`` are
    checked. An existing one is replaced only when the set's ``manifest`` (a file in the folder
    that lists, like :data:`MARKER`, the files an earlier run of the same writer wrote) lists it.

    Raises
    ------
    InputError
        When ``folder`` is a file or a folder output of another command (it has a :data:`MARKER`),
        when ``manifest`` exists but is not one selfpanoptic wrote, or when one of ``names`` exists
        and is a folder or is not listed in ``manifest``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} must be a folder, but this is a file", folder,
                         "give a folder (it is created if missing), or remove the file yourself")
    if not folder.exists():
        return
    if (folder / MARKER).exists():
        raise InputError(f"{option} is a folder another selfpanoptic command writes whole ({MARKER}); "
                         "files added to it would be lost or block that command", folder, "give another folder")
    listed = _manifest_files(folder / manifest)
    if listed is None and (folder / manifest).exists():
        raise InputError(f"{option} holds {manifest}, which is not a list selfpanoptic wrote", folder / manifest,
                         "move or delete it yourself")
    present = [n for n in names if (folder / n).is_symlink() or (folder / n).exists()]
    foreign = [n for n in present if ((folder / n).is_dir() and not (folder / n).is_symlink()) or n not in (listed or ())]
    if foreign:
        shown = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else "")
        raise InputError(f"{option} holds {shown}, which selfpanoptic did not write there; it would be replaced",
                         folder, "give another folder, or move those files away (or delete them) yourself")


@contextlib.contextmanager
def atomic_files(folder: str | Path, names: list[str], manifest: str, option: str = "output") -> Iterator[dict[str, Path]]:
    """Yield ``{name: temporary path}`` to write the files ``names`` of ``folder`` to; move them all into place
    only when every one was written.

    :func:`check_files_replaceable` is checked before and again after the writing (files may have
    appeared meanwhile). The ``manifest`` is written before the renames and lists the new files
    and those an earlier run wrote that still exist, so an interrupted rename never leaves a file
    a rerun may not replace. On any exception the temporaries, and ``folder`` if this made it
    and it is empty, are removed.
    """
    folder = Path(folder)
    check_files_replaceable(folder, names, manifest, option)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    temporaries = {name: temporary_sibling(folder / name) for name in names}
    try:
        yield temporaries
        missing = [name for name, tmp in temporaries.items() if not tmp.is_file()]
        if missing:
            raise RuntimeError(f"atomic_files: nothing was written to {missing}")
        check_files_replaceable(folder, names, manifest, option)
        earlier = {n for n in _manifest_files(folder / manifest) or () if (folder / n).exists()}
        atomic_write_text(folder / manifest, json.dumps({"written_by": "selfpanoptic",
                                                         "files": sorted(earlier | set(names))}, indent=0) + "\n")
        for name, tmp in temporaries.items():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
    except BaseException:
        for tmp in temporaries.values():
            _remove(tmp)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
