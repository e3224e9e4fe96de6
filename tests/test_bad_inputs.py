"""Bad inputs a new user gives: each ends with one message naming the file or key and the fix,
exit code 2, no traceback, and nothing written. Bugs (anything else) keep their traceback."""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from selfpanoptic.cli import main
from selfpanoptic.config import validate_config
from conftest import random_cityscapes_split
from test_training import tiny_cache

CPU = ["--device", "cpu", "--threads", "1", "--quiet"]
TINY = {"steps": 1, "batch_size": 2, "crop": [32, 64], "checkpoint_every": 100}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny cache, models of each kind, a prediction, and assorted broken files."""
    root = tmp_path_factory.mktemp("bad")
    out = {"root": root, "cache": tiny_cache(root / "cache.h5"), "other_cache": tiny_cache(root / "other.h5", count=4)}
    config = validate_config({"semantic": {"train": TINY}, "instance": {"train": TINY, "groups": {"vehicles": ["car"]}}})
    out["semantic"], out["instance"] = root / "semantic.pt", root / "instance.pt"
    assert main(["pretrain-semantic", "--data", str(out["cache"]), "--out", str(out["semantic"]), "--work-dir",
                 str(root / "w1"), "--semantic-settings", json.dumps(config["semantic"]), *CPU]) == 0
    assert main(["pretrain-instance", "--data", str(out["cache"]), "--out", str(out["instance"]), "--work-dir",
                 str(root / "w2"), "--instance-settings", json.dumps(config["instance"]), "--group", "vehicles", *CPU]) == 0
    out["prediction"] = root / "pred.h5"
    assert main(["predict-semantic", "--model", str(out["semantic"]), "--data", str(out["cache"]),
                 "--out", str(out["prediction"]), *CPU]) == 0
    random_cityscapes_split(root / "cityscapes", "val", 2, 32, 64)
    out["manifest"], out["val_cache"], out["val_prediction"] = root / "val.csv", root / "val.h5", root / "val_pred.h5"
    assert main(["index", "--name", "target", "--format", "cityscapes", "--root", str(root / "cityscapes"),
                 "--split", "val", "--out", str(out["manifest"]), "--quiet"]) == 0
    assert main(["cache", "--manifest", str(out["manifest"]), "--out", str(out["val_cache"]), "--data-settings",
                 json.dumps(validate_config({"data": {"height": 16, "width": 32}})["data"]), "--quiet"]) == 0
    assert main(["predict-semantic", "--model", str(out["semantic"]), "--data", str(out["val_cache"]),
                 "--out", str(out["val_prediction"]), *CPU]) == 0  # at the working resolution, not the truth's
    out["text"] = root / "notes.txt"
    out["text"].write_text("not a model\n")
    out["pickled"] = root / "pickled.pt"
    torch.save({"kind": "semantic", "spec": argparse.Namespace(x=1), "state_dict": {}}, out["pickled"])
    out["tensor_only"] = root / "tensor.pt"
    torch.save({"weights": torch.zeros(2)}, out["tensor_only"])
    out["incomplete"] = root / "incomplete.h5"
    with h5py.File(out["incomplete"], "w") as h5:
        h5.attrs["complete"] = False
    out["broken_yaml"] = root / "broken.yaml"
    out["broken_yaml"].write_text("semantic: [\n")
    out["no_groups"] = root / "no-groups.yaml"
    out["no_groups"].write_text("instance: {groups: {}}\n")
    out["file"] = root / "a-file"
    out["file"].write_text("x")
    out["run"] = root / "results" / "round0"
    (out["run"] / "semantic").mkdir(parents=True)
    shutil.copy(out["semantic"], out["run"] / "semantic" / "model.pt")
    out["images"] = root / "images"
    out["images"].mkdir()
    for name, size in (("a.png", (32, 64)), ("b.png", (32, 64)), ("c.png", (24, 64))):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(out["images"] / name)
    out["float_images"] = root / "float-images"
    out["float_images"].mkdir()
    Image.fromarray(np.zeros((8, 8), np.float32)).save(out["float_images"] / "depth.tif")  # not a photo format
    out["mine"] = root / "my-folder"
    out["mine"].mkdir()
    (out["mine"] / "thesis.tex").write_text("a user's file")
    for name, text in CONFIGS.items():
        (root / name).write_text(text)
    for name, text in METRICS.items():
        (root / name).write_text("run,task,metric,class,value\n" + text)
    predictions = {"no_mask": "masks/gone.png 26 0.9", "label_999": "m.png 999 0.9", "label_26.5": "m.png 26.5 0.9",
                   "score_nan": "m.png 26 nan"}
    for name, line in predictions.items():
        out[name] = root / name
        out[name].mkdir(exist_ok=True)
        for row in out["manifest"].read_text().splitlines()[1:]:
            (out[name] / f"{row.split(',')[4]}.txt").write_text(line + "\n")
    out["empty_model"] = root / "empty.pt"
    out["empty_model"].write_bytes(b"")
    out["binary_yaml"] = root / "binary.yaml"
    out["binary_yaml"].write_bytes(b"\xff\xfe\x00b")
    out["big_images"] = root / "big-images"
    out["big_images"].mkdir()
    (out["big_images"] / "huge.png").write_bytes(png_header(15000, 15000))
    return out


def png_header(width: int, height: int) -> bytes:
    """An RGB PNG of ``width`` x ``height`` without pixel data: enough for Pillow to judge its size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def cases(f: dict[str, Path], tmp: Path) -> list[tuple[list[str], str, Path | None]]:
    """(argv, text the message must contain, output that must not appear)."""
    o = tmp / "out.h5"
    predict = ["predict-semantic", "--data", str(f["cache"]), "--out", str(o), *CPU]
    inst = ["predict-instance", "--semantic", str(f["prediction"]), "--data", str(f["cache"]), "--out", str(o), *CPU]
    evaluate = ["score-semantic", "--run", "round0", "--out", str(tmp / "e.csv"), "--quiet"]
    sem_settings = validate_config({"semantic": {"train": TINY}})["semantic"]
    bad_init = dict(sem_settings, model=dict(sem_settings["model"], init=str(f["text"])))
    wrong_init = dict(sem_settings, model=dict(sem_settings["model"], init=str(f["instance"])))
    pretrain = ["pretrain-semantic", "--data", str(f["cache"]), "--out", str(tmp / "m.pt"), "--work-dir", str(tmp / "w"), *CPU]
    return [
        (predict + ["--model", str(f["text"])], "notes.txt: not a readable torch model file", o),
        (predict + ["--model", str(f["pickled"])], "pickled Python objects", o),
        (predict + ["--model", str(f["tensor_only"])], "not a selfpanoptic model file", o),
        (predict + ["--model", str(f["instance"])], "is an instance model, but this command needs a semantic model", o),
        (predict + ["--model", str(tmp / "gone.pt")], "gone.pt: model file does not exist", o),
        (inst + ["--models", str(f["semantic"])], "needs an instance model", o),
        (inst + ["--models", str(f["instance"]), str(f["instance"])], "class 'car' is predicted by this model and by", o),
        (pretrain + ["--semantic-settings", json.dumps(bad_init)],
         "notes.txt: not a readable torch model or weight file (not a torch save file, or truncated) (the config's "
         "semantic.model.init)", tmp / "m.pt"),
        (pretrain + ["--semantic-settings", json.dumps(wrong_init)], "needs a semantic model", tmp / "m.pt"),
        (pretrain + ["--semantic-settings", '{"train": {"stpes": 3}}'], "'semantic.train.stpes' (did you mean 'steps'?)",
         tmp / "m.pt"),
        (pretrain + ["--semantic-settings", "{not json"], "--semantic-settings is not valid JSON", tmp / "m.pt"),
        (["predict-semantic", "--model", str(f["semantic"]), "--data", str(tmp / "none.h5"), "--out", str(o), *CPU],
         "none.h5: file does not exist", o),
        (["predict-semantic", "--model", str(f["semantic"]), "--data", str(f["text"]), "--out", str(o), *CPU],
         "notes.txt: not a readable HDF5 file", o),
        (["predict-semantic", "--model", str(f["semantic"]), "--data", str(f["incomplete"]), "--out", str(o), *CPU],
         "not completely written", o),
        (["predict-semantic", "--model", str(f["semantic"]), "--data", str(f["prediction"]), "--out", str(o), *CPU],
         "pred.h5: is a 'semantic_prediction' file where a 'dataset_cache' file", o),
        (evaluate + ["--prediction", str(f["prediction"]), "--ground-truth", str(f["manifest"])],
         "does not list the same images", tmp / "e.csv"),
        (evaluate + ["--prediction", str(f["cache"]), "--ground-truth", str(f["manifest"])], "'dataset_cache' file where a",
         tmp / "e.csv"),
        (evaluate + ["--prediction", str(f["val_prediction"]), "--ground-truth", str(f["manifest"])],
         "the prediction is 32x16 but the ground truth is 64x32", tmp / "e.csv"),
        (["export-semantic", "--prediction", str(f["prediction"]), "--manifest", str(f["manifest"]),
          "--out", str(tmp / "ids")], "does not list the same images", tmp / "ids"),
        (["evaluate", "semantic", "--gt-folder", str(tmp / "nowhere"), "--prediction-folder", str(tmp)],
         "nowhere: ground-truth folder does not exist", None),
        (["pretrain-instance", "--data", str(f["cache"]), "--out", str(tmp / "m.pt"), "--work-dir", str(tmp / "w"),
          "--group", "bikes", *CPU], "unknown instance group 'bikes'", tmp / "m.pt"),
        (["index", "--name", "gta", "--format", "gta5", "--root", str(tmp / "nowhere"), "--out", str(tmp / "i.csv")],
         "gta5 dataset root does not exist", tmp / "i.csv"),
        (["summarize", "--out", str(tmp / "s.csv"), str(tmp / "missing.csv")], "missing.csv", tmp / "s.csv"),
        (["mix", "--base", str(tmp / "b.csv"), "--extra", str(tmp / "x.csv"), "--out", str(tmp / "m.csv"),
          "--stats", str(tmp / "s.csv"), "--stats-md", str(tmp / "s.md")], "b.csv", tmp / "m.csv"),
        (["predict-semantic", "--model", str(f["semantic"]), "--data", str(f["cache"]),
          "--out", str(f["file"] / "below" / "p.h5"), *CPU], "a-file", None),
        (["fuse-panoptic", "--semantic", str(f["prediction"]), "--instance", str(f["prediction"]),
          "--gt-json-file", str(tmp / "gt.json"), "--out", str(tmp / "pan")], "gt.json: panoptic ground-truth JSON does not exist",
         tmp / "pan"),
        (["config", str(tmp / "nope.yaml")], "nope.yaml: config file does not exist", None),
        (["config", str(f["broken_yaml"])], "broken.yaml: config file is not valid YAML: expected the node content", None),
        (["audit", str(f["text"])], "notes.txt: not a readable HDF5 file", None),
        (["audit", str(f["root"])], "is a folder, not an HDF5 file", None),
        (["summarize", "--out", str(tmp / "s.csv"), str(f["broken_yaml"])], "broken.yaml: not a metrics table", tmp / "s.csv"),
        (["summarize", "--out", str(tmp / "s.csv"), str(f["semantic"])], "semantic.pt: not a metrics table", tmp / "s.csv"),
        (["report", "--metrics", str(f["broken_yaml"]), "--data", str(f["cache"]), "--out-dir", str(tmp / "rep")],
         "not a metrics table", tmp / "rep"),
        (["evaluate", "panoptic", "--gt-json-file", str(f["text"]), "--gt-folder", str(tmp), "--prediction-json-file",
          str(f["text"]), "--prediction-folder", str(tmp)], "notes.txt: not a JSON file", None),
        (["score-panoptic", "--prediction", str(f["text"]), "--gt-json-file", str(f["text"]), "--gt-folder", str(tmp),
          "--run", "round0", "--out", str(tmp / "e.csv")], "--prediction must be the folder fuse-panoptic writes", tmp / "e.csv"),
        (["config", str(f["no_groups"])], "config key 'instance.groups'", None),
        (predict + ["--model", str(f["empty_model"])], "empty.pt: not a readable torch model file (EOFError", o),
        (["cache", "--manifest", str(f["cache"]), "--out", str(tmp / "c.h5"), "--quiet"],
         "cache.h5: not a dataset manifest: not a CSV file", tmp / "c.h5"),
        (["config", str(f["binary_yaml"])], "binary.yaml: config file is not UTF-8 text (byte 0xff at position 0)", None),
        *instance_cases(f),
        *metrics_cases(f, tmp),
        *output_cases(f, tmp),
        *config_cases(f),
    ]


def instance_cases(f: dict[str, Path]) -> list[tuple[list[str], str, Path | None]]:
    """``evaluate instance`` of prediction txt lines with a bad labelId or score."""
    gt = ["evaluate", "instance", "--gt-folder", str(f["root"] / "cityscapes" / "gtFine" / "val"), "--prediction-folder"]
    return [
        (gt + [str(f["label_999"])], ".txt:1: the labelId 999 is not a Cityscapes labelId (0..33", None),
        (gt + [str(f["label_26.5"])], ".txt:1: the labelId '26.5' is not an integer Cityscapes labelId", None),
        (gt + [str(f["score_nan"])], ".txt:1: the score 'nan' is not a finite number", None),
    ]


METRICS = {
    "metrics.csv": "round0,semantic,mIoU,all,40.0\noracle,semantic,mIoU,all,60.0\n",
    "run-name.csv": "round0,semantic,mIoU,all,40.0\nbest,semantic,mIoU,all,41.0\n",
    "text-value.csv": "round0,semantic,mIoU,all,forty\n",
    "twice.csv": "round0,semantic,mIoU,all,40.0\nround0,semantic,mIoU,all,41.0\n",
}
"""Metrics tables (after the header) that summarize and report cannot order, plot or tell apart."""


def metrics_cases(f: dict[str, Path], tmp: Path) -> list[tuple[list[str], str, Path | None]]:
    """``summarize`` and ``report`` of the tables of :data:`METRICS`."""
    summarize = ["summarize", "--out", str(tmp / "s.csv")]
    return [
        (summarize + [str(f["root"] / "run-name.csv")],
         "run-name.csv: line 3 of the metrics table: run 'best' is not round<N> (round0, round1, ...), translated, gan_samples, "
         "gan_encoder, gan_inversion or oracle",
         tmp / "s.csv"),
        (summarize + [str(f["root"] / "text-value.csv")], "line 2 of the metrics table: value 'forty' is not a number",
         tmp / "s.csv"),
        (summarize + [str(f["root"] / "metrics.csv")] * 2, "scores run round0, task semantic, metric mIoU, class all "
         "again", tmp / "s.csv"),
        (["report", "--metrics", str(f["root"] / "twice.csv"), "--data", str(f["cache"]), "--out-dir", str(tmp / "rep")],
         "twice.csv: lines 2 and 3 of the metrics table both score run round0, task semantic", tmp / "rep"),
    ]


CONFIGS = {
    "twice.yaml": "selftrain:\n  rounds: 3\noracle: false\nselftrain:\n  rounds: 1\n",
    "off.yaml": "experiments:\n  off:\n    selftrain: {guidance: {from_round: 0}}\n",
    "lr.yaml": "semantic: {train: {lr: 1.0e+38}}\n",
    "seed.yaml": "instance: {train: {seed: 18446744073709551616}}\n",
    "glob.yaml": "datasets: {target: {format: images, root: /data/city, train_glob: /data/city/train/*.png}}\n",
    "scales.yaml": "inference: {scales: [1.0, 0.01]}\n",
    "nan-scale.yaml": "inference: {scales: [.nan]}\n",
    "nan-lr.yaml": "semantic: {train: {lr: .nan}}\n",
    "inf-fraction.yaml": "selftrain: {guidance: {gt_instance_fraction: .inf}}\n",
    "big-scale.yaml": "inference: {scales: [1.0, 16.0]}\n",
    "float-rounds.yaml": "selftrain: {rounds: 2.0}\n",
    "float-seeds.yaml": "seeds: [0, 1.0]\n",
    "exponent.yaml": "semantic: {train: {lr: 1e-3}}\n",
    "quoted.yaml": "selftrain: {rounds: '2'}\n",
    "empty-results.yaml": "results: ''\n",
    "root-results.yaml": "results: /\n",
}
"""Config files that YAML or the schema alone would let through."""


def config_cases(f: dict[str, Path]) -> list[tuple[list[str], str, Path | None]]:
    """``selfpanoptic config FILE`` on each of :data:`CONFIGS`: the message the workflow also gives."""
    expected = {
        "twice.yaml": "key 'selftrain' appears twice (lines 1 and 4)",
        "off.yaml": "key 'off' under experiments (line 2) is read by YAML as the boolean False",
        "lr.yaml": "config key 'semantic.train.lr': 1e+38 is greater than the maximum",
        "seed.yaml": "config key 'instance.train.seed': 18446744073709551616 is greater than the maximum",
        "glob.yaml": "datasets.target.train_glob '/data/city/train/*.png' is an absolute path",
        "scales.yaml": "inference.scales has 0.01, which makes the",
        "nan-scale.yaml": "config key 'inference.scales.0' is nan, not a finite number",
        "nan-lr.yaml": "config key 'semantic.train.lr' is nan, not a finite number",
        "inf-fraction.yaml": "config key 'selftrain.guidance.gt_instance_fraction' is inf, not a finite number",
        "big-scale.yaml": "config key 'inference.scales.1': 16.0 is greater than the maximum of 8",
        "float-rounds.yaml": "config key 'selftrain.rounds': 2.0 is not of type 'integer'; write 2",
        "float-seeds.yaml": "config key 'seeds.1': 1.0 is not of type 'integer'; write 1",
        "exponent.yaml": "config key 'semantic.train.lr': '1e-3' is not of type 'number'; YAML reads 1e-3 as text: "
                         "write 1.0e-3 (or 0.001)",
        "quoted.yaml": "it is the text '2': write it without quotes (in a --config map, set selftrain.rounds in a config",
        "empty-results.yaml": "invalid config: results is empty",
        "root-results.yaml": "invalid config: results is '/', the root of a file system",
    }
    return [(["config", str(f["root"] / name)], text, None) for name, text in expected.items()]


def output_cases(f: dict[str, Path], tmp: Path) -> list[tuple[list[str], str, Path | None]]:
    """Outputs that would replace an input or a user's files, runs and images that are not what they seem."""
    panoptic = ["predict-panoptic", "--run", str(f["run"]), "--images", str(f["images"]), *CPU]
    semantic = ["predict-semantic", "--model", str(f["semantic"]), "--data", str(f["cache"]), *CPU]
    gt = f["root"] / "cityscapes" / "gtFine" / "val"
    gt_file = sorted(gt.rglob("*_gtFine_labelIds.png"))[0]
    return [
        (panoptic + ["--out", str(f["mine"])], "--out exists and holds files selfpanoptic did not write (thesis.tex)", None),
        (panoptic + ["--out", str(f["run"])], "--out is also the input --run", None),
        (panoptic + ["--out", str(f["root"] / "results")], "--out holds the input --run", None),
        (panoptic + ["--out", str(f["images"])], "--out is also the input --images", None),
        (["predict-panoptic", "--run", str(f["root"] / "results"), "--images", str(f["images"]), "--out",
          str(tmp / "p"), *CPU], "is a folder of runs (round0), not a run", tmp / "p"),
        (["predict-panoptic", "--run", str(f["run"]), "--images", str(f["float_images"]), "--out", str(tmp / "p"), *CPU],
         "no images (*.png, *.jpg, *.jpeg)", tmp / "p"),
        (semantic + ["--out", str(f["mine"])], "--out is an existing folder, but this output is a file", None),
        (semantic + ["--out", str(f["cache"])], "--out is also the input --data", None),
        (["export-semantic", "--prediction", str(f["val_prediction"]), "--manifest", str(f["manifest"]),
          "--out", str(f["mine"])], "--out exists and holds files selfpanoptic did not write", None),
        (["evaluate", "instance", "--gt-folder", str(f["root"] / "cityscapes" / "gtFine" / "val"),
          "--prediction-folder", str(f["no_mask"])], "masks/gone.png, does not exist", None),
        (["index", "--name", "target", "--format", "images", "--root", str(f["images"]), "--split", "val",
          "--one-size", "--quiet", "--out", str(tmp / "i.csv")], "differ in size: 64x32 (2 images, e.g. a.png), 64x24", tmp / "i.csv"),
        (["evaluate", "semantic", "--gt-folder", str(gt), "--prediction-folder", str(f["images"]), "--out", str(gt_file)],
         f"--out would replace {gt_file}, a file of the input --gt-folder", None),
        (["index", "--name", "target", "--format", "images", "--root", str(f["images"]), "--quiet",
          "--out", str(f["images"] / "a.png")], "a.png, a file of the input --root", None),
        (["index", "--name", "target", "--format", "images", "--root", str(f["images"]), "--glob",
          str(f["images"] / "*.png"), "--out", str(tmp / "i.csv")], "is an absolute path; it is matched below --root",
         tmp / "i.csv"),
        (panoptic + ["--out", ""], "--out is empty", None),
        (["predict-panoptic", "--run", str(f["run"]), "--images", "", "--out", str(tmp / "p"), *CPU], "--images is empty",
         tmp / "p"),
        (["predict-panoptic", "--run", str(f["run"] / "semantic" / "model.pt"), "--images", str(f["images"]), "--out",
          str(tmp / "p"), *CPU], f"--run is a file, but it must be a run folder (semantic/model.pt inside)\n  fix: give "
         f"its run folder: --run {f['run']}", tmp / "p"),
        (["evaluate", "semantic", "--gt-folder", str(gt_file), "--prediction-folder", str(f["images"])],
         "the ground-truth folder is a file, not a folder", None),
        (["predict-panoptic", "--run", str(f["run"]), "--images", str(f["big_images"]), "--out", str(tmp / "p"), *CPU],
         "huge.png: image too large: 225000000 pixels, over the limit of", tmp / "p"),
    ]


N_CASES = 81


def test_the_matrix_has_every_case(files, tmp_path):
    assert len(cases(files, tmp_path)) == N_CASES


@pytest.mark.parametrize("index", range(N_CASES))
def test_bad_input_gives_one_message_and_writes_nothing(files, tmp_path, capsys, index):
    argv, expected, output = cases(files, tmp_path)[index]
    before = _snapshot(files["root"])
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith(f"selfpanoptic {argv[0]}: error: "), err
    assert expected in err, err
    if output is not None:
        assert not output.exists()
    assert not list(tmp_path.rglob("*.tmp-*")), "a temporary file was left behind"
    assert _snapshot(files["root"]) == before, "an input or a user's file was changed or deleted"


def _snapshot(folder: Path) -> dict[str, float]:
    """Every file below ``folder`` and its modification time."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("threads", ["0", "-3"])
def test_threads_below_one_are_an_argparse_error(tmp_path, capsys, threads):
    with pytest.raises(SystemExit) as info:
        main(["index", "--name", "t", "--format", "images", "--root", str(tmp_path), "--out", str(tmp_path / "i.csv"),
              "--threads", threads])
    assert info.value.code == 2
    assert f"selfpanoptic index: error: argument --threads: must be at least 1, got {threads}" in capsys.readouterr().err
    assert not (tmp_path / "i.csv").exists()


def test_cuda_asked_for_without_cuda_stops_before_any_work(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SELFPANOPTIC_GPU_LOCK_DIR", str(tmp_path / "locks"))
    out = tmp_path / "p.h5"
    code = main(["predict-semantic", "--model", str(files["semantic"]), "--data", str(files["cache"]), "--out", str(out),
                 "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--device cuda was asked for, but CUDA is not available" in err and "Traceback" not in err
    assert not out.exists()


def test_truncated_checkpoint_is_ignored_with_a_warning(files, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    settings = validate_config({"semantic": {"train": TINY}})["semantic"]
    assert main(["pretrain-semantic", "--data", str(files["cache"]), "--out", str(tmp_path / "m.pt"), "--work-dir", str(work),
                 "--semantic-settings", json.dumps(settings), *CPU]) == 0
    out = capsys.readouterr().out
    assert f"ignoring the unreadable checkpoint {work / 'checkpoint.pt'}" in out
    assert (tmp_path / "m.pt").is_file()


def test_a_bug_keeps_its_traceback(monkeypatch):
    import selfpanoptic.stages.summarize as summarize

    def broken(args):
        raise OSError(5, "an I/O error on an internal file", "/internal/thing")

    monkeypatch.setattr(summarize, "run", broken)
    with pytest.raises(OSError, match="internal"):
        main(["summarize", "--out", "/tmp/never.csv", "x.csv"])


def test_predict_commands_check_inline_scales_against_the_cache(files, tmp_path, capsys):
    """Inline inference settings are validated alone; the scales are judged against the cache's
    32x64 working size and the output stride of the models that predict."""
    scales = ["--inference-settings", json.dumps({"scales": [0.25, 1.0]})]
    assert main(["predict-semantic", "--model", str(files["semantic"]), "--data", str(files["cache"]),
                 "--out", str(tmp_path / "sem.h5"), *scales, *CPU]) == 2
    err = capsys.readouterr().err
    assert "inference.scales has 0.25, which makes the 32x64 working image (the cache " in err
    assert "semantic model's (semantic.model.output_stride)" in err and "Traceback" not in err
    assert main(["predict-instance", "--models", str(files["instance"]), "--semantic", str(files["prediction"]),
                 "--data", str(files["cache"]), "--out", str(tmp_path / "inst.h5"), *scales, *CPU]) == 2
    err = capsys.readouterr().err
    assert "under 32 pixels a side, the instance model's output stride" in err and err.count("error:") == 1
    assert not (tmp_path / "sem.h5").exists() and not (tmp_path / "inst.h5").exists()


def test_an_image_folder_link_to_no_file_is_refused(tmp_path, capsys):
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(root / "a.png")
    (root / "b.png").symlink_to(tmp_path / "gone.png")
    out = tmp_path / "index.csv"
    assert main(["index", "--name", "target", "--format", "images", "--root", str(root), "--split", "train",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "1 image link(s) matched by '**/*.png' point to no file: b.png -> " in err and "gone.png" in err
    assert "fix: restore the files the links point to, or remove the links" in err
    assert not out.exists() and "Traceback" not in err
