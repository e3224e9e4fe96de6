"""Label-free scores: the per-pixel maths, the rank correlation, the round choice, the stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from selfpanoptic.errors import InputError
from selfpanoptic.metrics.label_free import (
    LabelFreeTally, class_distance, normalised_entropy, rank_correlation, round_selection, score_correlations,
    select_round,
)
from selfpanoptic.metrics.table import read_metrics
from selfpanoptic.report_label_free import selected_round_lines
from selfpanoptic.runs import plan_runs

from test_selftrain_training import CPU, round0  # noqa: F401 (module fixture)


def test_normalised_entropy_is_zero_when_certain_and_one_when_uniform():
    probabilities = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    maps = probabilities.T.reshape(1, 4, 1, 3)
    assert normalised_entropy(maps).flatten().tolist() == pytest.approx([0.0, 1.0, 0.5])


def test_class_distance_is_half_the_l1_between_shares():
    assert class_distance(np.array([5, 0]), np.array([0, 2])) == pytest.approx(1.0)
    assert class_distance(np.array([1, 1]), np.array([3, 3])) == pytest.approx(0.0)
    assert class_distance(np.array([3, 1]), np.array([1, 1])) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        class_distance(np.array([0, 0]), np.array([1, 1]))


def test_tally_by_hand():
    # two pixels of three classes: one confident class-0 pixel, one unsure class-2 pixel
    probabilities = torch.tensor([[0.95, 0.2], [0.05, 0.3], [0.0, 0.5]]).reshape(1, 3, 1, 2)
    flipped = torch.tensor([[0.9, 0.6], [0.1, 0.2], [0.0, 0.2]]).reshape(1, 3, 1, 2)  # the second pixel flips
    tally = LabelFreeTally(3)
    labels = tally.add(probabilities, flipped)
    assert labels.tolist() == [[[0, 2]]]
    scores = tally.scores(np.array([1.0, 0.0, 1.0]), agreement=0.75)
    assert scores["confidence"] == pytest.approx(100 * (0.95 + 0.5) / 2)
    assert scores["confident_share"] == pytest.approx(50.0)
    assert scores["flip_agreement"] == pytest.approx(50.0)
    assert scores["class_distance"] == pytest.approx(0.0)  # half class 0, half class 2: the reference's shares
    assert scores["round_agreement"] == pytest.approx(75.0)
    entropy = -(0.95 * math.log(0.95) + 0.05 * math.log(0.05)) - (0.2 * math.log(0.2) + 0.3 * math.log(0.3)
                                                                   + 0.5 * math.log(0.5))
    assert scores["entropy"] == pytest.approx(100 * entropy / 2 / math.log(3), abs=1e-4)
    with pytest.raises(ValueError, match="no pixels"):
        LabelFreeTally(3).scores(np.ones(3))


def test_rank_correlation_by_hand():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x: 1, 2, 3, 4 against y: 1, 3, 2, 4 -> 1 - 6 * 2 / (4 * 15) = 0.8
    assert rank_correlation([1, 2, 3, 4], [5, 7, 6, 8]) == pytest.approx(0.8)
    assert rank_correlation([1, 2, float("nan"), 4, 5], [1, 2, 100, 4, 5]) == pytest.approx(1.0)
    assert math.isnan(rank_correlation([1, 2], [1, 2]))
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize(("values", "higher", "patience", "chosen"), [
    ([1.0, 2.0, 3.0], True, 1, 2),
    ([1.0, 3.0, 2.0, 5.0], True, 1, 1),    # stops after round 2 does not improve: round 3 is never seen
    ([1.0, 3.0, 2.0, 5.0], True, 2, 3),
    ([5.0, 3.0, 4.0], False, 1, 1),         # lower is better
    ([float("nan"), 2.0, 1.0], True, 1, 1),  # round 0 undefined (round_agreement)
    ([4.0], True, 1, 0),
])
def test_select_round_keeps_the_best_and_stops_after_patience(values, higher, patience, chosen):
    assert select_round(values, higher, patience) == chosen


def _ablation(values: dict[tuple[str, int, str], tuple[float, float, float]]) -> pd.DataFrame:
    """An ablation table from {(experiment, seed, run): (flip_agreement, mIoU, PQ)}."""
    rows = []
    for (experiment, seed, run), (flip, miou, pq) in values.items():
        rows += [(experiment, seed, run, "label_free", "flip_agreement", "all", flip),
                 (experiment, seed, run, "semantic", "mIoU", "all", miou),
                 (experiment, seed, run, "panoptic", "PQ", "all", pq)]
    return pd.DataFrame(rows, columns=["experiment", "seed", "run", "task", "metric", "class", "value"])


def test_score_correlations_count_round0_once_and_leave_out_the_oracle():
    table = _ablation({
        ("main", 0, "round0"): (80.0, 10.0, 5.0), ("main", 0, "round1"): (85.0, 20.0, 6.0),
        ("main", 0, "oracle"): (10.0, 90.0, 50.0),
        ("mix", 0, "round0"): (80.0, 10.0, 5.0), ("mix", 0, "round1"): (90.0, 15.0, 7.0),
    })
    correlations = score_correlations(table).set_index("score")
    assert correlations.loc["flip_agreement", "runs"] == 3
    # flip ranks 1, 2, 3 (round0, main r1, mix r1); mIoU ranks 1, 3, 2; PQ ranks 1, 2, 3
    assert correlations.loc["flip_agreement", "rho_mIoU"] == pytest.approx(0.5)
    assert correlations.loc["flip_agreement", "rho_PQ"] == pytest.approx(1.0)
    assert score_correlations(table[table["task"] != "label_free"]).empty


def test_round_selection_reports_the_chosen_round_against_the_last_and_the_best():
    table = _ablation({("main", 0, "round0"): (80.0, 10.0, 5.0), ("main", 0, "round1"): (85.0, 20.0, 6.0),
                       ("main", 0, "round2"): (84.0, 18.0, 6.5), ("main", 0, "oracle"): (99.0, 90.0, 50.0)})
    row = round_selection(table).iloc[0]
    assert (row["chosen"], row["mIoU"], row["PQ"], row["last_mIoU"], row["best_mIoU"]) == (1, 20.0, 6.0, 18.0, 20.0)


def test_stage_writes_a_metrics_table_and_compares_with_the_previous_round(round0, tmp_path, capsys):  # noqa: F811
    pred = tmp_path / "pred.h5"
    assert main(["predict-semantic", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--out", str(pred), *CPU]) == 0
    out = tmp_path / "label_free.csv"
    assert main(["score-label-free", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--source", str(round0["cache"]), "--prediction", str(pred), "--previous", str(pred),
                 "--run", "round1", "--out", str(out), *CPU]) == 0
    table = read_metrics(out).set_index("metric")["value"]
    assert table["round_agreement"] == pytest.approx(100.0)  # a prediction agrees with itself
    assert 0 < table["confidence"] <= 100 and 0 <= table["entropy"] <= 100
    assert 0 <= table["flip_agreement"] <= 100 and 0 <= table["class_distance"] <= 100
    assert main(["score-label-free", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--source", str(round0["cache"]), "--run", "round0", "--out", str(tmp_path / "r0.csv"), *CPU]) == 0
    assert math.isnan(read_metrics(tmp_path / "r0.csv").set_index("metric")["value"]["round_agreement"])
    capsys.readouterr()
    assert main(["score-label-free", "--model", str(round0["semantic"]), "--data", str(round0["cache"]),
                 "--source", str(round0["cache"]), "--previous", str(pred), "--run", "round1",
                 "--out", str(tmp_path / "bad.csv"), *CPU]) == 2
    err = capsys.readouterr().err
    assert "--prediction" in err and "Traceback" not in err and not (tmp_path / "bad.csv").exists()


def _label_free_csv(path, run: str, confidence: float) -> str:
    pd.DataFrame([(run, "label_free", "confidence", "all", confidence), (run, "semantic", "mIoU", "all", 1.0)],
                 columns=["run", "task", "metric", "class", "value"]).to_csv(path, index=False)
    return str(path)


def test_select_round_stage_writes_the_choice(tmp_path, capsys):
    rounds = []
    for r, value in enumerate([70.0, 80.0, 75.0, 90.0]):
        rounds += ["--round", f"round{r}", _label_free_csv(tmp_path / f"r{r}.csv", f"round{r}", value)]
    settings = json.dumps({"selection": {"score": "confidence", "patience": 1}})
    out = tmp_path / "selected.json"
    assert main(["select-round", "--selftrain-settings", settings, *rounds, "--out", str(out)]) in (0, None)
    chosen = json.loads(out.read_text())
    assert (chosen["chosen"], chosen["folder"], chosen["scores"]["round3"]) == ("round1", "round1", 90.0)
    page = "\n".join(selected_round_lines(out))
    assert "**round 1**" in page and "`confidence`" in page
    # rounds out of order: one message naming the file
    capsys.readouterr()
    assert main(["select-round", "--selftrain-settings", settings, *rounds[3:6], "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "r1.csv" in err and "round0" in err and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()


def test_rounds_auto_plans_max_rounds_and_experiments_keep_the_selection():
    config = validate_config({"selftrain": {"rounds": "auto", "selection": {"max_rounds": 3}}})
    plan = plan_runs(config, oracle=True)
    assert [name for name in plan.main.folder_of if name.startswith("round")] == ["round0", "round1", "round2",
                                                                                  "round3"]
    with pytest.raises(InputError, match="sets selection"):
        validate_config({"experiments": {"x": {"selftrain": {"selection": {"patience": 2}}}}})
    with pytest.raises(InputError, match="rounds"):
        validate_config({"selftrain": {"rounds": "many"}})
