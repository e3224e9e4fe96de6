"""SemanticGAN's measured rows: its readouts against DeepLab, per setting and seed, with stage times.

    python benchmarks/bench_semantic_gan.py --project . --pairs pseudo --seed 0 --out gan-rows
    python benchmarks/bench_semantic_gan.py --project . --pairs target_labels --target-labels 25 --seed 1 --out gan-rows
    python benchmarks/bench_semantic_gan.py --summary gan-rows        # mean +- std over the seeds

``--project`` is a folder where the default workflow has run (``snakemake --cores all``, with
``--config 'seeds=[0,1]'`` for seed 1): its caches, round 0's prediction and model and the oracle's
model are read from ``results/`` (seed s > first: ``results/seed<s>/``). Each call runs, with the
stage commands, for one ``semantic_gan.pairs`` setting and one seed:

1. ``train-semantic-gan`` and ``sample-semantic-gan`` (label fidelity of the samples under the
   oracle: the go/no-go check);
2. ``train-gan-encoder``; ``predict-semantic-gan`` on target val with 0 steps (the encoder's
   readout) and with ``semantic_gan.inversion.steps``, each scored by ``score-semantic``;
3. with ``--pairs target_labels``: DeepLab trained on the same N labelled target images
   (``pretrain-semantic`` on a cache of the first N of the split's index), scored alike;
4. with ``--source-share P``: round 0's DeepLab retrained on the mixed source alone (run ``round0``),
   and with a share P of
   its draws taken from the generator's samples (run ``gan_samples``: ``index`` and ``cache`` of
   the sample folder, ``pretrain-semantic --sampled``), and, for comparison, with a share P taken
   from the source translated by a SPADE translator taught by the same labels (run
   ``translated``: ``train-translator``, ``translate-source``, ``cache``, ``pretrain-semantic
   --translated``; ``--pairs pseudo`` only), each scored alike.

It appends rows (setting, seed, run, mIoU, mIoU13, fidelity) to ``<out>/rows.csv`` and stage
times to ``<out>/times.csv`` (training: the seconds the model file records; the rest: wall time of
the command). A generator, encoder, fidelity table, readout score or translator already in the setting's folder is
reused; ``--summary`` prints both as mean +- std over the seeds, with round 0's
and the oracle's scores from the project's own tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

SELFPANOPTIC = [sys.executable, "-m", "selfpanoptic"]


def _run(args: list[str], cwd: Path, log: Path) -> float:
    """Run one stage command in ``cwd`` (the project: relative dataset roots), its output to ``log``; seconds."""
    start = time.perf_counter()
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(args) + "\n")
        handle.flush()
        done = subprocess.run([*SELFPANOPTIC, *args, "--quiet"] if args[0] != "cache" else [*SELFPANOPTIC, *args],
                              cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{args[0]} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def _scores(csv: Path) -> dict[str, float]:
    """mIoU over the 19 classes and over SYNTHIA's 13 of a score-semantic table."""
    table = pd.read_csv(csv)
    table = table[(table["task"] == "semantic") & (table["metric"] == "mIoU")].set_index("class")["value"]
    return {"mIoU": float(table["all"]), "mIoU13": float(table["all13"])}


def _train_seconds(model: Path) -> float:
    """The training time a model file records (the engine's, without start-up)."""
    import torch

    return float(torch.load(model, map_location="cpu", weights_only=True)["train_seconds"])


def measure(project: Path, pairs: str, target_labels: int, seed: int, first_seed: int, out: Path, threads: int,
            settings: dict, source_share: float = 0.0) -> None:
    results = project / "results"
    tree = results if seed == first_seed else results / f"seed{seed}"
    name = pairs if pairs != "target_labels" else f"target_labels_{target_labels}"
    work = (out / f"{name}_seed{seed}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    section = {**settings, "pairs": pairs, "target_labels": target_labels,
               "train": {**settings.get("train", {}), "seed": seed},
               "encoder": {**settings.get("encoder", {}),
                           "train": {**settings.get("encoder", {}).get("train", {}), "seed": seed}}}
    option = ["--semantic_gan-settings", json.dumps(section), "--threads", str(threads)]
    cache = results / "data" / "cache"
    data = ["--target", str(cache / "target_train.h5")] + {
        "pseudo": ["--labels", str(tree / "round0" / "semantic" / "pred_target_train.h5")],
        "source": ["--source", str(cache / "source.h5")], "target_labels": [],
        "translated": ["--translated", str(cache / "translated_source.h5")]}[pairs]
    gen, enc = work / "generator.pt", work / "encoder.pt"
    # a generator or encoder already in the folder (an earlier call of the same setting) is reused
    if not gen.exists():
        _run(["train-semantic-gan", *option, *data, "--out", str(gen), "--work-dir", str(work / "train_generator")],
             project, log)
    times = {"train_semantic_gan": _train_seconds(gen)}
    if not (work / "fidelity.csv").exists():
        times["sample_semantic_gan"] = _run(
            ["sample-semantic-gan", *option, "--generator", str(gen), "--oracle-model",
             str(tree / "oracle/semantic/model.pt"), "--model", str(tree / "round0/semantic/model.pt"), "--out",
             str(work / "samples"), "--grid", str(work / "samples.png"), "--table", str(work / "fidelity.csv")],
            project, log)
    fidelity = pd.read_csv(work / "fidelity.csv").set_index("class").loc["mean", "oracle_iou"]
    if not enc.exists():
        _run(["train-gan-encoder", *option, "--generator", str(gen), *data, "--out", str(enc),
              "--work-dir", str(work / "train_encoder")], project, log)
    times["train_gan_encoder"] = _train_seconds(enc)
    val = [str(cache / "target_val.h5"), "--full-resolution", str(results / "data/index/target_val.csv")]
    rows = []
    for run, steps in (("gan_encoder", 0), ("gan_inversion", None)):
        prediction = work / f"{run}_val.h5"
        if (work / f"{run}_semantic.csv").exists():  # scored by an earlier call: the same files give the same scores
            rows.append({"run": run, **_scores(work / f"{run}_semantic.csv")})
            continue
        times[f"predict_{run}"] = _run(["predict-semantic-gan", *option, "--generator", str(gen), "--encoder", str(enc),
                                        "--data", *val, *(["--steps", str(steps)] if steps is not None else []),
                                        "--out", str(prediction), "--grid", str(work / f"{run}_val.png")], project, log)
        _run(["score-semantic", "--prediction", str(prediction), "--ground-truth", str(results / "data/index/target_val.csv"),
              "--run", run, "--out", str(work / f"{run}_semantic.csv")], project, log)
        rows.append({"run": run, **_scores(work / f"{run}_semantic.csv")})
    if pairs == "target_labels":
        rows.append({"run": f"deeplab_{target_labels}", **_few_label_deeplab(project, results, work, target_labels, seed,
                                                                          threads, log, times)})
    if source_share > 0:
        rows += _extra_source_rows(project, results, tree, work, pairs, source_share, seed, threads, log, times)
    frame = pd.DataFrame(rows).assign(setting=name, seed=seed, fidelity=fidelity)
    _append(out / "rows.csv", frame[["setting", "seed", "run", "mIoU", "mIoU13", "fidelity"]])
    _append(out / "times.csv", pd.DataFrame([{"setting": name, "seed": seed, "stage": k, "seconds": round(v, 1)}
                                             for k, v in times.items()]))
    print(frame.to_string(index=False))


def _few_label_deeplab(project: Path, results: Path, work: Path, count: int, seed: int, threads: int, log: Path,
                       times: dict) -> dict[str, float]:
    """DeepLab trained on the first ``count`` target train images with their labels, scored on val."""
    index = pd.read_csv(results / "data/index/target_train.csv")
    manifest = work / f"target_train_first{count}.csv"
    index.head(count).to_csv(manifest, index=False)
    subset = work / f"target_train_first{count}.h5"
    _run(["cache", "--manifest", str(manifest), "--out", str(subset)], project, log)
    model = work / f"deeplab_{count}.pt"
    semantic = json.dumps({"train": {"seed": seed}})
    times["deeplab_train"] = _run(["pretrain-semantic", "--semantic-settings", semantic, "--data", str(subset),
                                   "--out", str(model), "--work-dir", str(work / "train_deeplab"), "--threads", str(threads)],
                                  project, log)
    prediction = work / f"deeplab_{count}_val.h5"
    _run(["predict-semantic", "--model", str(model), "--data", str(results / "data/cache/target_val.h5"), "--full-resolution",
          str(results / "data/index/target_val.csv"), "--out", str(prediction), "--threads", str(threads)], project, log)
    _run(["score-semantic", "--prediction", str(prediction), "--ground-truth", str(results / "data/index/target_val.csv"),
          "--run", "round0", "--out", str(work / "deeplab_semantic.csv")], project, log)
    return _scores(work / "deeplab_semantic.csv")


def _round0_variant(project: Path, results: Path, work: Path, run: str, extra: list[str], seed: int, threads: int,
                    log: Path, times: dict) -> dict[str, float]:
    """Round 0's DeepLab trained on the mixed source plus ``extra`` (pretrain-semantic options), scored on val."""
    model = work / f"{run}.pt"
    if not model.exists():
        _run(["pretrain-semantic", "--semantic-settings", json.dumps({"train": {"seed": seed}}), "--data",
              str(results / "data/cache/source.h5"), *extra, "--out", str(model), "--work-dir", str(work / f"train_{run}"),
              "--threads", str(threads)], project, log)
    times[f"pretrain_{run}"] = _train_seconds(model)
    prediction, index = work / f"{run}_val.h5", str(results / "data/index/target_val.csv")
    _run(["predict-semantic", "--model", str(model), "--data", str(results / "data/cache/target_val.h5"),
          "--full-resolution", index, "--out", str(prediction), "--threads", str(threads)], project, log)
    _run(["score-semantic", "--prediction", str(prediction), "--ground-truth", index, "--run", run,
          "--out", str(work / f"{run}_semantic.csv")], project, log)
    return {"run": run, **_scores(work / f"{run}_semantic.csv")}


def _extra_source_rows(project: Path, results: Path, tree: Path, work: Path, pairs: str, share: float, seed: int,
                       threads: int, log: Path, times: dict) -> list[dict]:
    """Round 0 with the generator's samples, and with the translated source, as a share of the draws."""
    manifest, cache = work / "samples_index.csv", work / "samples.h5"
    if not cache.exists():
        _run(["index", "--name", "gan_samples", "--format", "gta5", "--root", str(work / "samples"), "--out",
              str(manifest), "--quiet"], project, log)
        _run(["cache", "--manifest", str(manifest), "--out", str(cache)], project, log)
    # round 0 retrained here too: the three rows share the stage defaults and the machine
    rows = [_round0_variant(project, results, work, run, extra, seed, threads, log, times) for run, extra in (
        ("round0", []), ("gan_samples", ["--sampled", str(cache), "--sampled-share", str(share)]))]
    if pairs != "pseudo":
        return rows
    translation = json.dumps({"labels_from": "round0", "labels": "prediction", "train": {"seed": seed}})
    translator, folder = work / "translator.pt", work / "translated"
    if not translator.exists():
        _run(["train-translator", "--translation-settings", translation, "--images",
              str(results / "data/cache/target_train.h5"), "--labels",
              str(tree / "round0/semantic/pred_target_train.h5"), "--out", str(translator), "--work-dir",
              str(work / "train_translator"), "--threads", str(threads)], project, log)
    times["train_translator"] = _train_seconds(translator)
    if not (work / "translated.h5").exists():
        times["translate_source"] = _run(
            ["translate-source", "--translation-settings", translation, "--translator", str(translator), "--source",
             str(results / "data/cache/source.h5"), "--manifest", str(results / "data/mixed_source.csv"), "--out",
             str(folder), "--out-manifest", str(work / "translated.csv"), "--threads", str(threads)], project, log)
        _run(["cache", "--manifest", str(work / "translated.csv"), "--out", str(work / "translated.h5")], project, log)
    return rows + [_round0_variant(project, results, work, "translated",
                                   ["--translated", str(work / "translated.h5"), "--translated-share", str(share)],
                                   seed, threads, log, times)]


def _append(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def summary(out: Path, project: Path | None, first_seed: int) -> None:
    rows = pd.read_csv(out / "rows.csv")
    if project is not None:
        for seed in sorted(rows["seed"].unique()):
            tree = project / "results" if seed == first_seed else project / "results" / f"seed{seed}"
            for run in ("round0", "oracle"):
                csv = tree / run / "eval" / "semantic.csv"
                if csv.exists():
                    rows = pd.concat([rows, pd.DataFrame([{"setting": "deeplab", "seed": seed, "run": run, **_scores(csv)}])])
    grouped = rows.groupby(["setting", "run"], sort=False)
    table = grouped[["mIoU", "mIoU13", "fidelity"]].agg(["mean", "std"]).round(1)
    table[("n", "")] = grouped.size()
    print(table.to_string())
    times = pd.read_csv(out / "times.csv").groupby(["setting", "stage"], sort=False)["seconds"].agg(["mean", "std", "count"])
    print(times.round(1).to_string())
    print(per_class(out).to_string())


def per_class(out: Path) -> pd.DataFrame:
    """IoU per class on target val, mean over the seeds, of every run scored under ``out``: one
    column per ``setting/run`` (from the ``<run>_semantic.csv`` tables of ``<setting>_seed<s>/``)."""
    frames = []
    for table in sorted(out.glob("*_seed*/*_semantic.csv")):
        setting = table.parent.name.rsplit("_seed", 1)[0]
        frame = pd.read_csv(table)
        frame = frame[(frame["task"] == "semantic") & (frame["metric"] == "IoU")]
        frames.append(frame.assign(column=f"{setting}/{table.name.removesuffix('_semantic.csv')}"))
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames)
    return rows.pivot_table(index="class", columns="column", values="value", aggfunc="mean", sort=False).round(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="folder of a finished default workflow run")
    parser.add_argument("--pairs", choices=["pseudo", "source", "target_labels", "translated"], default="pseudo")
    parser.add_argument("--target-labels", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-seed", type=int, default=0, help="the first entry of the run's seeds (default 0)")
    parser.add_argument("--source-share", type=float, default=0.0,
                        help="also retrain round 0 with this share of draws from the samples (and the translated source)")
    parser.add_argument("--settings", default="{}", help="semantic_gan settings as JSON, laid under the setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="folder of rows.csv, times.csv and the runs")
    parser.add_argument("--summary", action="store_true", help="print mean +- std of --out's rows and stop")
    args = parser.parse_args(argv)
    if args.summary:
        summary(args.out, args.project, args.first_seed)
        return 0
    if args.project is None:
        parser.error("--project is needed to measure")
    measure(args.project.resolve(), args.pairs, args.target_labels, args.seed, args.first_seed, args.out,
            args.threads, json.loads(args.settings), args.source_share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
