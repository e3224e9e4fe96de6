"""Stage code fingerprints: the import closure of a stage module, read from the sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfpanoptic.provenance import PACKAGE_ROOT, files_hash, import_closure


def write(root: Path, relative: str, text: str = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def package(tmp_path) -> Path:
    """A fake ``selfpanoptic`` package: stages -> library -> formats, plus an unused module."""
    root = tmp_path / "selfpanoptic"
    write(root, "__init__.py", "__version__ = '0'\n")
    write(root, "stages/__init__.py")
    write(root, "stages/fuse.py", "from ..fusion import fuse\n\ndef run():\n    from selfpanoptic.formats import codec\n")
    write(root, "stages/mix.py", "import numpy\nfrom selfpanoptic import mixing\n")
    write(root, "fusion.py", "from .formats.ids import encode\nfrom . import __version__\n")
    write(root, "formats/__init__.py")
    write(root, "formats/ids.py", "X = 1000\n")
    write(root, "formats/codec.py", "from .ids import X\n")
    write(root, "mixing.py", "import os\n")
    write(root, "unused.py", "from .fusion import fuse\n")
    return root


def names(files: list[Path], root: Path) -> set[str]:
    return {f.relative_to(root).as_posix() for f in files}


def test_closure_follows_relative_absolute_and_function_level_imports(package):
    assert names(import_closure("selfpanoptic.stages.fuse", package), package) == {
        "__init__.py", "stages/__init__.py", "stages/fuse.py", "fusion.py",
        "formats/__init__.py", "formats/ids.py", "formats/codec.py",
    }


def test_from_package_import_module_counts_the_module(package):
    assert names(import_closure("selfpanoptic.stages.mix", package), package) == {
        "__init__.py", "stages/__init__.py", "stages/mix.py", "mixing.py",
    }


def test_hash_changes_with_a_module_in_the_closure_only(package):
    closure = import_closure("selfpanoptic.stages.fuse", package)
    first = files_hash(closure, package)
    (package / "unused.py").write_text("# edited\n")
    assert files_hash(import_closure("selfpanoptic.stages.fuse", package), package) == first
    (package / "formats" / "codec.py").write_text("from .ids import X  # edited\n")
    assert files_hash(import_closure("selfpanoptic.stages.fuse", package), package) != first


def test_missing_stage_is_an_error(package):
    with pytest.raises(FileNotFoundError, match="stages.nope"):
        import_closure("selfpanoptic.stages.nope", package)


def test_every_stage_module_of_the_package_has_a_closure():
    stages = sorted(p.stem for p in (PACKAGE_ROOT / "stages").glob("*.py") if not p.stem.startswith("_"))
    assert stages, "no stage modules found"
    for stage in stages:
        closure = names(import_closure(f"selfpanoptic.stages.{stage}"), PACKAGE_ROOT)
        assert f"stages/{stage}.py" in closure and "__init__.py" in closure
        # a stage imports no other command's module, only the shared helpers (stages/common.py, stages/_*.py)
        others = {n for n in closure if n.startswith("stages/") and n != f"stages/{stage}.py"
                  and n not in ("stages/__init__.py", "stages/common.py") and not n.startswith("stages/_")}
        assert not others, f"stage {stage} imports other stage modules: {others}"


def test_no_library_module_imports_the_stage_layer():
    for path in PACKAGE_ROOT.rglob("*.py"):
        relative = path.relative_to(PACKAGE_ROOT).as_posix()
        if relative.startswith("stages/") or relative == "cli.py":
            continue
        module = "selfpanoptic." + relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        closure = names(import_closure(module), PACKAGE_ROOT)
        assert not any(n.startswith("stages/") for n in closure), f"{relative} imports the stage layer"
