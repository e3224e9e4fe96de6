"""scripts/ablation_table.py: variants grouped over seed folders, mean ± std from the metrics files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ablation_table", ROOT / "scripts" / "ablation_table.py")
ablation_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation_table)


def _run(folder: Path, miou: dict[str, float], road: float) -> Path:
    rows = [(r, "semantic", "mIoU", "all", v) for r, v in miou.items()]
    rows += [(r, "panoptic", "PQ", "all", 5.0) for r in miou]
    rows += [(r, "instance", "AP50", "all", 2.0) for r in miou]
    rows += [(r, "semantic", "IoU", "road", road) for r in miou]
    rows.append(("oracle", "semantic", "mIoU", "all", 99.0))
    (folder / "summary").mkdir(parents=True)
    pd.DataFrame(rows, columns=["round", "task", "metric", "class", "value"]).to_csv(folder / "summary/metrics.csv",
                                                                                      index=False)
    return folder


def test_seed_folders_join_their_variant_as_mean_and_std(tmp_path):
    folders = [
        _run(tmp_path / "baseline", {"0": 10.0, "1": 20.0}, 50.0),
        _run(tmp_path / "baseline-seed1", {"0": 12.0, "1": 24.0}, 60.0),
        _run(tmp_path / "self-correction", {"0": 10.0, "1": 21.0}, 55.0),
    ]
    text = ablation_table.ablation_tables(folders)
    lines = text.splitlines()
    assert lines[0].startswith("| run | n | mIoU r0 | mIoU r1 | PQ r0")
    # mean 11 and 22, sample std sqrt(2) = 1.4 and sqrt(8) = 2.8; the oracle is left out
    assert "| baseline | 2 | 11.0 ± 1.4 | 22.0 ± 2.8 | 5.0 ± 0.0 |" in text
    assert "| self-correction | 1 | 10.0 | 21.0 | 5.0 |" in text
    assert "99.0" not in text
    assert "IoU per class, round 1" in text and "| baseline | 55.0 |" in text


def test_a_missing_metrics_file_is_one_message(tmp_path, capsys):
    assert ablation_table.main([str(tmp_path / "nothing")]) == 2
    assert "error:" in capsys.readouterr().err


def test_audit_numbers_come_from_the_audit_text(tmp_path):
    audit = tmp_path / "audit.txt"
    audit.write_text(
        "  all pixels: precision of kept labels 68.4 %, of the raw argmax 58.4 %\n"
        "  ignored (below threshold): 37.8 % of labelled pixels\n"
        "graded against ground-truth instances (IoU >= 0.5):\n"
        "  class              TP     FP     GT  prec %\n"
        "  car                93     56    582    62.4\n"
        "  all               104    103   1904    50.2\n"
    )
    assert ablation_table.audit_numbers(audit) == {"kept prec": 68.4, "ignored": 37.8, "instance prec": 50.2}
    missing = ablation_table.audit_numbers(tmp_path / "none.txt")
    assert all(v != v for v in missing.values())  # NaN, shown as "-"
