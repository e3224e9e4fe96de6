"""The workflow configuration: one JSON schema holds every key and its default.

:func:`validate_config` fills in the defaults and turns schema violations into one
:class:`~selfpanoptic.errors.InputError` that names the key, e.g. an unknown key
``mixing.requre_all`` with the suggestion ``require_all``.
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .config_checks import (TRANSFORMER_OUTPUT_STRIDE, check_finite, check_globs, check_inference, check_key_names,
                            check_layout_keys, check_models, check_process_batches, check_results, check_scales,
                            check_splits, check_warmup, is_resnet, train_sections)
from .config_sources import read_config_file, type_hint
from .errors import InputError

SCHEMA_RESOURCE = "schemas/config.schema.yaml"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The config schema shipped with the package (also linked from workflow/schemas/)."""
    text = resources.files("selfpanoptic").joinpath(SCHEMA_RESOURCE).read_text()
    return yaml.safe_load(text)


def _is_integer(checker, instance: Any) -> bool:
    """JSON schema's ``integer``, but Python ints only: jsonschema takes 2.0 (and True is an int)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _with_defaults(validator_class):
    """A validator that also fills in ``default`` values, recursing into nested objects, and whose
    ``integer`` is a Python int (a whole float would reach the code as a float: ``seed1.0``)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults},
                                        type_checker=validator_class.TYPE_CHECKER.redefine("integer", _is_integer))


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _explain(error: jsonschema.ValidationError, schema: dict[str, Any]) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        parts = []
        for key in unknown:
            full = f"{where}.{key}" if error.absolute_path else key
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"unknown config key {full!r}{hint}; known keys here: {', '.join(known)}")
        return "; ".join(parts)
    if error.validator == "anyOf" and any(e.validator == "type" for e in error.context):
        # a number or a named choice (`rounds: auto`): explain the number's error, name the choices
        choices = [repr(e.schema["const"]) for e in error.context if "const" in e.schema]
        typed = next(e for e in error.context if e.validator == "type")
        return (f"config key {where!r}: {typed.message}{type_hint(typed)}"
                + (f" (or {' or '.join(choices)})" if choices else ""))
    return f"config key {where!r}: {error.message}{type_hint(error)}"


def validate_config(config: dict[str, Any] | None, source: str | Path = "config",
                    sections_only: bool = False) -> dict[str, Any]:
    """Validate ``config`` against the schema and return a copy with every default filled in.

    Raises :class:`InputError` naming ``source`` and listing every violation by key path.
    ``sections_only``: ``config`` holds some sections alone (a stage's inline settings), so the
    checks that weigh one section against another (``inference.scales`` against ``data``) are
    left to the validation of the whole config.
    """
    config = copy.deepcopy(config) if config is not None else {}
    if not isinstance(config, dict):
        raise InputError("the config must be a mapping of keys to values", source)
    check_key_names(config, "", source)
    check_finite(config, "", source)
    errors = sorted(_Validator(load_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_explain(error, load_schema()) for error in errors]
        raise InputError(
            "invalid config:\n  " + "\n  ".join(lines),
            source,
            "every key, its type and default is documented in workflow/schemas/config.schema.yaml",
        )
    _check_groups(config, source)
    check_models(config, source)
    check_inference(config, source)
    if not sections_only:
        _check_scales(config, source)
    check_layout_keys(config, source, load_schema())  # before check_globs: an ignored glob needs no fixing
    check_splits(config, source)
    check_globs(config, source)
    check_results(config, source)
    _check_seeds(config, source)
    check_warmup(config, source)
    check_process_batches(config, source)
    _check_protocol(config, source)
    _check_translation(config, source)
    _check_semantic_gan(config, source)
    _check_experiments(config, source)
    return config


def overlay(base: Any, change: Any) -> Any:
    """``base`` with ``change`` laid over it key by key (nested maps merged, anything else replaced),
    as Snakemake merges config files; a new object, the inputs untouched."""
    if not isinstance(base, dict) or not isinstance(change, dict):
        return copy.deepcopy(change)
    merged = copy.deepcopy(base)
    for key, value in change.items():
        merged[key] = overlay(base.get(key), value)
    return merged


PRETRAINING_SECTIONS: tuple[str, ...] = ("semantic", "instance", "inference", "panoptic", "evaluation")
"""Sections that round 0, the translated run and the oracle depend on (training, prediction,
fusion, scoring): an experiment that changes one of them gets its own pretraining runs."""

EXPERIMENT_SECTIONS: tuple[str, ...] = (*PRETRAINING_SECTIONS, "selftrain")
"""The config sections an experiment may change; the others describe the data, the shared
translator or the machine, which every run shares."""


def _check_experiment_keys(name: str, change: Any, config: dict[str, Any], source: str | Path) -> None:
    """An experiment is a map of config sections it may change, and keeps the rounds and groups."""
    where = f"experiments.{name}"
    if name == "main":
        raise InputError("invalid config: experiments.main: `main` names the main runs in the ablation table",
                         source, "give the experiment another name")
    for key in change:
        if key in EXPERIMENT_SECTIONS:
            continue
        if key in config:
            raise InputError(f"invalid config: {where}.{key}: an experiment cannot change `{key}`: the data, "
                             "the translator and the machine are shared by every run", source,
                             f"change only {', '.join(EXPERIMENT_SECTIONS)} in {where}, or run a config of its own "
                             "(--configfile, with its own `results` folder)")
        in_selftrain = key in config["selftrain"]
        close = difflib.get_close_matches(key, EXPERIMENT_SECTIONS, n=1)
        hint = (f"write it inside selftrain: {where}: {{selftrain: {{{key}: ...}}}}" if in_selftrain
                else f"did you mean {close[0]!r}?" if close else f"give sections: {', '.join(EXPERIMENT_SECTIONS)}")
        raise InputError(f"invalid config: unknown section {where}.{key}; an experiment changes config sections "
                         f"({', '.join(EXPERIMENT_SECTIONS)})", source, hint)
    selftrain = change.get("selftrain", {})
    for key in ("rounds", "selection"):
        if isinstance(selftrain, dict) and key in selftrain and selftrain[key] != config["selftrain"].get(key):
            raise InputError(f"invalid config: {where}.selftrain sets {key}; every experiment runs the rounds of "
                             f"selftrain.rounds and selftrain.selection", source, f"remove {key} from {where}.selftrain")
    groups = change.get("instance", {}).get("groups") if isinstance(change.get("instance"), dict) else None
    if groups is not None and groups != config["instance"]["groups"]:
        raise InputError(f"invalid config: {where}.instance sets groups; every run has the instance groups of "
                         "instance.groups", source, f"remove groups from {where}.instance")


def _check_experiments(config: dict[str, Any], source: str | Path) -> None:
    """Each experiment must be a valid change of :data:`EXPERIMENT_SECTIONS`; the experiments are
    filled in with the whole sections they change (so a validated config reads back the same)."""
    experiments = config.get("experiments")
    if not experiments:
        return
    base = {key: value for key, value in config.items() if key != "experiments"}
    for name, change in experiments.items():
        _check_experiment_keys(name, change, config, source)
        where = f"experiments.{name}"
        try:
            changed = validate_config(overlay(base, change), source)
        except InputError as err:
            problem = err.problem.replace("invalid config:", "invalid experiment:")
            for section in change:
                problem = problem.replace(f"'{section}.", f"'{where}.{section}.").replace(
                    f" {section}.", f" {where}.{section}.")
            raise InputError(f"{where}: {problem}", source, err.fix or f"fix {where}") from None
        experiments[name] = {section: changed[section] for section in change}


def seeded(section: Any, offset: int) -> Any:
    """A copy of a config section with ``offset`` added to the ``seed`` of every ``train`` map in it.

    ``seeded(config["semantic"], 2)["train"]["seed"]`` is the configured seed + 2; an offset of 0
    returns an equal copy (so the first entry of ``seeds``, usually 0, reruns nothing).
    """
    if not isinstance(section, dict):
        return copy.deepcopy(section)
    out = {}
    for key, value in section.items():
        if key == "train" and isinstance(value, dict) and "seed" in value:
            value = {**value, "seed": value["seed"] + offset}
        out[key] = seeded(value, offset)
    return out


def round_count(config: dict[str, Any]) -> int:
    """The number of self-training rounds a validated config trains: ``selftrain.rounds``, or
    ``selftrain.selection.max_rounds`` with ``rounds: auto``."""
    selftrain = config["selftrain"]
    return selftrain["selection"]["max_rounds"] if selftrain["rounds"] == "auto" else selftrain["rounds"]


def _check_translation(config: dict[str, Any], source: str | Path) -> None:
    """With translation on (``mixing.translated`` > 0), ``translation.labels_from`` must name a
    round that exists and has the labels asked for (round 0 has predictions, no pseudo-labels)."""
    if not config.get("mixing", {}).get("translated") or "translation" not in config:
        return
    section, rounds = config["translation"], round_count(config) if "selftrain" in config else 0
    chosen = section["labels_from"]
    if section["selftrain_from"] == "translated" and chosen not in ("round0", "ground_truth"):
        raise InputError(
            f"invalid config: translation.selftrain_from is translated, so round 1 starts from the translated "
            f"run, which would need labels from {chosen}, a round after it",
            source, "set translation.labels_from to round0 or ground_truth, or translation.selftrain_from: round0",
        )
    if chosen == "ground_truth":
        return
    index = int(chosen.removeprefix("round"))
    if index > rounds:
        raise InputError(
            f"invalid config: translation.labels_from is {chosen}, but there is no such round to take labels from "
            f"(selftrain.rounds gives rounds 0..{rounds})",
            source, f"set translation.labels_from to one of round0..round{rounds}, or raise selftrain.rounds",
        )
    if section["labels"] == "pseudo" and index == 0:
        raise InputError(
            "invalid config: translation.labels is pseudo, but round0 has no pseudo-labels (they start at round1)",
            source, "set translation.labels: prediction, or translation.labels_from: round1 or later",
        )


def _check_semantic_gan(config: dict[str, Any], source: str | Path) -> None:
    """With SemanticGAN on, its pairs must exist (the round, the translated source) and the working
    size must suit its generator's levels: checked before any job starts."""
    section = config.get("semantic_gan", {})
    if not section.get("enabled"):
        return
    rounds = round_count(config) if "selftrain" in config else 0
    index = int(section["labels_from"].removeprefix("round"))
    if index > rounds:
        raise InputError(
            f"invalid config: semantic_gan.labels_from is {section['labels_from']}, but there is no such round "
            f"(selftrain.rounds gives rounds 0..{rounds})",
            source, f"set semantic_gan.labels_from to one of round0..round{rounds}, or raise selftrain.rounds")
    if section["pairs"] == "pseudo" and section["labels"] == "pseudo" and index == 0:
        raise InputError("invalid config: semantic_gan.labels is pseudo, but round0 has no pseudo-labels", source,
                         "set semantic_gan.labels: prediction, or semantic_gan.labels_from: round1 or later")
    if section["pairs"] == "translated" and not config.get("mixing", {}).get("translated"):
        raise InputError("invalid config: semantic_gan.pairs is translated, but mixing.translated is 0: there is no "
                         "translated source", source, "set mixing.translated above 0, or choose another semantic_gan.pairs")
    levels, data = section["generator"]["levels"], config.get("data", {})
    height, width = data.get("height", 0), data.get("width", 0)
    if height % 2 ** levels or width % 2 ** levels:
        raise InputError(
            f"invalid config: the working size {height}x{width} (data.height x data.width) is not divisible by "
            f"2**semantic_gan.generator.levels = {2 ** levels}", source,
            f"lower semantic_gan.generator.levels, or make data.height and data.width multiples of {2 ** levels}")


INSTANCE_OUTPUT_STRIDE = 32
"""Output stride of the instance model's encoder (:class:`~selfpanoptic.models.unet.EmbeddingUNet`)."""


def model_stride(semantic_model: dict[str, Any], instances: bool) -> tuple[int, str]:
    """The output stride of the models that predict, and which model's it is: the semantic
    model's (``semantic_model``: a ``semantic.model`` section, or a model file's spec), or 32, the
    instance model's, when ``instances`` (instance models predict too) and it is larger."""
    stride, model = semantic_model["output_stride"], "the semantic model's (semantic.model.output_stride)"
    if not is_resnet(semantic_model["backbone"]):
        stride, model = TRANSFORMER_OUTPUT_STRIDE, f"the {semantic_model['backbone']} encoder's"
    if instances and INSTANCE_OUTPUT_STRIDE > stride:
        stride, model = INSTANCE_OUTPUT_STRIDE, "the instance model's"
    return stride, model


def smallest_scale(config: dict[str, Any]) -> tuple[float, int, str]:
    """The smallest ``inference.scales`` entry a validated config's models can run at.

    A scale must leave each side of the working image (``data.height`` x ``data.width``) at least
    the output stride of the models that predict (:func:`model_stride`), or the whole side when it
    is shorter: below that the deepest features cover less than one cell per side. Returns
    ``(scale, stride, model)``.
    """
    height, width = config["data"]["height"], config["data"]["width"]
    stride, model = model_stride(config["semantic"]["model"], has_instances(config))
    return max(min(stride, height) / height, min(stride, width) / width), stride, model


def _check_scales(config: dict[str, Any], source: str | Path) -> None:
    """Refuse ``inference.scales`` that shrink the working image below the models' output stride
    (see :func:`smallest_scale`); predictions are upsampled to their output size afterwards, so a
    full-resolution output does not change what the models see."""
    stride, model = model_stride(config["semantic"]["model"], has_instances(config))
    check_scales(config["inference"]["scales"], (config["data"]["height"], config["data"]["width"]), stride, model,
                 source)


MAX_SEED = 2**31 - 1
"""The largest training seed (``train.seed`` plus an entry of ``seeds``): a signed 32-bit integer,
which every random generator seeded from it (torch, numpy, Python) accepts."""

SEEDED_SECTIONS: tuple[str, ...] = ("semantic", "instance", "selftrain", "semantic_gan")
"""Sections whose ``train.seed`` values are offset by a tree's seed (:func:`seeded`)."""


def _check_seeds(config: dict[str, Any], source: str | Path) -> None:
    """Each run's seed (``train.seed`` + its entry of ``seeds``) must stay at most :data:`MAX_SEED`."""
    largest = max(config["seeds"])
    for section in SEEDED_SECTIONS:
        for key, train in train_sections(config[section], section):
            seed = train.get("seed", 0)
            if seed + largest > MAX_SEED:
                raise InputError(
                    f"invalid config: {key}.seed {seed} plus the largest entry of seeds, {largest}, is {seed + largest}, "
                    f"above {MAX_SEED}, the largest seed (each repeat trains with train.seed + its entry of seeds)",
                    source, f"lower {key}.seed or the entries of seeds so that their sum stays at most {MAX_SEED}",
                )


def _check_groups(config: dict[str, Any], source: str | Path) -> None:
    """Each thing class may belong to one instance group at most (their predictions are merged)."""
    owner: dict[str, str] = {}
    for group, classes in config.get("instance", {}).get("groups", {}).items():
        for name in classes:
            if name in owner:
                raise InputError(
                    f"invalid config: class {name!r} is in instance groups {owner[name]!r} and {group!r}",
                    source, "put each thing class into one group of instance.groups",
                )
            owner[name] = group


SOURCE_DATASETS: tuple[str, ...] = ("synthia", "gta")
"""The source datasets ``mixing.sources`` chooses from, in mixing order (synthia whole, then gta)."""

INSTANCE_SOURCES: frozenset[str] = frozenset({"synthia"})
"""Source datasets with instance labels: GTA5 ships semantic labels only."""


def source_datasets(config: dict[str, Any]) -> list[str]:
    """The source datasets of a validated config, in :data:`SOURCE_DATASETS` order.

    ``mixing.sources`` is a set: ``[gta, synthia]`` means the same mix as ``[synthia, gta]``.
    """
    chosen = set(config["mixing"]["sources"])
    return [name for name in SOURCE_DATASETS if name in chosen]


def datasets_in_use(config: dict[str, Any]) -> list[str]:
    """The datasets a run reads: its sources, then ``target``."""
    return [*source_datasets(config), "target"]


def has_instances(config: dict[str, Any]) -> bool:
    """Whether the run has instance stages (instance models, guidance, fusion, PQ).

    The one place that decides it: instance models train on the source's instance labels, so
    some source must have them (in the thesis' mix, Synthia's); a GTA5-only source (semantic
    labels only) makes a semantic-only run.
    """
    return bool(INSTANCE_SOURCES.intersection(source_datasets(config)))


def _check_protocol(config: dict[str, Any], source: str | Path) -> None:
    """Refuse ground-truth instance guidance in a run without instance stages: it was asked for
    explicitly (its default is 0), and silently dropping an ablation would mislabel the results."""
    if has_instances(config) or config["selftrain"]["guidance"]["gt_instance_fraction"] == 0:
        return
    raise InputError(
        f"invalid config: selftrain.guidance.gt_instance_fraction is "
        f"{config['selftrain']['guidance']['gt_instance_fraction']}, but mixing.sources "
        f"{source_datasets(config)} has no instance labels, so the run has no instance stages or guidance",
        source,
        "set selftrain.guidance.gt_instance_fraction: 0, or add synthia to mixing.sources",
    )


def protocol_config(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A validated config adjusted to its source protocol, and the note that says how (or None).

    Without instance stages (:func:`has_instances`) there are no predicted instances to guide
    self-training, so ``selftrain.guidance.from_round`` becomes 0. This is forced rather than an
    error because config.yaml turns guidance on by default; the note says what is skipped.
    """
    if has_instances(config):
        return config, None
    config = copy.deepcopy(config)
    guidance = config["selftrain"]["guidance"]
    forced = f"; selftrain.guidance.from_round {guidance['from_round']} -> 0" if guidance["from_round"] else ""
    guidance["from_round"] = 0
    sources = ", ".join(source_datasets(config))
    note = (
        f"mixing.sources is [{sources}]: GTA5 has no instance labels, so instance stages, guidance and PQ "
        f"are skipped (semantic models, mIoU and the report only{forced})"
    )
    return config, note


def replace_paths(schema: dict[str, Any] | None = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of the maps marked ``x-merge: replace`` in the schema, e.g. ``("instance", "groups")``."""
    schema = load_schema() if schema is None else schema
    found = [prefix] if schema.get("x-merge") == "replace" else []
    for name, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict):
            found += replace_paths(sub, (*prefix, name))
    return found


def _lookup(config: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return False, None
        config = config[key]
    return True, config


def compose_configs(merged: dict[str, Any], layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Undo the key-by-key merge for the maps the schema marks ``x-merge: replace``.

    ``merged``: the config as Snakemake merged it (config.yaml, then each ``--configfile``, then
    ``--config``, key by key); ``layers``: those later layers in the same order. For each
    replace-map, the value of the last layer that sets it is taken whole, so a config file's
    ``instance.groups`` replaces the default groups instead of adding to them. Returns a new dict.
    """
    composed = copy.deepcopy(merged)
    for path in replace_paths():
        for layer in reversed(layers):
            present, value = _lookup(layer, path)
            if present:
                parent = composed
                for key in path[:-1]:
                    parent = parent.setdefault(key, {})
                parent[path[-1]] = copy.deepcopy(value)
                break
    return composed


def guidance_mode(guidance: dict[str, Any], round_index: int) -> str:
    """Which instances refine round ``round_index``'s pseudo-labels, from ``selftrain.guidance``.

    ``"ground_truth"`` when ``gt_instance_fraction`` > 0 (the upper-bound ablation, every round),
    ``"predicted"`` (round r-1's predicted instances) from round ``from_round`` on (0 = never),
    else ``"none"``.
    """
    if guidance["gt_instance_fraction"] > 0:
        return "ground_truth"
    if guidance["from_round"] and round_index >= guidance["from_round"]:
        return "predicted"
    return "none"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file (:func:`read_config_file`) and validate it, defaults filled in."""
    return validate_config(read_config_file(path), path)


def section_settings(section: str, config_path: str | None, settings_json: str | None) -> dict[str, Any]:
    """A stage's config section, from inline JSON of the section, else a whole config file, else defaults.

    The workflow passes each section inline (``--<section>-settings``), so that Snakemake reruns a
    stage when, and only when, its own sections change; a person running a stage by hand passes
    the config file (``--config``). Either way the result is validated and has defaults filled in.
    """
    if settings_json:
        flag = f"--{section}-settings"
        try:
            section_value = json.loads(settings_json)
        except json.JSONDecodeError as exc:
            raise InputError(f"{flag} is not valid JSON ({exc})",
                             fix=f"write the `{section}` section as a JSON object, or pass --config FILE") from None
        return validate_config({section: section_value}, f"{flag} ({section})", sections_only=True)[section]
    if config_path:
        return load_config(config_path)[section]
    return validate_config({}, sections_only=True)[section]
