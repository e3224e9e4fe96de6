"""Stage code fingerprints change exactly when a stage's sources change."""

from __future__ import annotations

import pytest

from selfpanoptic.provenance import stage_code_hash


def test_hash_follows_file_contents_and_names(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "engine.py").write_text("x = 1\n")
    (tmp_path / "mixing.py").write_text("y = 2\n")
    first = stage_code_hash(["train", "mixing.py"], tmp_path)
    assert first == stage_code_hash(["mixing.py", "train"], tmp_path)  # order of the list does not matter
    (tmp_path / "train" / "engine.py").write_text("x = 1  # edited\n")
    assert stage_code_hash(["train", "mixing.py"], tmp_path) != first
    assert stage_code_hash(["mixing.py"], tmp_path) == stage_code_hash(["mixing.py"], tmp_path)
    (tmp_path / "train" / "extra.py").write_text("")
    assert stage_code_hash(["train"], tmp_path) != stage_code_hash(["train/engine.py"], tmp_path)


def test_missing_module_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        stage_code_hash(["nope.py"], tmp_path)
