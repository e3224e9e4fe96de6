"""scripts/seeds_table.py: per-seed rows, mean +- std and the audit table, from hand-made files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

import seeds_table
from selfpanoptic.audit import instance_grade_lines, semantic_grade_lines
from selfpanoptic.metrics.ablation import ABLATION_COLUMNS

# (experiment, seed) -> mIoU of round 0, round 1, oracle; AP50 and PQ follow from mIoU.
MIOU = {("main", 0): (10.0, 20.0, 30.0), ("main", 1): (10.0, 16.0, 40.0), ("wide", 0): (10.0, 25.0, 30.0)}


def write_ablation(results: Path) -> None:
    rows = []
    for (experiment, seed), values in MIOU.items():
        for run, miou in zip(("round0", "round1", "oracle"), values):
            rows += [(experiment, seed, run, "semantic", "mIoU", "all", miou),
                     (experiment, seed, run, "semantic", "IoU", "road", miou + 50),  # not a headline row
                     (experiment, seed, run, "instance", "AP50", "all", miou / 2),
                     (experiment, seed, run, "panoptic", "PQ", "all", miou / 4)]
    (results / "summary").mkdir(parents=True)
    pd.DataFrame(rows, columns=ABLATION_COLUMNS).to_csv(results / "summary/ablation.csv", index=False)


def audit_text(tmp_path: Path, pseudo: list[list[int]]) -> str:
    """What `selfpanoptic audit --ground-truth` prints for these semantic pseudo-labels and two
    pseudo instances of which one matches the ground truth's car."""
    truth = np.array([[[13, 13], [0, 0]]], np.uint8)
    with h5py.File(tmp_path / "p.h5", "w", driver="core", backing_store=False) as h5, \
            h5py.File(tmp_path / "g.h5", "w", driver="core", backing_store=False) as gt:
        h5["labels"] = np.array([pseudo], np.uint8)
        h5["instances"] = np.array([[[1, 1], [2, 0]]], np.int32)
        h5["segments"] = np.array([[0, 1, 13], [0, 2, 13]], np.int64)
        gt["labels"] = truth
        gt["instances"] = np.array([[[5, 5], [0, 0]]], np.int32)
        return "\n".join([*semantic_grade_lines(h5, gt), *instance_grade_lines(h5, gt)])


def test_rows_per_seed_then_mean_and_std(tmp_path, capsys):
    write_ablation(tmp_path)
    assert seeds_table.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    main = lines.index("**main** (mIoU / AP50 / PQ)")
    assert lines[main + 2] == "| seed | round 0 | round 1 | oracle | gap closed |"
    # seed 0: 10 -> 20 of 30 closes half the gap; seed 1: 10 -> 16 of 40, a fifth
    assert lines[main + 4] == "| 0 | 10.0 / 5.0 / 2.5 | 20.0 / 10.0 / 5.0 | 30.0 / 15.0 / 7.5 | 50.0 % |"
    assert lines[main + 5] == "| 1 | 10.0 / 5.0 / 2.5 | 16.0 / 8.0 / 4.0 | 40.0 / 20.0 / 10.0 | 20.0 % |"
    # std of (20, 16) is 2.83; of (50, 20) 21.2
    assert lines[main + 6].startswith("| mean ± std (n=2) | 10.0 ± 0.0 / 5.0 ± 0.0 / 2.5 ± 0.0 | 18.0 ± 2.8 /")
    assert lines[main + 6].endswith("| 35.0 ± 21.2 % |")
    # one seed: the mean alone
    assert "| mean ± std (n=1) | 10.0 / 5.0 / 2.5 | 25.0 / 12.5 / 6.2 | 30.0 / 15.0 / 7.5 | 75.0 % |" in lines


def test_audit_table_reads_what_the_audit_prints(tmp_path, capsys):
    write_ablation(tmp_path)
    # kept: car 2 (both right), road 1 (right), 1 ignored of 4 -> precision 100 %, 25 % ignored
    (tmp_path / "round1/pseudo").mkdir(parents=True)
    (tmp_path / "round1/pseudo/audit.txt").write_text(audit_text(tmp_path, [[13, 13], [0, 255]]))
    # kept: car 2 (both right), road 2 (one right) -> 3 of 4 right, nothing ignored
    (tmp_path / "seed1/round1/pseudo").mkdir(parents=True)
    (tmp_path / "seed1/round1/pseudo/audit.txt").write_text(audit_text(tmp_path, [[13, 13], [0, 13]]))
    assert seeds_table.main([str(tmp_path), "--audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| experiment | n | kept precision round 1 | ignored round 1 | instance precision round 1 |" in lines
    # one TP and one FP pseudo instance in both seeds: 50 %
    assert "| main | 2 | 87.5 ± 17.7 | 12.5 ± 17.7 | 50.0 ± 0.0 |" in lines
    assert not any(line.startswith("| wide |") for line in lines)  # it has no audit files


def test_a_folder_without_the_table_is_named(tmp_path, capsys):
    assert seeds_table.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "summary" / "ablation.csv") in err and "fix:" in err
