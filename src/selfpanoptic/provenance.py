"""Fingerprints of the code behind a stage, so that editing any module a stage uses reruns it.

A stage is one module of :mod:`selfpanoptic.stages`. Its code is the *import closure* of that
module: every module of this package that it imports, directly or through other package modules,
including imports made inside functions, plus the ``__init__.py`` of every package on the way.
The closure is read from the sources with :mod:`ast` (nothing is imported), so it is exact and
cheap enough for Snakemake to compute for every rule at parse time.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "selfpanoptic"
PACKAGE_ROOT = Path(__file__).resolve().parent


def module_file(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of the package module ``name`` (``"selfpanoptic.x.y"``), or None.

    ``root`` is the package folder (the one holding ``selfpanoptic/__init__.py``'s siblings).
    """
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _imported_names(path: Path, root: Path) -> set[str]:
    """Package module names that the source of ``path`` imports (each candidate of a from-import)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from pkg import name`: name may be a submodule
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {n for n in found if n == PACKAGE or n.startswith(PACKAGE + ".")}


def import_closure(module: str, root: Path = PACKAGE_ROOT) -> list[Path]:
    """Source files of ``module`` and of every package module it imports, transitively; sorted.

    Parent packages' ``__init__.py`` files are included (Python runs them on import). Imported
    names that are not modules (``from pkg import function``) are skipped; a ``module`` that
    resolves to no file raises ``FileNotFoundError``.
    """
    start = module_file(module, root)
    if start is None:
        raise FileNotFoundError(f"module {module!r} not found under {root}")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        name = _module_name(path, root)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for imported in _imported_names(path, root) | set(parents):
            target = module_file(imported, root)
            if target is not None and target not in seen:
                todo.append(target)
    return sorted(seen)


def files_hash(files: list[Path], root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 (first 12 hex digits) over the relative paths and contents of ``files``."""
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def stage_code_hash(stage: str) -> str:
    """Hash of the import closure of the stage module ``selfpanoptic.stages.<stage>``.

    ``stage`` is a command name with ``-`` or ``_`` (``"fuse-panoptic"``, ``"fuse_panoptic"``).
    Cached per process: Snakemake asks for it once per rule.
    """
    module = f"{PACKAGE}.stages.{stage.replace('-', '_')}"
    return files_hash(import_closure(module))
