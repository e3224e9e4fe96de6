"""The command line reports bad input as one message with the file and the fix, no traceback."""

from __future__ import annotations

import pandas as pd

from selfpanoptic.cli import main


def test_index_of_missing_root(tmp_path, capsys):
    code = main(["index", "--name", "gta", "--format", "gta5", "--root", str(tmp_path / "gone"), "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert "gone: gta5 dataset root does not exist" in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "m.csv").exists()


def test_index_lists_every_bad_file_and_writes_nothing(gta_root, tmp_path, capsys):
    from conftest import image_of, save_grey8, save_rgb

    save_rgb(gta_root / "images" / "00002.png", image_of(2, 4))
    save_grey8(gta_root / "labels" / "00002.png", [[7, 99, 7, 7], [7, 7, 7, 7]])
    (gta_root / "images" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    save_grey8(gta_root / "labels" / "00003.png", [[7] * 4] * 2)
    out = tmp_path / "m.csv"
    code = main(["index", "--name", "gta", "--format", "gta5", "--root", str(gta_root), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "dataset 'gta' (gta5 at " in err and "2 problem(s) in 2 file(s)" in err
    assert "labels/00002.png: Cityscapes labelId(s) out of range: 99" in err
    assert "images/00003.png: cannot decode image" in err
    assert not out.exists()


def test_index_then_cache_then_audit(cityscapes_root, tmp_path, capsys):
    manifest = tmp_path / "val.csv"
    assert main(["index", "--name", "target", "--format", "cityscapes", "--root", str(cityscapes_root),
                 "--split", "val", "--out", str(manifest), "--quiet"]) == 0
    frame = pd.read_csv(manifest)
    assert frame.loc[0, "pixels_person"] == 2 and frame.loc[0, "instances_person"] == 2
    assert frame.loc[0, "instances_car"] == 1 and frame.loc[0, "pixels_ignore"] == 2
    cache = tmp_path / "val.h5"
    assert main(["cache", "--manifest", str(manifest), "--out", str(cache),
                 "--data-settings", '{"height": 4, "width": 8}', "--quiet"]) == 0
    capsys.readouterr()
    assert main(["audit", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "(1, 4, 8, 3)" in out and "stage: dataset_cache" in out


def test_config_command_names_a_typo(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("data: {hieght: 64}\n")
    assert main(["config", str(path)]) == 2
    assert "unknown config key 'data.hieght' (did you mean 'height'?)" in capsys.readouterr().err


def _options(parser) -> dict[str, str]:
    return {opt: action.help for action in parser._actions for opt in action.option_strings}


def test_every_command_names_its_options_the_same_way():
    """Settings flags are --<section>-settings; shared options are declared once (same help everywhere)."""
    import argparse

    from selfpanoptic.cli import COMMANDS, build_parser
    from selfpanoptic.config import validate_config

    sections = set(validate_config({}))
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == COMMANDS
    shared: dict[str, set[str]] = {}
    for name, parser in sub.choices.items():
        options = _options(parser)
        for opt, text in options.items():
            assert opt != "--settings", f"{name} still has the old --settings flag"
            if opt.endswith("-settings"):
                assert opt.removeprefix("--").removesuffix("-settings") in sections, (name, opt)
                assert "--config" in options, f"{name} has {opt} but no --config"
            if opt in ("--device", "--threads", "--quiet", "--config"):
                shared.setdefault(opt, set()).add(text)
        if "--device" in options:
            assert "--threads" in options and "--quiet" in options, name
    assert all(len(texts) == 1 for texts in shared.values()), shared
    assert {"--device", "--threads", "--quiet", "--config"} <= set(shared)


def test_selftrain_instance_and_pseudo_instance_take_both_sections():
    import argparse

    from selfpanoptic.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("selftrain-instance", "pseudo-instance"):
        options = _options(sub.choices[name])
        assert "--selftrain-settings" in options and "--instance-settings" in options, name
    assert "--pseudo-settings" not in _options(sub.choices["predict-instance"])


def test_commands_that_run_no_model_start_without_torch(tmp_path):
    """Every job is a new process; importing torch costs 1.5 s of each on a 2-core CPU."""
    import subprocess
    import sys

    gone = str(tmp_path / "gone")
    commands = [
        ["cache", "--manifest", gone, "--out", gone],
        ["score-semantic", "--prediction", gone, "--ground-truth", gone, "--run", "round0", "--out", gone],
        ["score-instance", "--prediction", gone, "--ground-truth", gone, "--run", "round0", "--out", gone],
        ["export-semantic", "--prediction", gone, "--manifest", gone, "--out", gone],
        ["export-instance", "--prediction", gone, "--out", gone],
        ["fuse-panoptic", "--semantic", gone, "--instance", gone, "--gt-json-file", gone, "--out", gone],
        ["audit", gone],
    ]
    script = ("import sys; from selfpanoptic.cli import main\n"
              f"for argv in {commands!r}:\n"
              "    assert main(argv) == 2, argv  # a missing input, after the command's imports\n"
              "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[]"
