"""``selfpanoptic audit`` (and every reader of intermediates) of HDF5 files it did not write or did not finish."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from selfpanoptic.cli import main
from selfpanoptic.errors import InputError
from selfpanoptic.intermediates import DatasetCache


@pytest.fixture
def foreign(tmp_path):
    """An HDF5 file made with plain h5py: no provenance attributes."""
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", data=np.arange(4))
    return path


def test_audit_of_a_foreign_file_says_it_is_not_a_selfpanoptic_file(foreign, capsys):
    assert main(["audit", str(foreign)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.splitlines()[0] == (f"selfpanoptic audit: error: {foreign}: not a selfpanoptic file: it has no provenance "
                                   "attributes (stage, complete), so selfpanoptic did not write it")
    assert "fix: audit the HDF5 files selfpanoptic writes: dataset caches" in err
    assert "not completely written" not in err and "Traceback" not in err and captured.out == ""


def test_an_interrupted_selfpanoptic_file_is_still_not_completely_written(tmp_path, capsys):
    path = tmp_path / "cache.tmp-123.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["stage"], h5.attrs["complete"] = DatasetCache.STAGE, False
    assert main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not completely written" in err and "not a selfpanoptic file" not in err


def test_a_stage_given_a_foreign_file_names_what_it_needs(foreign):
    with pytest.raises(InputError, match="not a selfpanoptic file") as caught:
        DatasetCache.open(foreign)
    assert caught.value.path == foreign and f"give the {DatasetCache.KIND}" in caught.value.fix


def test_a_complete_file_without_a_stage_is_not_called_a_stage(foreign):
    with h5py.File(foreign, "a") as h5:
        h5.attrs["complete"] = True
    with pytest.raises(InputError, match="is no selfpanoptic file \\(no stage attribute\\) where a 'dataset_cache'"):
        DatasetCache.open(foreign)
