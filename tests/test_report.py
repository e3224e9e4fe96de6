"""Report helpers: colours, headline table, plots and the Markdown page; the report's files in a shared folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import selfpanoptic.report as report_module
from selfpanoptic.atomic import atomic_files
from selfpanoptic.cli import main
from selfpanoptic.overlays import colourise_panoptic
from selfpanoptic.report import MANIFEST, build_report, colourise, headline, plot_metrics_by_round, write_report


def metrics_table() -> pd.DataFrame:
    rows = []
    for run, base in (("round0", 10.0), ("round1", 20.0), ("oracle", 40.0)):
        rows += [
            (run, "semantic", "mIoU", "all", base), (run, "semantic", "mIoU", "all16", base + 1),
            (run, "semantic", "IoU", "road", base + 2), (run, "instance", "AP", "all", base / 2),
            (run, "instance", "AP50", "all", base / 1.5), (run, "panoptic", "PQ", "all", base / 3),
            (run, "panoptic", "SQ", "all", 70.0), (run, "panoptic", "RQ", "all", base / 2.5),
            (run, "panoptic", "PQ_dagger", "all", base / 2.8), (run, "panoptic", "PQ", "all16", base / 3.2),
        ]
    return pd.DataFrame(rows, columns=["run", "task", "metric", "class", "value"])


def test_colourise_uses_cityscapes_colours():
    out = colourise(np.array([[0, 255]], dtype=np.uint8))
    assert out[0, 0].tolist() == [128, 64, 128] and out[0, 1].tolist() == [0, 0, 0]
    ids = np.zeros((3, 8), dtype=np.int64)
    ids[:, 0], ids[:, 2:5], ids[:, 5:8] = 7, 26000, 26001
    pan = colourise_panoptic(ids)
    assert pan[1, 0].tolist() == [128, 64, 128] and pan[1, 1].tolist() == [0, 0, 0]
    assert pan[1, 3].tolist() != pan[1, 6].tolist()  # two cars, two shades
    assert pan[1, 5].tolist() == [255, 255, 255]  # the border between them


def test_headline_orders_rounds_with_oracle_last():
    head = headline(metrics_table())
    assert list(head.columns) == ["round0", "round1", "oracle"]
    assert head.loc["mIoU"].tolist() == [10.0, 20.0, 40.0]
    assert head.loc["AP50", "round1"] == 20.0 / 1.5


def test_plot_and_page(tmp_path):
    table = metrics_table()
    plot_metrics_by_round(table, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    page = write_report(table, tmp_path, {"round0": "overlays_round0.png"})
    assert "| mIoU | 10.0 | 20.0 | 40.0 |" in page
    assert "| road | 12.0 | 22.0 | 42.0 |" in page
    assert "![round0](overlays_round0.png)" in page
    assert "co-learning" not in page
    page = write_report(table, tmp_path, {}, {"round0": "../round0/semantic/co_learning.png"})
    assert "![co-learning, round0](../round0/semantic/co_learning.png)" in page


def test_semantic_only_table_gets_a_semantic_page(tmp_path):
    """mixing.sources: [gta]: no instance or panoptic rows, so neither their tables nor their curves."""
    table = metrics_table()
    table = table[table.task == "semantic"]
    head = headline(table)
    assert list(head.index) == ["mIoU", "mIoU16", "mIoU13"]
    plot_metrics_by_round(table, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    page = write_report(table, tmp_path, {})
    assert "| mIoU | 10.0 | 20.0 | 40.0 |" in page
    assert "Semantic segmentation only" in page
    assert "Instance segmentation" not in page and "Panoptic segmentation" not in page


# --out-dir is shared with other outputs (results/summary): the report adds its files all at once
# and replaces only those an earlier report wrote.

REPORT_FILES = {"report.md", "metrics_by_round.png", "iou_per_class.png", MANIFEST}


def report_folder(tmp_path):
    """A summary folder holding another rule's table, and the metrics CSV in it."""
    out = tmp_path / "summary"
    out.mkdir()
    metrics_table().to_csv(out / "metrics.csv", index=False)
    return out


def run_report(out, *extra):
    return main(["report", "--metrics", str(out / "metrics.csv"), "--data", str(out / "none.h5"),
                 "--out-dir", str(out), *extra])


def test_report_adds_its_files_to_a_shared_folder_and_reruns(tmp_path, capsys):
    out = report_folder(tmp_path)
    assert run_report(out) == 0
    assert {p.name for p in out.iterdir()} == REPORT_FILES | {"metrics.csv"}
    assert json.loads((out / MANIFEST).read_text())["files"] == sorted(REPORT_FILES - {MANIFEST})
    (out / "report.md").write_text("old page\n")
    assert run_report(out) == 0, capsys.readouterr().err  # the workflow's rerun replaces its own files
    assert (out / "report.md").read_text().startswith("# SelfPanoptic results")
    assert {p.name for p in out.iterdir()} == REPORT_FILES | {"metrics.csv"}


@pytest.mark.parametrize("mine", ["report.md", "iou_per_class.png"])
def test_report_refuses_to_replace_a_users_file(tmp_path, capsys, mine):
    out = report_folder(tmp_path)
    (out / mine).write_text("my own notes\n")
    assert run_report(out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 2 and "Traceback" not in err
    assert f"--out-dir holds {mine}, which selfpanoptic did not write there" in err and "fix:" in err
    assert (out / mine).read_text() == "my own notes\n"
    assert {p.name for p in out.iterdir()} == {"metrics.csv", mine}  # nothing written


def test_report_refuses_a_file_an_earlier_report_did_not_list(tmp_path, capsys):
    out = report_folder(tmp_path)
    assert run_report(out) == 0
    (out / "overlays_round0.png").write_text("mine\n")  # not among the files the first report wrote
    assert run_report(out, "--run", "round0", str(out / "pred.h5")) == 2
    assert "holds overlays_round0.png, which selfpanoptic did not write" in capsys.readouterr().err
    assert (out / "overlays_round0.png").read_text() == "mine\n"


def test_report_refuses_a_folder_output_and_a_bad_label(tmp_path, capsys):
    out = report_folder(tmp_path)
    (out / ".selfpanoptic-output.json").write_text('{"written_by": "selfpanoptic", "files": ["metrics.csv"]}\n')
    assert run_report(out) == 2
    assert "folder another selfpanoptic command writes whole" in capsys.readouterr().err
    (out / ".selfpanoptic-output.json").unlink()
    assert run_report(out, "--run", "a/b", str(out / "pred.h5")) == 2
    assert "the run label 'a/b' cannot be part of a file name" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"metrics.csv"}


def test_report_that_fails_part_way_leaves_nothing(tmp_path, monkeypatch):
    out = report_folder(tmp_path)
    build_report(out / "metrics.csv", out, out / "none.h5", {}, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(table, path):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report_module, "plot_iou_per_class", fail)
    with pytest.raises(RuntimeError, match="plot failed"):
        build_report(out / "metrics.csv", out, out / "none.h5", {}, 1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier report is untouched
    with pytest.raises(RuntimeError, match="plot failed"):
        build_report(out / "metrics.csv", tmp_path / "new", out / "none.h5", {}, 1)
    assert not (tmp_path / "new").exists()


def test_atomic_files_manifest_keeps_the_files_of_earlier_runs(tmp_path):
    """A report with fewer runs than the last one still lists the last one's overlays, so a later
    report with those runs again may replace them."""
    for names in (["a.txt", "b.txt"], ["a.txt"], ["a.txt", "b.txt"]):
        with atomic_files(tmp_path, names, ".list.json") as tmp:
            for name in names:
                tmp[name].write_text(name)
        assert json.loads((tmp_path / ".list.json").read_text())["files"] == ["a.txt", "b.txt"]
    assert not list(tmp_path.glob("*.tmp-*"))
