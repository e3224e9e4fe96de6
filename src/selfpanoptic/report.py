"""``selfpanoptic report``: the tables, plots and qualitative overlays a person reads.

Writes ``report.md`` (thesis-style tables: semantic IoU per class, instance AP per class,
panoptic SQ/RQ/PQ/PQ-dagger by round), ``metrics_by_round.png`` (headline metrics against the
round, the oracle as a dashed line), ``iou_per_class.png`` (per-class IoU bars by round), one
``overlays_<run>.png`` per run (image, ground truth, semantic prediction, panoptic prediction) and,
from the ablation table, ``ablation_by_round.png`` (:mod:`selfpanoptic.report_ablation`).
A semantic-only run (``mixing.sources: [gta]``: no instance or panoptic tables, no panoptic
folders) gets the semantic parts alone. The folder is shared with other outputs: the report adds
its files all at once, and replaces only files an earlier report wrote (:data:`MANIFEST`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from .atomic import atomic_files, atomic_output, check_files_replaceable, check_output_paths  # noqa: E402
from .classes import CLASS_NAMES, THING_TRAIN_IDS  # noqa: E402
from .colours import colourise  # noqa: E402
from .errors import InputError  # noqa: E402
from .formats.panoptic_png import read_panoptic_png  # noqa: E402
from .intermediates import DatasetCache, SemanticPrediction  # noqa: E402
from .overlays import colourise_panoptic  # noqa: E402
from .translation import FIDELITY_COLUMNS  # noqa: E402
from .metrics.ablation import read_ablation  # noqa: E402
from .metrics.table import NAMED_RUNS, read_metrics, round_index, round_title, run_order  # noqa: E402
from .report_semantic_gan import semantic_gan_lines  # noqa: E402
from .report_ablation import ablation_section, plot_ablation_by_round, seeds_headline  # noqa: E402
from .report_label_free import label_free_ablation_lines, label_free_lines, selected_round_lines  # noqa: E402

MANIFEST = ".selfpanoptic-report.json"
"""The list, in the report's folder, of the files the report wrote there: a later report may
replace exactly those. The folder is shared with other outputs, so it gets no folder MARKER."""


def _runs(table: pd.DataFrame) -> list[str]:
    return sorted(table["run"].unique(), key=run_order)


def _pivot(table: pd.DataFrame, task: str, metric: str, classes: list[str]) -> pd.DataFrame:
    rows = table[(table.task == task) & (table.metric == metric) & table["class"].isin(classes)]
    pivot = rows.pivot_table(index="class", columns="run", values="value", aggfunc="first", dropna=False)
    return pivot.reindex(index=classes, columns=_runs(table))


def _markdown(frame: pd.DataFrame, first: str) -> str:
    header = f"| {first} | " + " | ".join(round_title(c) for c in frame.columns) + " |"
    lines = [header, "|---|" + "---:|" * len(frame.columns)]
    for index, row in frame.iterrows():
        cells = " | ".join("–" if pd.isna(v) else f"{v:.1f}" for v in row)
        lines.append(f"| {index} | {cells} |")
    return "\n".join(lines)


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric (mIoU, mIoU16, mIoU13, AP, AP50, PQ, SQ, RQ, PQ-dagger, PQ16; percent), one column
    per run; the metrics of a task the table lacks (a semantic-only run) are left out."""
    picks = {
        "mIoU": ("semantic", "mIoU", "all"), "mIoU16": ("semantic", "mIoU", "all16"),
        "mIoU13": ("semantic", "mIoU", "all13"),
        "AP": ("instance", "AP", "all"), "AP50": ("instance", "AP50", "all"),
        "PQ": ("panoptic", "PQ", "all"), "SQ": ("panoptic", "SQ", "all"), "RQ": ("panoptic", "RQ", "all"),
        "PQ†": ("panoptic", "PQ_dagger", "all"), "PQ16": ("panoptic", "PQ", "all16"),
    }
    out = {}
    for name, (task, metric, cls) in picks.items():
        if task not in set(table.task):
            continue
        rows = table[(table.task == task) & (table.metric == metric) & (table["class"] == cls)]
        out[name] = rows.set_index("run")["value"]
    return pd.DataFrame(out).reindex(_runs(table)).T


def plot_metrics_by_round(table: pd.DataFrame, path: Path) -> None:
    """Headline metrics against the self-training round; the oracle as a dashed line, round 0 with
    the translated source as a hollow square at round 0."""
    head = headline(table)
    rounds = [r for r in head.columns if r not in NAMED_RUNS]
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, metric in enumerate(m for m in ("mIoU", "AP50", "PQ") if m in head.index):
        colour = f"C{i}"
        ax.plot([round_index(r) for r in rounds], head.loc[metric, rounds], "o-", color=colour, label=metric)
        if "oracle" in head.columns:
            ax.axhline(head.loc[metric, "oracle"], color=colour, linestyle="--", linewidth=1)
        if "translated" in head.columns:
            ax.plot([0], [head.loc[metric, "translated"]], "s", color=colour, markerfacecolor="none", markersize=8)
    ax.set_xlabel("round (0 = source only; dashed: oracle" + ("; square: translated source" if "translated" in head.columns
                                                             else "") + ")")
    ax.set_ylabel("score on target val (%)")
    ax.set_xticks([round_index(r) for r in rounds])
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_iou_per_class(table: pd.DataFrame, path: Path) -> None:
    """Per-class IoU bars, one bar per round."""
    pivot = _pivot(table, "semantic", "IoU", list(CLASS_NAMES))
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(len(pivot.columns), 1)
    x = np.arange(len(pivot.index))
    for i, run in enumerate(pivot.columns):
        ax.bar(x + i * width, pivot[run].fillna(0), width, label=round_title(run))
    ax.set_xticks(x + width * (len(pivot.columns) - 1) / 2)
    ax.set_xticklabels(pivot.index, rotation=60, ha="right")
    ax.set_ylabel("IoU on target val (%)")
    ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def overlay_figure(
    cache_path: Path, semantic_path: Path, panoptic_dir: Path | None, count: int, path: Path, title: str
) -> None:
    """A grid of ``count`` val images: image | ground truth | semantic prediction | panoptic prediction
    (the last column only with a ``panoptic_dir``)."""
    annotations = {}
    if panoptic_dir is not None:
        annotations = {a["image_id"]: a for a in json.loads((panoptic_dir / "panoptic.json").read_text())["annotations"]}
    with DatasetCache.open(cache_path) as cache, SemanticPrediction.open(semantic_path, cache.image_ids, cache_path) as sem:
        picks = np.linspace(0, len(cache) - 1, num=min(count, len(cache))).astype(int)
        rows = []
        for i in picks:
            image_id = cache.image_ids[i]
            row = [cache.read("images", i), colourise(cache.read("labels", i)), colourise(sem["labels"][i])]
            if panoptic_dir is not None:
                size = cache.read("labels", i).shape[::-1]
                ids = read_panoptic_png(panoptic_dir / "panoptic" / annotations[image_id]["file_name"])
                row.append(np.asarray(Image.fromarray(colourise_panoptic(ids)).resize(size, Image.NEAREST)))
            rows.append(row)
    columns = len(rows[0])
    fig, axes = plt.subplots(len(rows), columns, figsize=(3 * columns, 1.6 * len(rows) + 0.6), squeeze=False)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            axes[r, c].imshow(image)
            axes[r, c].axis("off")
    for c, name in enumerate(["image", "ground truth", "semantic prediction", "panoptic prediction"][:columns]):
        axes[0, c].set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def translation_section(fidelity: pd.DataFrame, grid: str) -> list[str]:
    """The report's lines on label-to-image translation: the label-fidelity table (mean first,
    classes in a collapsible block) and the sample grid (``grid``: path relative to the page)."""
    mean = fidelity.set_index("class").loc["mean"]

    def row(r) -> str:
        cells = ["–" if pd.isna(r[k]) else f"{r[k]:.1f}" for k in FIDELITY_COLUMNS[1:]]
        return f"| {r['class']} | " + " | ".join(cells) + " |"

    header = ["| class | IoU on real source | IoU on translated (label fidelity) | ratio % | oracle's IoU on translated |",
              "|---|---:|---:|---:|---:|"]
    classes = [row(r) for _, r in fidelity.iterrows() if r["class"] != "mean"]
    return [
        "## Label-to-image translation", "",
        "The source label maps rendered in the target's look by the translator (mixing.translated, section "
        "`translation`). Run `translated` in the tables above is round 0's models trained with that share of "
        "translated source images. Label fidelity: the labelling round's semantic model segments each translated "
        "image, scored against the label map it was generated from; next to it the same model on the real source "
        "images. A class far below its real-image IoU is one the translator does not draw recognisably, or one the "
        "labelling model no longer knows in the target's look (its own domain gap); the oracle (trained on target "
        "labels) reads target-like images best and tells the two apart.", "",
        *header, row(fidelity[fidelity["class"] == "mean"].iloc[0]), "",
        f"Label fidelity is {mean.ratio:.0f} % of the model's mIoU on real source images.", "",
        "<details><summary>Per class</summary>", "", *header, *classes, "", "</details>", "",
        "Rows: label map | real source image | translated image | its re-segmentation.", "",
        f"![translated source]({grid})", "",
    ]


def write_report(table: pd.DataFrame, out_dir: Path, overlay_files: dict[str, str],
                 generated: dict[str, str] | None = None, translation: list[str] | None = None,
                 ablation: list[str] | None = None, over_seeds: list[str] | None = None) -> str:
    """The Markdown page; ``overlay_files`` maps run labels to overlay PNG names in ``out_dir``,
    ``generated`` run labels to co-learning figures (paths relative to ``out_dir``);
    ``translation``: the lines of :func:`translation_section`, ``ablation`` those of
    :func:`~selfpanoptic.report_ablation.ablation_section`, ``over_seeds`` those of
    :func:`~selfpanoptic.report_ablation.seeds_headline`, or None."""
    things = [CLASS_NAMES[t] for t in THING_TRAIN_IDS]
    tasks = set(table.task)
    parts = [
        "# SelfPanoptic results", "",
        "Scores on the target val split, in percent. Round 0 is the source-only baseline; "
        "`oracle` is the same models trained on the target train labels."
        + (" `translated` is round 0's models trained with source images rendered in the target's look "
           "(section \"Label-to-image translation\")." if "translated" in set(table["run"]) else ""), "",
        *(over_seeds or []),
        "## Headline", "", _markdown(headline(table), "metric"), "",
        "![metrics by round](metrics_by_round.png)", "",
        "## Semantic segmentation: IoU per class", "",
        _markdown(_pivot(table, "semantic", "IoU", list(CLASS_NAMES) ) , "class"), "",
        _markdown(_pivot(table, "semantic", "mIoU", ["all", "all16", "all13"]), "mIoU"), "",
        "![IoU per class](iou_per_class.png)", "",
    ]
    if "instance" in tasks:
        parts += [
            "## Instance segmentation: AP per class", "",
            _markdown(_pivot(table, "instance", "AP", things + ["all"]), "AP"), "",
            _markdown(_pivot(table, "instance", "AP50", things + ["all"]), "AP50"), "",
        ]
    if "panoptic" in tasks:
        parts += ["## Panoptic segmentation", ""]
        for metric in ("PQ", "SQ", "RQ"):
            parts += [_markdown(_pivot(table, "panoptic", metric, ["all", "things", "stuff", "all16", "things16", "stuff16"]), metric), ""]
        parts += [_markdown(_pivot(table, "panoptic", "PQ_dagger", ["all", "all16"]), "PQ†"), ""]
        parts += [_markdown(_pivot(table, "panoptic", "PQ", list(CLASS_NAMES)), "PQ per class"), ""]
    parts += label_free_lines(table)
    parts += ablation or []
    if not tasks & {"instance", "panoptic"}:
        parts += ["Semantic segmentation only: the source has no instance labels (mixing.sources: [gta]), "
                  "so no instance models, panoptic fusion or PQ.", ""]
    parts += ["## Qualitative results", ""]
    for run, name in overlay_files.items():
        parts += [f"![{run}]({name})", ""]
    if generated:
        parts += ["## Generative co-learning: what the generation head learned", "",
                  "One row per target train image: the generator's input, its output, the real target "
                  "(for depth: inverse depth as grey, white = near, magenta = unknown).", ""]
        for run, name in generated.items():
            parts += [f"![co-learning, {run}]({name})", ""]
    parts += translation or []
    return "\n".join(parts)


def report_files(runs: dict, ablation: bool) -> dict[str, str]:
    """The files the report writes into its folder: ``{what: file name}``, what being a figure
    name or ``overlays <run>``; refuses a run label that cannot be part of a file name."""
    names = {"page": "report.md", "by_round": "metrics_by_round.png", "per_class": "iou_per_class.png"}
    if ablation:
        names["ablation"] = "ablation_by_round.png"
    for run in runs:
        name = f"overlays_{run}.png"
        if Path(name).name != name or "\\" in name:
            raise InputError(f"the run label {run!r} cannot be part of a file name (overlays_<label>.png)", None,
                             "give --run a label without '/' (round0, oracle, ...)")
        names[f"overlays {run}"] = name
    return names


def _check_targets(out_dir: Path, names: list[str], inputs: dict[str, list]) -> None:
    """Refuse, before any work, a report file that would replace an input or a file selfpanoptic did not write."""
    given = {option: [Path(p) for p in paths if p is not None] for option, paths in inputs.items()}
    check_files_replaceable(out_dir, names, MANIFEST, "--out-dir")
    check_output_paths({f"--out-dir's {name}": (out_dir / name, False) for name in names}, given)


def _translation_lines(translation: tuple[str, str] | None, out_dir: Path) -> list[str] | None:
    """The translation section's lines from (label-fidelity CSV, sample grid), checked; None without."""
    if translation is None:
        return None
    table_path, grid = translation
    for path in (table_path, grid):
        if not Path(path).is_file():
            raise InputError("translation output does not exist", path, "run the label_fidelity rule that writes it")
    fidelity = pd.read_csv(table_path)
    if list(fidelity.columns) != FIDELITY_COLUMNS:
        raise InputError("not a label-fidelity table", table_path, "give the CSV that label-fidelity writes")
    return translation_section(fidelity, os.path.relpath(grid, out_dir))


def _generated_figures(generated: dict[str, str] | None, out_dir: Path) -> dict[str, str]:
    """The co-learning figures by run, as paths relative to ``out_dir``; each must exist."""
    figures = {}
    for run, figure in (generated or {}).items():
        if not Path(figure).is_file():
            raise InputError("co-learning figure does not exist", figure,
                             "run the training stage with co_learning enabled that writes it")
        figures[run] = os.path.relpath(figure, out_dir)
    return figures


def build_report(
    metrics_csv: str | Path, out_dir: str | Path, cache_path: str | Path, runs: dict[str, tuple[str, str | None]],
    overlays: int, generated: dict[str, str] | None = None, translation: tuple[str, str] | None = None,
    ablation_csv: str | Path | None = None, selected_json: str | Path | None = None,
    semantic_gan: tuple[str, str, str | None] | None = None,
) -> None:
    """The files of :func:`report_files` in ``out_dir``; ``runs`` maps a run label to (semantic prediction, panoptic
    folder or None for a semantic-only run), ``generated`` a run label to its co-learning figure
    (``co_learning.png``), linked from the page; ``translation``: (label-fidelity CSV, sample
    grid PNG) of label-to-image translation, or None; ``ablation_csv``: the ablation table
    (``selfpanoptic ablation``), or None; ``selected_json``: the round chosen without target labels
    (``selfpanoptic select-round``), or None; ``semantic_gan``: (sample grid, inversion grid,
    label-fidelity CSV or None) of SemanticGAN, or None.

    ``out_dir`` is shared with other outputs (results/summary), so the report adds its files all
    at once or none (:func:`~selfpanoptic.atomic.atomic_files`) and replaces only files an earlier
    report wrote (listed in :data:`MANIFEST`)."""
    out_dir = Path(out_dir)
    names = report_files(runs, ablation_csv is not None)
    _check_targets(out_dir, list(names.values()), {
        "--metrics": [metrics_csv], "--data": [cache_path], "--ablation": [ablation_csv],
        "--run": [p for pair in runs.values() for p in pair], "--generated": list((generated or {}).values()),
        "--translation": list(translation or ()), "--selected": [selected_json],
        "--semantic-gan": [p for p in semantic_gan or () if p]})
    table = read_metrics(metrics_csv)  # inputs are checked before anything is written
    ablation = read_ablation(ablation_csv) if ablation_csv is not None else None
    translation_lines = _translation_lines(translation, out_dir)
    selected = selected_round_lines(selected_json) if selected_json is not None else []
    gan_lines = semantic_gan_lines(table, *semantic_gan, out_dir) if semantic_gan else []
    figures = _generated_figures(generated, out_dir)
    with atomic_files(out_dir, list(names.values()), MANIFEST, "--out-dir") as tmp:
        plot_metrics_by_round(table, tmp[names["by_round"]])
        plot_iou_per_class(table, tmp[names["per_class"]])
        ablation_lines = over_seeds = None
        if ablation is not None:
            plot_ablation_by_round(ablation, tmp[names["ablation"]])
            ablation_lines = ablation_section(ablation, names["ablation"]) + label_free_ablation_lines(ablation)
            over_seeds = seeds_headline(ablation)
        for run, (semantic, panoptic) in runs.items():
            panoptic_dir = None if panoptic is None else Path(panoptic)
            overlay_figure(Path(cache_path), Path(semantic), panoptic_dir, overlays, tmp[names[f"overlays {run}"]],
                           f"target val, {run}")
        overlay_files = {run: names[f"overlays {run}"] for run in runs}
        tmp[names["page"]].write_text(write_report(table, out_dir, overlay_files, figures,
                                                   [*(translation_lines or []), *gan_lines],
                                                   ablation_lines, [*selected, *(over_seeds or [])]))
