"""Experiments and seeds: config checks, seeded sections, the ablation table and its report section."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from selfpanoptic.cli import main
from selfpanoptic.config import seeded, validate_config
from selfpanoptic.errors import InputError
from selfpanoptic.metrics.ablation import ablation_by_run, collect_ablation, format_mean_std, gap_closed, read_ablation
from selfpanoptic.report_ablation import ablation_section, plot_ablation_by_round, seeds_headline
from selfpanoptic.report_label_free import label_free_ablation_lines


def test_experiments_are_filled_in_with_the_sections_they_change():
    config = validate_config({"selftrain": {"semantic": {"views": 3}},
                              "experiments": {"no_guidance": {"selftrain": {"guidance": {"from_round": 0}}}}})
    change = config["experiments"]["no_guidance"]
    assert list(change) == ["selftrain"]
    assert change["selftrain"]["guidance"]["from_round"] == 0
    assert change["selftrain"]["semantic"]["views"] == 3  # the main section's own change carries over
    assert change["selftrain"]["guidance"]["gt_instance_fraction"] == 0.0  # defaults filled in
    assert validate_config(config) == config  # a filled-in config reads back the same


def test_an_experiment_may_change_pretraining_sections():
    config = validate_config({"experiments": {"co": {"semantic": {"co_learning": {"enabled": True}},
                                                     "selftrain": {"semantic": {"co_learning": {"enabled": True}}}}}})
    change = config["experiments"]["co"]
    assert change["semantic"]["co_learning"]["enabled"] and change["selftrain"]["semantic"]["co_learning"]["enabled"]
    assert not config["semantic"]["co_learning"]["enabled"]


@pytest.mark.parametrize("experiments, message", [
    ({"x": {"selftrain": {"guidnce": {}}}}, "(?s)experiments.x.*'experiments.x.selftrain.guidnce' .did you mean 'guidance'"),
    ({"x": {"selftrain": {"rounds": 3}}}, "experiments.x.selftrain sets rounds"),
    ({"main": {"selftrain": {"guidance": {"from_round": 0}}}}, "experiments.main"),
    ({"x": {"guidance": {"from_round": 0}}}, "(?s)unknown section experiments.x.guidance.*fix: write it inside selftrain"),
    ({"x": {"semantc": {}}}, "(?s)unknown section experiments.x.semantc.*did you mean 'semantic'"),
    ({"x": {"data": {"height": 32}}}, "(?s)experiments.x.data: an experiment cannot change `data`.*own `results`"),
    ({"x": {"instance": {"groups": {"cars": ["car"]}}}}, "experiments.x.instance sets groups"),
    ({"x": {"semantic": {"train": {"lr": -1}}}}, "experiments.x.semantic.train.lr"),
    ({"1x": {}}, "experiments"),
])
def test_bad_experiments_are_named(experiments, message):
    with pytest.raises(InputError, match=message):
        validate_config({"experiments": experiments})


def test_seeds_must_be_a_non_empty_list_of_distinct_whole_numbers():
    assert validate_config({})["seeds"] == [0]
    for bad in ([], [1, 1], [-1], "0"):
        with pytest.raises(InputError, match="seeds"):
            validate_config({"seeds": bad})


def test_seeded_adds_the_offset_to_every_train_seed_and_leaves_the_rest():
    config = validate_config({"selftrain": {"semantic": {"train": {"seed": 5}}}})
    shifted = seeded(config["selftrain"], 2)
    assert shifted["semantic"]["train"]["seed"] == 7
    assert shifted["instance"]["train"]["seed"] == 2
    assert shifted["guidance"] == config["selftrain"]["guidance"]
    assert config["selftrain"]["semantic"]["train"]["seed"] == 5  # input untouched
    assert seeded(config["semantic"], 0) == config["semantic"]


def _tables(tmp_path, experiment, seed, values):
    """One metrics CSV per run: mIoU, AP50, PQ and sky IoU from ``values[run]``."""
    paths = []
    for run, (miou, ap50, pq, sky) in values.items():
        rows = [(run, "semantic", "mIoU", "all", miou), (run, "semantic", "IoU", "sky", sky),
                (run, "instance", "AP50", "all", ap50), (run, "panoptic", "PQ", "all", pq)]
        path = tmp_path / f"{experiment}_{seed}_{run}.csv"
        pd.DataFrame(rows, columns=["run", "task", "metric", "class", "value"]).to_csv(path, index=False)
        paths.append((experiment, seed, path))
    return paths


def _ablation(tmp_path):
    shared = {0: {"round0": (10.0, 2.0, 5.0, 30.0), "oracle": (50.0, 20.0, 25.0, 80.0)},
              1: {"round0": (12.0, 2.0, 5.0, 30.0), "oracle": (52.0, 20.0, 25.0, 80.0)}}
    entries = []
    for seed, (r1, r2) in {0: (20.0, 30.0), 1: (22.0, 28.0)}.items():
        entries += _tables(tmp_path, "main", seed, {**shared[seed], "round1": (r1, 3.0, 6.0, 20.0), "round2": (r2, 4.0, 7.0, 25.0)})
    for seed, (r1, r2) in {0: (18.0, 18.0), 1: (20.0, 14.0)}.items():
        entries += _tables(tmp_path, "no_guidance", seed, {"round2": (r2, 3.0, 6.0, 5.0), "round1": (r1, 3.0, 6.0, 10.0),
                                                            **shared[seed]})
    return collect_ablation(entries)


def test_ablation_table_orders_rows_and_averages_over_seeds(tmp_path):
    table = _ablation(tmp_path)
    assert list(table.columns[:2]) == ["experiment", "seed"]
    no_guidance = table[(table.experiment == "no_guidance") & (table.seed == 0) & (table.task == "semantic")
                        & (table.metric == "mIoU")]
    assert list(no_guidance["run"]) == ["round0", "round1", "round2", "oracle"]  # sorted, whatever the order given
    wide = ablation_by_run(table, "semantic", "mIoU")
    assert list(wide.index) == ["main", "no_guidance"]
    assert list(wide["mean"].columns) == ["round0", "round1", "round2", "oracle"]
    assert wide.loc["main", ("mean", "round2")] == pytest.approx(29.0)
    assert wide.loc["main", ("std", "round2")] == pytest.approx(math.sqrt(2.0))  # sample std of 30, 28
    assert wide.loc["no_guidance", ("mean", "round2")] == pytest.approx(16.0)
    assert wide.loc["main", ("n", "round0")] == 2


def test_gap_closed_per_seed_then_averaged(tmp_path):
    gap = gap_closed(_ablation(tmp_path), "round2")
    # main: (30 - 10) / 40 = 50 %, (28 - 12) / 40 = 40 %; no_guidance: 20 %, 5 %
    assert gap.loc["main", "mean"] == pytest.approx(45.0)
    assert gap.loc["main", "std"] == pytest.approx(math.sqrt(50.0))
    assert gap.loc["no_guidance", "mean"] == pytest.approx(12.5)
    assert gap_closed(_ablation(tmp_path), "round7").empty


def test_format_mean_std():
    assert format_mean_std(19.74, 0.43) == "19.7 ± 0.4"
    assert format_mean_std(19.74, float("nan")) == "19.7"
    assert format_mean_std(float("nan"), 1.0) == "-"


def test_ablation_section_and_curve(tmp_path):
    table = _ablation(tmp_path)
    lines = "\n".join(ablation_section(table, "ablation_by_round.png"))
    assert "| main | 2 | 11.0 ± 1.4 | 21.0 ± 1.4 | 29.0 ± 1.4 | 51.0 ± 1.4 | 45.0 ± 7.1 |" in lines
    assert "| no_guidance | 2 |" in lines and "**AP50**" in lines and "**PQ**" in lines
    # per class, last round: sky 25 (main) and 5 (no_guidance), round 0 30
    assert "| sky | 30.0 | 25.0 | 5.0 |" in lines
    plot_ablation_by_round(table, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_ablation_command_writes_the_table_and_names_bad_input(tmp_path, capsys):
    entries = []
    for experiment, seed, path in _ablation_entries(tmp_path):
        entries += ["--table", experiment, str(seed), str(path)]
    out = tmp_path / "ablation.csv"
    assert main(["ablation", *entries, "--out", str(out)]) in (0, None)
    assert "main: mIoU round0 10.0" in capsys.readouterr().out
    assert read_ablation(out).shape[0] == 8
    assert main(["ablation", "--table", "main", "x", str(out), "--out", str(tmp_path / "b.csv")]) == 2
    assert "seed must be a whole number" in capsys.readouterr().err
    assert main(["ablation", "--table", "main", "0", str(out), "--out", str(tmp_path / "b.csv")]) == 2
    assert "not a metrics table" in capsys.readouterr().err
    assert not (tmp_path / "b.csv").exists()


def _ablation_entries(tmp_path):
    return _tables(tmp_path, "main", 0, {"round0": (10.0, 2.0, 5.0, 30.0), "round1": (20.0, 3.0, 6.0, 20.0)})


def test_seeds_headline_gives_the_main_runs_mean_std_and_n(tmp_path):
    table = _ablation(tmp_path)
    lines = "\n".join(seeds_headline(table))
    assert "## Headline over seeds (n = 2)" in lines
    assert "| main | 2 | 11.0 ± 1.4 | 21.0 ± 1.4 | 29.0 ± 1.4 | 51.0 ± 1.4 | 45.0 ± 7.1 |" in lines
    assert "no_guidance" not in lines
    assert seeds_headline(table[table.seed == 0]) == []


def test_label_free_lines_of_the_report(tmp_path):
    table = _ablation(tmp_path)
    label_free = table[(table.task == "semantic") & (table.metric == "mIoU") & (table["class"] == "all")].copy()
    label_free["task"], label_free["metric"] = "label_free", "confidence"
    label_free["value"] = label_free["value"] + 1.0  # ranks the runs as val mIoU does
    lines = "\n".join(label_free_ablation_lines(pd.concat([table, label_free], ignore_index=True)))
    # round 0 once per seed (2) and two rounds of two experiments in two seeds (8); the oracle left out
    assert "| confidence | 10 | +1.00 |" in lines
    assert "Choosing the round by each score" in lines
    assert label_free_ablation_lines(table) == []
