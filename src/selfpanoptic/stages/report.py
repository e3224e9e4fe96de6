"""``selfpanoptic report``: report.md with tables, plots and overlays from the metrics table."""

from __future__ import annotations

import argparse

from .common import settings, settings_parent

HELP = "report.md with tables, plots and overlays from the metrics table"
PARENTS = [settings_parent("report")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", required=True, help="results/summary/metrics.csv")
    parser.add_argument("--ablation", metavar="CSV", help="results/summary/ablation.csv: the ablation section "
                        "(one row per experiment, mean ± std over seeds) and its curve")
    parser.add_argument("--data", required=True, help="target val cache (HDF5) for the overlays")
    parser.add_argument("--run", nargs="+", action="append", default=[], metavar="LABEL SEMANTIC_H5 [PANOPTIC_DIR]",
                        help="a run to show: its label, semantic prediction and fused panoptic folder (none in a "
                        "semantic-only run; repeatable)")
    parser.add_argument("--generated", nargs=2, action="append", default=[], metavar=("LABEL", "PNG"),
                        help="a run's co-learning figure (co_learning.png beside its semantic model), linked from "
                        "the page (repeatable)")
    parser.add_argument("--translation", nargs=2, metavar=("FIDELITY_CSV", "GRID_PNG"),
                        help="label-to-image translation: the label-fidelity table and the sample grid "
                        "(label-fidelity), shown in a section of their own")
    parser.add_argument("--selected", metavar="JSON", help="results/summary/selected_round.json (select-round): "
                        "the round chosen without target labels, named in the headline")
    parser.add_argument("--semantic-gan", nargs=2, metavar=("SAMPLES_PNG", "INVERSIONS_PNG"),
                        help="SemanticGAN: the grids of samples and of inversions (sample-semantic-gan, "
                        "predict-semantic-gan --grid), shown in a section of their own")
    parser.add_argument("--semantic-gan-fidelity", metavar="CSV",
                        help="with --semantic-gan: the samples' label-fidelity table (sample-semantic-gan --table)")
    parser.add_argument("--out-dir", required=True, help="folder for report.md and the figures; it may hold other "
                        "files, but files of these names only when an earlier report wrote them")


def run(args: argparse.Namespace) -> None:
    from ..errors import InputError
    from ..report import build_report

    runs = {}
    for values in args.run:
        if len(values) not in (2, 3):
            raise InputError(f"--run takes LABEL SEMANTIC_H5 [PANOPTIC_DIR], got {len(values)} values: {values}",
                             fix="give each run its label, semantic prediction and (with instances) panoptic folder")
        label, semantic, *panoptic = values
        runs[label] = (semantic, panoptic[0] if panoptic else None)
    if args.semantic_gan_fidelity and not args.semantic_gan:
        raise InputError("--semantic-gan-fidelity was given without --semantic-gan",
                         fix="give --semantic-gan SAMPLES_PNG INVERSIONS_PNG too")
    gan = (*args.semantic_gan, args.semantic_gan_fidelity) if args.semantic_gan else None
    build_report(args.metrics, args.out_dir, args.data, runs, settings(args, "report")["overlays"],
                 dict(args.generated), tuple(args.translation) if args.translation else None, args.ablation,
                 args.selected, gan)
    print(f"report -> {args.out_dir}/report.md")
