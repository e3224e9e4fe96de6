"""Config input mistakes refused with one message naming the key or file: duplicate and non-string
keys, --config lists, numbers out of range, absolute globs, inference scales too small for the
models; and the GTA-only protocol applied to every experiment's runs."""

from __future__ import annotations

from functools import reduce
from pathlib import Path

import pytest

from selfpanoptic.config import MAX_SEED, guidance_mode, load_config, load_schema, overlay, smallest_scale, validate_config
from selfpanoptic.config_sources import command_line_config, read_config_file
from selfpanoptic.errors import InputError
from selfpanoptic.runs import plan_runs
from selfpanoptic.workflow import setup_workflow

ROOT = Path(__file__).resolve().parents[1]


def cl_config(values):
    return command_line_config(values, load_schema())


def refused(config: dict) -> str:
    with pytest.raises(InputError) as info:
        validate_config(config, "my.yaml")
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- duplicate keys -------------------------------------------------------------------------------

def test_a_key_written_twice_names_the_key_both_lines_and_the_file(tmp_path):
    path = write(tmp_path, "selftrain:\n  rounds: 1\noracle: false\n\nselftrain:\n  rounds: 3\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: key 'selftrain' appears twice (lines 1 and 5)\n  fix: merge the two into one"


def test_a_nested_key_written_twice_is_named_by_its_path(tmp_path):
    path = write(tmp_path, "selftrain:\n  semantic:\n    views: 2\n    views: 4\n")
    with pytest.raises(InputError, match=r"key 'selftrain.semantic.views' appears twice \(lines 3 and 4\)"):
        read_config_file(path)


def test_merge_keys_may_override_what_they_merge(tmp_path):
    path = write(tmp_path, "base: &b {rounds: 1, guidance: {from_round: 0}}\nother:\n  <<: *b\n  rounds: 2\n")
    assert read_config_file(path)["other"] == {"rounds": 2, "guidance": {"from_round": 0}}


def test_shipped_config_files_have_no_duplicate_keys():
    for path in [ROOT / "config.yaml", *sorted((ROOT / "configs").rglob("*.yaml"))]:
        read_config_file(path)


# --- keys YAML reads as booleans or numbers ----------------------------------------------------------

def test_an_experiment_named_off_must_be_quoted(tmp_path):
    path = write(tmp_path, "experiments:\n  off: {selftrain: {guidance: {from_round: 0}}}\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: key 'off' under experiments (line 2) is read by YAML as the boolean False, "
                               "not as a name\n  fix: quote it: 'off':")
    quoted = write(tmp_path, "experiments:\n  'off': {selftrain: {guidance: {from_round: 0}}}\n", "q.yaml")
    assert list(load_config(quoted)["experiments"]) == ["off"]


@pytest.mark.parametrize(("text", "key", "reading"), [
    ("instance:\n  groups:\n    yes: [car]\n", "yes", "the boolean True"),
    ("instance:\n  groups:\n    1: [car]\n", "1", "the number 1"),
])
def test_group_names_yaml_reads_as_other_types_are_refused(tmp_path, text, key, reading):
    with pytest.raises(InputError, match=f"key '{key}' under instance.groups .line 3. is read by YAML as {reading}"):
        load_config(write(tmp_path, text))


def test_non_string_keys_are_refused_in_a_config_given_as_data():
    message = refused({"experiments": {False: {"selftrain": {"guidance": {"from_round": 0}}}}})
    assert "experiments has a key that YAML read as the boolean False, not as a name" in message
    assert "fix: quote the key as it is written in the file, e.g. 'off':" in message
    assert "mixing has a key that YAML read as the number 1" in refused({"mixing": {1: "x", "sources": ["gta"]}})


# --- lists and booleans from --config ----------------------------------------------------------------

def test_command_line_text_is_typed_by_the_schema():
    # what Snakemake's parse_config gives for seeds=[0,1], seeds='"[0,1]"', oracle=false, device=cuda
    assert cl_config({"seeds": ["0", "1"]}) == {"seeds": [0, 1]}
    assert cl_config({"seeds": "[0,1]"}) == {"seeds": [0, 1]}
    assert cl_config({"oracle": "false", "device": "cuda", "results": "123"}) == {
        "oracle": False, "device": "cuda", "results": "123"}
    # maps are left as Snakemake passed them; unknown keys too (validation names them)
    assert cl_config({"resources": {"jobs_per_gpu": "4"}, "sedes": ["1"]}) == {
        "resources": {"jobs_per_gpu": "4"}, "sedes": ["1"]}
    assert "'seeds.0': -1 is less than the minimum of 0" in refused(cl_config({"seeds": ["-1"]}))


@pytest.mark.parametrize(("value", "hint"), [
    ("0,1", "write a list: --config 'seeds=[0,1]' on the command line"),
    (1, "--config 'seeds=[1]'"),
])
def test_a_seeds_value_that_is_no_list_says_how_to_write_one(value, hint):
    message = refused({"seeds": value})
    assert "config key 'seeds'" in message and hint in message and "seeds: " in message


def test_nested_lists_and_text_say_where_to_write_them():
    assert "write a list in a config file: mixing: {sources: [gta]}" in refused({"mixing": {"sources": "gta"}})
    message = refused({"resources": {"jobs_per_gpu": "4"}})
    assert "'resources.jobs_per_gpu'" in message and "it is the text '4': write it without quotes (in a --config map, " \
        "set resources.jobs_per_gpu in a config file instead)" in message


@pytest.mark.parametrize(("config", "hint"), [
    ({"semantic": {"train": {"lr": "1e-3"}}}, "YAML reads 1e-3 as text: write 1.0e-3 (or 0.001)"),
    ({"semantic": {"train": {"lr": "2.5e3"}}}, "YAML reads 2.5e3 as text: write 2.5e+3 (or 2500)"),
    ({"semantic": {"train": {"steps": "1e3"}}}, "YAML reads 1e3 as text: write 1000"),
    ({"semantic": {"train": {"steps": 10.0}}}, "'semantic.train.steps': 10.0 is not of type 'integer'; write 10"),
    ({"semantic": {"train": {"batch_size": 8.0}}}, "'semantic.train.batch_size': 8.0 is not of type 'integer'; write 8"),
])
def test_numbers_yaml_reads_as_text_or_floats_for_integers_say_how_to_write_them(config, hint):
    assert hint in refused(config)


def test_every_non_finite_number_is_refused_by_its_key_path():
    assert "config key 'experiments.x.semantic.train.lr' is inf" in refused(
        {"experiments": {"x": {"semantic": {"train": {"lr": float("inf")}}}}})
    assert "config key 'inference.scales.1' is nan" in refused({"inference": {"scales": [1.0, float("nan")]}})


def test_setup_workflow_types_the_command_line_layer(tmp_path):
    merged, layers = _toy_layers(tmp_path)
    command_line = {"seeds": ["0", "1"], "oracle": "false"}  # seeds=[0,1] oracle=false
    setup = setup_workflow(overlay(merged, command_line), layers, command_line)
    assert setup.config["seeds"] == [0, 1] and setup.config["oracle"] is False
    assert "seed1/round1" in setup.plan.runs and not any(f.endswith("oracle") for f in setup.plan.runs)


# --- bounds ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("config", "message"), [
    ({"seeds": [2**31]}, "'seeds.0': 2147483648 is greater than the maximum of 2147483647"),
    ({"semantic": {"train": {"seed": 2**63}}}, "'semantic.train.seed'"),
    ({"toy": {"seed": 2**40}}, "'toy.seed'"),
    ({"semantic": {"train": {"lr": 1e9}}}, "'semantic.train.lr': 1000000000.0 is greater than the maximum of 10"),
    ({"selftrain": {"instance": {"train": {"lr": 0}}}}, "'selftrain.instance.train.lr': 0 is less than or equal"),
    ({"translation": {"discriminator": {"lr": 50}}}, "'translation.discriminator.lr'"),
    ({"semantic": {"co_learning": {"gan": {"lr": 11}}}}, "'semantic.co_learning.gan.lr'"),
    ({"data": {"height": 100000}}, "'data.height': 100000 is greater than the maximum of 16384"),
    ({"semantic": {"train": {"crop": [64, 10**6]}}}, "'semantic.train.crop.1'"),
    ({"inference": {"crop": [10**6, 64], "stride": [32, 32]}}, "'inference.crop.0'"),
    ({"instance": {"train": {"poly_power": -1e6}}}, "'instance.train.poly_power'"),
    ({"instance": {"clustering": {"min_size": 10**20}}}, "'instance.clustering.min_size'"),
    ({"selftrain": {"rounds": 10**9}}, "'selftrain.rounds'"),
])
def test_numbers_out_of_range_are_named(config, message):
    assert message in refused(config)


def test_seed_plus_the_largest_seeds_entry_stays_a_32_bit_seed():
    validate_config({"seeds": [0, 2], "selftrain": {"semantic": {"train": {"seed": MAX_SEED - 2}}}})
    message = refused({"seeds": [0, 3], "selftrain": {"semantic": {"train": {"seed": MAX_SEED - 2}}}})
    assert "selftrain.semantic.train.seed 2147483645 plus the largest entry of seeds, 3, is 2147483648" in message
    assert "fix: lower selftrain.semantic.train.seed or the entries of seeds" in message


def test_every_integer_and_learning_rate_of_the_schema_has_a_maximum():
    missing = []

    def walk(schema, path):
        kind = schema.get("type")
        if (kind == "integer" or path.endswith(".lr")) and "maximum" not in schema:
            missing.append(path)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        for sub in [schema.get("items"), *schema.get("anyOf", [])]:
            if isinstance(sub, dict):
                walk(sub, path)

    walk(load_schema(), "")
    assert not missing


# --- globs -------------------------------------------------------------------------------------------

def images_target(**keys) -> dict:
    return {"datasets": {"target": {"format": "images", **keys}}}


def test_an_absolute_glob_is_refused_with_the_relative_one():
    message = refused(images_target(root="/data/mine", train_glob="/data/mine/train/*.png"))
    assert "datasets.target.train_glob '/data/mine/train/*.png' is an absolute path" in message
    assert "fix: write it relative to datasets.target.root (/data/mine): 'train/*.png'" in message
    message = refused(images_target(val_glob="/elsewhere/*.jpg"))
    assert "datasets.target.val_glob" in message and "e.g. 'val/**/*.png'" in message
    assert "datasets.target.val_glob is empty" in refused(images_target(val_glob=""))


@pytest.mark.parametrize("keys", [{"train_glob": "leftImg8bit/train/*/*.png"}, {"val_glob": "/abs/*.png"},
                                  {"val_labels": "gtFine/val"}, {"val_glob": "v/*.png", "val_labels": "labels"}])
def test_image_folder_keys_on_a_cityscapes_target_are_refused(keys):
    """A cityscapes target finds its files itself: a glob or labels folder given to it would be ignored."""
    message = refused({"datasets": {"target": {"format": "cityscapes", **keys}}})
    named = " and ".join(f"datasets.target.{key} ({value!r})" for key, value in keys.items())
    assert f"invalid config: {named} {'is' if len(keys) == 1 else 'are'} set, but datasets.target.format " \
           "cityscapes finds its files itself (leftImg8bit/<split>/ and gtFine/<split>/" in message
    assert f"fix: remove {' and '.join(f'datasets.target.{key}' for key in keys)}, or set datasets.target.format: " \
           "images to choose the files by glob" in message
    validate_config(images_target(**{**keys, "val_glob": "v/*.png"}))  # what the images format is for


def test_the_defaults_of_the_image_folder_keys_are_no_choice_on_a_cityscapes_target():
    defaults = validate_config({})["datasets"]["target"]
    validate_config({"datasets": {"target": {key: defaults[key] for key in ("train_glob", "val_glob", "val_labels")}}})


def test_an_image_folder_target_cannot_name_both_splits_alike():
    message = refused(images_target(train_split="all", val_split="all"))
    assert "datasets.target.train_split and datasets.target.val_split are both 'all'; with format images" in message
    assert "fix: give them different names" in message
    validate_config({"datasets": {"target": {"train_split": "val", "val_split": "val"}}})  # cityscapes: a warning


# --- inference scales --------------------------------------------------------------------------------

def test_a_scale_too_small_for_the_models_names_the_working_size_and_the_smallest_scale():
    message = refused({"inference": {"scales": [1.0, 0.01]}})
    assert "inference.scales has 0.01, which makes the 64x128 working image (data.height x data.width) 1x1" in message
    assert "32 pixels a side, the instance model's output stride" in message
    assert "fix: use scales of at least 0.5 for a 64x128 working image" in message
    validate_config({"inference": {"scales": [0.5, 0.75, 1.0]}})


def test_the_smallest_scale_follows_the_models_and_the_working_size():
    gta = {"mixing": {"sources": ["gta"]}}  # no instance model: the semantic model's stride decides
    assert smallest_scale(validate_config(gta))[:2] == (0.25, 16)
    assert smallest_scale(validate_config({**gta, "semantic": {"model": {"output_stride": 8}}}))[:2] == (0.125, 8)
    assert smallest_scale(validate_config({"data": {"height": 512, "width": 1024}}))[:2] == (0.0625, 32)
    assert "16 pixels a side, the semantic model's" in refused({**gta, "inference": {"scales": [0.2]}})
    # a working image smaller than the stride may be used whole, never shrunk
    validate_config({"data": {"height": 16, "width": 128}, "inference": {"scales": [1.0]}})
    assert "at least 1 for a 16x128" in refused({"data": {"height": 16, "width": 128}, "inference": {"scales": [0.9]}})


def test_an_experiment_with_a_too_small_scale_is_named():
    message = refused({"experiments": {"tta": {"inference": {"scales": [0.1, 1.0]}}}})
    assert "experiments.tta" in message and "inference.scales has 0.1" in message


def test_a_stage_given_its_inference_section_alone_does_not_judge_scales_against_default_data():
    from selfpanoptic.config import section_settings

    # a 512x1024 config may use 0.1 (51x102); the stage gets the inference section only
    assert section_settings("inference", None, '{"scales": [0.1, 1.0]}')["scales"] == [0.1, 1.0]


# --- a GTA-only protocol with experiments ------------------------------------------------------------

def _toy_layers(tmp_path, *files):
    """config.yaml merged with ``files`` and toy roots under ``tmp_path``, as Snakemake merges them."""
    roots = {"datasets": {name: {"root": str(tmp_path / name)} for name in ("synthia", "gta", "target")},
             "results": str(tmp_path / "results")}
    layers = [*(read_config_file(ROOT / f) for f in files), roots]
    return reduce(overlay, layers, read_config_file(ROOT / "config.yaml")), layers


@pytest.mark.parametrize(("target", "keys"), [
    ({"train_split": "val"}, "datasets.target.train_split and datasets.target.val_split are both 'val'"),
    ({"format": "images", "train_glob": "x/*.png", "val_glob": "x/*.png"},
     "datasets.target.train_glob and datasets.target.val_glob are both 'x/*.png'"),
])
def test_self_training_on_the_scored_images_is_a_warning(tmp_path, target, keys):
    """Allowed (transductive adaptation), but said at workflow start: its scores are not held-out."""
    merged, layers = _toy_layers(tmp_path)
    for name in ("synthia", "gta", "target"):
        (tmp_path / name).mkdir()
    change = {"toy": {"enabled": False}, "datasets": {"target": target}}
    notes = "\n".join(setup_workflow(overlay(merged, change), [*layers, change]).notes)
    assert f"selfpanoptic: warning: {keys}: self-training learns from the very images it is scored on" in notes
    assert "so the scores are not held-out" in notes
    assert "held-out" not in "\n".join(setup_workflow(merged, layers).notes)


def test_gta_only_protocol_plans_no_instance_work_in_any_experiment(tmp_path):
    merged, layers = _toy_layers(tmp_path, "configs/method-ablation.yaml", "configs/protocols/gta.yaml")
    setup = setup_workflow(merged, layers)
    assert not setup.instances and any("no instance labels" in note for note in setup.notes)
    # guidance is forced off, so no_guidance's runs are the main runs (the others' configs still differ)
    assert "selfpanoptic: experiment(s) no_guidance change nothing under this config" in "\n".join(setup.notes)
    assert not any("change nothing" in note for note in setup_workflow(*_toy_layers(
        tmp_path, "configs/method-ablation.yaml")).notes)
    assert {tree.label for tree in setup.plan.trees} == {"main", "no_alignment", "no_guidance", "unguarded_guidance",
                                                         "no_objectness"}
    assert {tree.seed for tree in setup.plan.trees} == {0, 1}
    for run in setup.plan.runs.values():
        guidance = run.config["selftrain"]["guidance"]
        assert guidance["from_round"] == 0 and guidance["gt_instance_fraction"] == 0, run.folder
        assert guidance_mode(guidance, run.round or 0) == "none", run.folder


def test_gta_only_protocol_forces_every_experiment_even_one_that_asks_for_guidance():
    config = validate_config({"mixing": {"sources": ["gta"]}, "seeds": [0, 1], "experiments": {
        "late": {"selftrain": {"guidance": {"from_round": 1}}},
        "own_round0": {"instance": {"train": {"steps": 5}}, "selftrain": {"guidance": {"from_round": 2}}}}})
    runs = plan_runs(config, oracle=True).runs.values()
    assert {run.experiment for run in runs} == {None, "late", "own_round0"}
    assert all(run.config["selftrain"]["guidance"]["from_round"] == 0 for run in runs)
    with pytest.raises(InputError, match="gt_instance_fraction"):
        validate_config({"mixing": {"sources": ["gta"]},
                         "experiments": {"gt": {"selftrain": {"guidance": {"gt_instance_fraction": 0.5}}}}})


def test_a_warm_up_longer_than_its_training_is_refused_naming_the_section():
    assert "selftrain.semantic.train.warmup_steps 300 exceeds selftrain.semantic.train.steps 200" in refused(
        {"selftrain": {"semantic": {"train": {"steps": 200, "warmup_steps": 300}}}})
    validate_config({"semantic": {"train": {"steps": 20, "warmup_steps": 20}}})


def test_transformer_backbones_set_the_smallest_scale_and_resnets_refuse_drop_path():
    gta = {"mixing": {"sources": ["gta"]}}
    assert smallest_scale(validate_config({**gta, "semantic": {"model": {"backbone": "mit_b0"}}}))[:2] == (0.5, 32)
    assert "semantic.model.drop_path is 0.1, but semantic.model.backbone resnet18 has no stochastic depth" in refused(
        {"semantic": {"model": {"drop_path": 0.1}}})
    validate_config({"instance": {"model": {"backbone": "mit_b0", "drop_path": 0.1}}})


# --- the results folder and ground-truth guidance without train labels -------------------------------

def test_results_naming_a_file_is_refused_before_any_job(tmp_path):
    merged, layers = _toy_layers(tmp_path)
    (tmp_path / "file").write_text("mine")
    change = {"results": str(tmp_path / "file")}
    with pytest.raises(InputError) as info:
        setup_workflow(overlay(merged, change), [*layers, change])
    assert f"results '{tmp_path / 'file'}' is an existing file, but it must be the folder" in str(info.value)
    assert "fix: set results to a folder" in str(info.value) and (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("results", ["", " ", "/", "/tmp/.."])
def test_results_empty_or_a_root_is_refused(results):
    message = refused({"results": results})
    assert "results is empty" in message or "the root of a file system" in message


@pytest.mark.parametrize(("change", "key"), [
    ({"selftrain": {"guidance": {"gt_instance_fraction": 0.5}}}, "selftrain.guidance.gt_instance_fraction"),
    ({"experiments": {"gt": {"selftrain": {"guidance": {"gt_instance_fraction": 0.5}}}}},
     "experiments.gt.selftrain.guidance.gt_instance_fraction"),
])
def test_ground_truth_guidance_without_target_train_labels_is_refused(tmp_path, change, key):
    merged, layers = _toy_layers(tmp_path)
    change = overlay({"datasets": {"target": {"format": "images"}}}, change)  # an image folder: no train labels
    with pytest.raises(InputError) as info:
        setup_workflow(overlay(merged, change), [*layers, change])
    assert f"{key} is 0.5: guidance by ground-truth instances, but the target train split has no labels" in str(info.value)
    assert f"fix: set {key}: 0" in str(info.value)
