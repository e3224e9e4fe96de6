"""Report helpers: colours, headline table, plots and the Markdown page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from selfpanoptic.overlays import colourise_panoptic
from selfpanoptic.report import colourise, headline, plot_metrics_by_round, write_report


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
