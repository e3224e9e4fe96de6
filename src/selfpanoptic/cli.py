"""The ``selfpanoptic`` command line: one subcommand per workflow stage, plus ``audit`` and ``config``.

Each stage's hyperparameters come from its config section, either inline as JSON
(``--settings``, what the workflow passes) or from a whole config file (``--config``, for a
person running a stage by hand). Inputs and outputs are always explicit paths.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from . import __version__
from .errors import SelfPanopticError


def _add_settings(parser: argparse.ArgumentParser, section: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", metavar="FILE", help="config file (YAML); its `%s` section is used" % section)
    group.add_argument("--settings", metavar="JSON", help="the `%s` config section as inline JSON" % section)


def _settings(args: argparse.Namespace, section: str) -> dict:
    from .config import section_settings

    return section_settings(section, args.config, args.settings)


def cmd_synthesize(args: argparse.Namespace) -> None:
    from .config import load_config, validate_config
    from .toy.domains import synthesize_toy_domains

    toy = _settings(args, "toy")
    datasets = (load_config(args.config) if args.config else validate_config({}))["datasets"]
    roots = {
        "synthia": args.synthia_root or datasets["synthia"]["root"],
        "gta": args.gta_root or datasets["gta"]["root"],
        "target": args.target_root or datasets["target"]["root"],
    }
    synthesize_toy_domains(toy, roots, workers=args.threads, progress=not args.quiet)


def cmd_index(args: argparse.Namespace) -> None:
    from .data.manifest import build_manifest
    from .atomic import atomic_write_text

    manifest = build_manifest(args.name, args.format, args.root, args.split, threads=args.threads, progress=not args.quiet)
    atomic_write_text(args.out, manifest.to_csv(index=False))
    print(f"indexed {len(manifest)} images of {args.name} -> {args.out}")


def cmd_mix(args: argparse.Namespace) -> None:
    from .data.manifest import read_manifest
    from .atomic import atomic_write_text
    from .mixing import class_statistics, mix_sources, select_images_with_all, statistics_markdown

    settings = _settings(args, "mixing")
    base, extra = read_manifest(args.base), read_manifest(args.extra)
    require, min_pixels = settings["require_all"], settings["min_pixels"]
    mixed = mix_sources(base, extra, require, min_pixels)
    selected = extra[select_images_with_all(extra, require, min_pixels)]
    parts = {
        base["dataset"].iloc[0]: base,
        extra["dataset"].iloc[0]: extra,
        f"{extra['dataset'].iloc[0]}_selected": selected,
        "mixed": mixed,
    }
    table = class_statistics(parts, min_pixels)
    atomic_write_text(args.stats, table.to_csv(index=False))
    atomic_write_text(args.stats_md, statistics_markdown(table, parts, require))
    atomic_write_text(args.out, mixed.to_csv(index=False))
    print(f"mixed source: {len(base)} + {len(selected)} of {len(extra)} images -> {args.out}")


def cmd_cache(args: argparse.Namespace) -> None:
    from .data.cache import write_cache

    path = write_cache(args.manifest, args.out, _settings(args, "data"), progress=not args.quiet)
    print(f"cached -> {path}")


def _torch_setup(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(max(1, args.threads))


def cmd_pretrain_semantic(args: argparse.Namespace) -> None:
    from .train.semantic import train_semantic

    _torch_setup(args)
    train_semantic(args.data, args.out, args.work_dir, _settings(args, "semantic"), args.device,
                   progress=not args.quiet, desc=args.desc)


def cmd_pretrain_instance(args: argparse.Namespace) -> None:
    from .train.instance import train_instance

    _torch_setup(args)
    settings = _settings(args, "instance")
    if args.group not in settings["groups"]:
        from .errors import InputError

        raise InputError(f"unknown instance group {args.group!r}; the config defines {', '.join(settings['groups'])}")
    train_instance(args.data, args.out, args.work_dir, settings, args.group, args.device,
                   progress=not args.quiet, desc=args.desc)


def _selftrain_settings(args: argparse.Namespace) -> dict:
    """The ``selftrain`` section without ``rounds``, which no single round depends on."""
    settings = _settings(args, "selftrain")
    settings.pop("rounds")
    return settings


def _instance_settings(args: argparse.Namespace) -> dict:
    from .config import section_settings

    return section_settings("instance", args.config, args.instance_settings)


def cmd_pseudo_semantic(args: argparse.Namespace) -> None:
    from .pseudo_labels import export_semantic_pseudo_labels

    _torch_setup(args)
    export_semantic_pseudo_labels(args.model, args.data, args.out, _selftrain_settings(args), args.round,
                                  args.guidance_instances, args.device, progress=not args.quiet)


def cmd_selftrain_semantic(args: argparse.Namespace) -> None:
    from .train.self_semantic import self_train_semantic

    _torch_setup(args)
    self_train_semantic(args.model, args.data, args.source, args.out, args.work_dir, _selftrain_settings(args),
                        args.round, args.pseudo_labels, args.guidance_instances, args.device,
                        progress=not args.quiet, desc=args.desc)


def cmd_selftrain_instance(args: argparse.Namespace) -> None:
    from .train.self_instance import self_train_instance

    _torch_setup(args)
    self_train_instance(args.model, args.data, args.semantic, args.source, args.out, args.work_dir,
                        _selftrain_settings(args)["instance"], _instance_settings(args)["loss"], args.group,
                        args.round, args.device, progress=not args.quiet, desc=args.desc)


def cmd_predict_semantic(args: argparse.Namespace) -> None:
    from .predict import predict_semantic

    _torch_setup(args)
    predict_semantic(args.model, args.data, args.out, args.device, progress=not args.quiet)


def cmd_predict_instance(args: argparse.Namespace) -> None:
    from .predict import predict_instance

    _torch_setup(args)
    pseudo = None
    if args.pseudo_settings:
        from .config import validate_config

        pseudo = validate_config({"selftrain": json.loads(args.pseudo_settings)}, "--pseudo-settings")["selftrain"]["instance"]
    predict_instance(args.models, args.semantic, args.data, args.out, _settings(args, "instance"), args.device,
                     progress=not args.quiet, pseudo=pseudo)


def cmd_evaluate_semantic(args: argparse.Namespace) -> None:
    from .atomic import atomic_write_text
    from .evaluate import evaluate_semantic

    table = evaluate_semantic(args.prediction, args.data, args.round, progress=not args.quiet)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table.to_string(index=False))


def cmd_evaluate_instance(args: argparse.Namespace) -> None:
    from .atomic import atomic_write_text
    from .evaluate import evaluate_instance

    settings = _settings(args, "evaluation")
    table = evaluate_instance(args.prediction, args.data, args.round, settings["instance_min_region_size"],
                              progress=not args.quiet)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table.to_string(index=False))


def cmd_fuse_panoptic(args: argparse.Namespace) -> None:
    from .panoptic_outputs import write_panoptic_outputs

    write_panoptic_outputs(args.semantic, args.instance, args.gt_json_file, args.out, _settings(args, "panoptic"),
                           progress=not args.quiet)
    print(f"panoptic and instance predictions -> {args.out}")


def cmd_evaluate_panoptic_run(args: argparse.Namespace) -> None:
    from .atomic import atomic_write_text
    from .evaluate import evaluate_panoptic

    table = evaluate_panoptic(args.prediction, args.gt_json_file, args.gt_folder, args.round)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(table[table["class"].str.startswith(("all", "things", "stuff"))].to_string(index=False))


def cmd_evaluate_panoptic(args: argparse.Namespace) -> None:
    from .atomic import atomic_write_text
    from .classes import SYNTHIA16_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
    from .metrics.panoptic import evaluate_panoptic_folders, format_table

    subset = [TRAIN_ID_TO_LABEL_ID[t] for t in SYNTHIA16_TRAIN_IDS] if args.classes == 16 else None
    result = evaluate_panoptic_folders(
        args.gt_json_file, args.gt_folder, args.prediction_json_file, args.prediction_folder, subset
    )
    print(format_table(result))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


def cmd_report(args: argparse.Namespace) -> None:
    from .report import build_report

    runs = {label: (semantic, panoptic) for label, semantic, panoptic in args.run}
    build_report(args.metrics, args.out_dir, args.data, runs, _settings(args, "report")["overlays"])
    print(f"report -> {args.out_dir}/report.md")


def cmd_summarize(args: argparse.Namespace) -> None:
    from .atomic import atomic_write_text
    from .evaluate import collect_metrics

    table = collect_metrics(args.tables)
    atomic_write_text(args.out, table.to_csv(index=False))
    headline = table[table["class"].isin(["all", "all16"])]
    print(headline.to_string(index=False))


def cmd_audit(args: argparse.Namespace) -> None:
    from .audit import audit_lines

    for i, path in enumerate(args.files):
        if i:
            print()
        for line in audit_lines(path, args.ground_truth):
            print(line)


def cmd_config(args: argparse.Namespace) -> None:
    from .config import load_config, validate_config

    config = load_config(args.file) if args.file else validate_config({})
    if args.json:
        print(json.dumps(config, indent=2, sort_keys=True))
    else:
        print(yaml.safe_dump(config, sort_keys=False), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfpanoptic", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"selfpanoptic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synthesize", help="generate the toy domains in the Synthia, GTA5 and Cityscapes formats")
    _add_settings(p, "toy")
    p.add_argument("--synthia-root", help="output folder of the synthia-like domain")
    p.add_argument("--gta-root", help="output folder of the gta-like domain")
    p.add_argument("--target-root", help="output folder of the cityscapes-like target domain")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("index", help="check a dataset and write its manifest (files, sizes, class statistics)")
    p.add_argument("--name", required=True, help="dataset name recorded in the manifest (synthia, gta, target)")
    p.add_argument("--format", required=True, choices=["synthia", "gta5", "cityscapes"])
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", help="split to index (Cityscapes only)")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("mix", help="build the mixed source: base images + extra images containing required classes")
    _add_settings(p, "mixing")
    p.add_argument("--base", required=True, help="manifest whose images are all taken (synthia)")
    p.add_argument("--extra", required=True, help="manifest filtered by mixing.require_all (gta)")
    p.add_argument("--out", required=True, help="mixed manifest CSV to write")
    p.add_argument("--stats", required=True, help="class statistics CSV to write")
    p.add_argument("--stats-md", required=True, help="class statistics page (Markdown) to write")
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser("cache", help="write a manifest's samples at the working resolution to HDF5")
    _add_settings(p, "data")
    p.add_argument("--manifest", required=True, help="manifest CSV (from index or mix)")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("pretrain-semantic", help="train the semantic DeepLab on a labelled cache (source, or target for the oracle)")
    _add_settings(p, "semantic")
    p.add_argument("--data", required=True, help="dataset cache (HDF5) with labels")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--work-dir", required=True, help="folder for the checkpoint and the per-step log")
    p.add_argument("--desc", default="pretrain semantic", help="label of the progress bar")
    p.set_defaults(func=cmd_pretrain_semantic)

    p = sub.add_parser("pretrain-instance", help="train the instance embedding model of one class group")
    _add_settings(p, "instance")
    p.add_argument("--data", required=True, help="dataset cache (HDF5) with instance labels")
    p.add_argument("--group", required=True, help="class group (a key of instance.groups)")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--work-dir", required=True, help="folder for the checkpoint and the per-step log")
    p.add_argument("--desc", default="pretrain instance", help="label of the progress bar")
    p.set_defaults(func=cmd_pretrain_instance)

    p = sub.add_parser("predict-semantic", help="semantic labels and confidence of every image of a cache")
    p.add_argument("--model", required=True, help="semantic model file")
    p.add_argument("--data", required=True, help="dataset cache (HDF5)")
    p.add_argument("--out", required=True, help="prediction HDF5 to write")
    p.set_defaults(func=cmd_predict_semantic)

    p = sub.add_parser("predict-instance", help="instances by clustering embeddings inside predicted thing masks")
    _add_settings(p, "instance")
    p.add_argument("--models", nargs="+", required=True, help="instance model files (one per class group)")
    p.add_argument("--semantic", required=True, help="semantic prediction HDF5 of the same images")
    p.add_argument("--data", required=True, help="dataset cache (HDF5)")
    p.add_argument("--out", required=True, help="prediction HDF5 to write")
    p.add_argument("--pseudo-settings", metavar="JSON",
                   help="write a round's pseudo instance masks instead: the `selftrain` section as JSON "
                        "(its instance.min_size and instance.min_compactness apply)")
    p.set_defaults(func=cmd_predict_instance)

    p = sub.add_parser("pseudo-semantic", help="a round's semantic pseudo-labels on the target train images (for audit and the prior)")
    _add_settings(p, "selftrain")
    p.add_argument("--model", required=True, help="the previous round's semantic model file")
    p.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not used")
    p.add_argument("--round", required=True, type=int, help="round whose pseudo-labels these are (1, 2, ...)")
    p.add_argument("--guidance-instances", help="the previous round's instance prediction on the same images")
    p.add_argument("--out", required=True, help="pseudo-label HDF5 to write")
    p.set_defaults(func=cmd_pseudo_semantic)

    p = sub.add_parser("selftrain-semantic", help="one round of SAC-style semantic self-training")
    _add_settings(p, "selftrain")
    p.add_argument("--model", required=True, help="the previous round's semantic model file (student and teacher start here)")
    p.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not used")
    p.add_argument("--source", help="labelled source cache for the joint source loss")
    p.add_argument("--pseudo-labels", help="the round's pseudo-label file (its class prior seeds the moving prior)")
    p.add_argument("--guidance-instances", help="the previous round's instance prediction on the target train images")
    p.add_argument("--round", required=True, type=int, help="round number (1, 2, ...)")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--work-dir", required=True, help="folder for the checkpoint and the per-step log")
    p.add_argument("--desc", default="self-train semantic", help="label of the progress bar")
    p.set_defaults(func=cmd_selftrain_semantic)

    p = sub.add_parser("selftrain-instance", help="one round of SPOCO-style instance self-training of a class group")
    _add_settings(p, "selftrain")
    p.add_argument("--instance-settings", metavar="JSON", help="the `instance` config section as inline JSON (loss margins)")
    p.add_argument("--model", required=True, help="the previous round's instance model file of the group")
    p.add_argument("--data", required=True, help="target train cache (HDF5); its labels are not used")
    p.add_argument("--semantic", required=True, help="this round's semantic prediction on the target train images")
    p.add_argument("--source", help="labelled source cache, mixed into each batch")
    p.add_argument("--group", required=True, help="class group (a key of instance.groups)")
    p.add_argument("--round", required=True, type=int, help="round number (1, 2, ...)")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--work-dir", required=True, help="folder for the checkpoint and the per-step log")
    p.add_argument("--desc", default="self-train instance", help="label of the progress bar")
    p.set_defaults(func=cmd_selftrain_instance)

    for task, func in (("semantic", cmd_evaluate_semantic), ("instance", cmd_evaluate_instance)):
        p = sub.add_parser(f"evaluate-{task}", help=f"score {task} predictions against a cache's ground truth")
        if task == "instance":
            _add_settings(p, "evaluation")
        p.add_argument("--prediction", required=True, help=f"{task} prediction HDF5")
        p.add_argument("--data", required=True, help="dataset cache (HDF5) with the ground truth")
        p.add_argument("--round", required=True, help="round label for the table (0, 1, ..., oracle)")
        p.add_argument("--out", required=True, help="metrics CSV to write")
        p.set_defaults(func=func)

    p = sub.add_parser("fuse-panoptic", help="fuse a run's predictions into official Cityscapes panoptic and instance files")
    _add_settings(p, "panoptic")
    p.add_argument("--semantic", required=True, help="semantic prediction HDF5")
    p.add_argument("--instance", required=True, help="instance prediction HDF5 of the same images")
    p.add_argument("--gt-json-file", required=True, help="panoptic ground-truth JSON (its images and sizes are used)")
    p.add_argument("--out", required=True, help="output folder (panoptic/, panoptic.json, instances/)")
    p.set_defaults(func=cmd_fuse_panoptic)

    p = sub.add_parser("evaluate-panoptic", help="PQ/SQ/RQ/PQ-dagger of a fused run as metric rows")
    p.add_argument("--prediction", required=True, help="folder written by fuse-panoptic")
    p.add_argument("--gt-json-file", required=True)
    p.add_argument("--gt-folder", required=True)
    p.add_argument("--round", required=True, help="round label for the table (0, 1, ..., oracle)")
    p.add_argument("--out", required=True, help="metrics CSV to write")
    p.set_defaults(func=cmd_evaluate_panoptic_run)

    p = sub.add_parser("evaluate", help="evaluators with the official tools' arguments")
    evaluators = p.add_subparsers(dest="evaluator", required=True, metavar="TASK")
    e = evaluators.add_parser("panoptic", help="panoptic quality, like cityscapesscripts' evalPanopticSemanticLabeling")
    e.add_argument("--gt-json-file", required=True)
    e.add_argument("--gt-folder", required=True)
    e.add_argument("--prediction-json-file", required=True)
    e.add_argument("--prediction-folder", required=True)
    e.add_argument("--classes", type=int, choices=[19, 16], default=19, help="16: the Synthia protocol (no terrain, truck, train)")
    e.add_argument("--out", help="JSON file for the results")
    e.set_defaults(func=cmd_evaluate_panoptic)

    p = sub.add_parser("report", help="report.md with tables, plots and overlays from the metrics table")
    _add_settings(p, "report")
    p.add_argument("--metrics", required=True, help="results/summary/metrics.csv")
    p.add_argument("--data", required=True, help="target val cache (HDF5) for the overlays")
    p.add_argument("--run", nargs=3, action="append", default=[], metavar=("LABEL", "SEMANTIC_H5", "PANOPTIC_DIR"),
                   help="a run to show: its label, semantic prediction and fused panoptic folder (repeatable)")
    p.add_argument("--out-dir", required=True, help="folder for report.md and the figures")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("summarize", help="collect metric tables into results/summary/metrics.csv")
    p.add_argument("--out", required=True, help="summary CSV to write")
    p.add_argument("tables", nargs="+", help="metric CSVs of the evaluation stages")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("audit", help="explain HDF5 intermediates: provenance, datasets, class histograms")
    p.add_argument("files", nargs="+", help="HDF5 files written by selfpanoptic")
    p.add_argument("--ground-truth", metavar="CACHE",
                   help="dataset cache of the same images: grade pseudo-labels and predictions against its labels")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("config", help="validate a config file and print it with every default filled in")
    p.add_argument("file", nargs="?", help="config file (YAML); none prints the defaults")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=cmd_config)

    for name, p in sub.choices.items():
        trains = name.startswith(("pretrain", "predict", "selftrain", "pseudo"))
        if name in ("synthesize", "index") or trains:
            p.add_argument("--threads", type=int, default=1, help="worker processes/threads")
        if trains:
            p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA when present")
        if name not in ("audit", "config", "summarize", "mix", "evaluate", "evaluate-panoptic", "report"):
            p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _device_claim(args: argparse.Namespace):
    """Training and prediction commands that may use CUDA hold one GPU while they run."""
    import contextlib

    if getattr(args, "device", "cpu") == "cpu":
        return contextlib.nullcontext()
    from .gpus import claim_gpu

    return claim_gpu()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _device_claim(args):
            args.func(args)
    except SelfPanopticError as err:
        print(f"selfpanoptic {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"selfpanoptic {args.command}: interrupted; no output was completed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
