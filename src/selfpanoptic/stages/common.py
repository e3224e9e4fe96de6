"""Options shared by the stage commands, declared once, and the helpers that read them.

- :func:`settings_parent`: ``--config FILE`` plus one ``--<section>-settings JSON`` per config
  section a stage uses (what the workflow passes, so that a stage reruns exactly when its own
  sections change);
- :data:`DEVICE`, :data:`THREADS`, :data:`QUIET`: parent parsers of the compute options;
- :func:`add_training_outputs`, :func:`add_evaluation_io`: the arguments every training command
  and every evaluator of an HDF5 prediction takes; :func:`validation_data`: the val cache a training
  command validates on;
- :func:`torch_setup`: threads and device (``cuda`` is CUDA or an error), :func:`progress`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..config import section_settings


def settings_parent(*sections: str) -> argparse.ArgumentParser:
    """A parent parser with ``--config`` and ``--<section>-settings`` for each of ``sections``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (default: the config schema's defaults)")
    group.add_argument("--config", metavar="FILE", help="config file (YAML); the sections named below are read from it")
    for section in sections:
        group.add_argument(f"--{section}-settings", metavar="JSON", dest=f"{section}_settings",
                           help=f"the `{section}` config section as inline JSON (overrides --config)")
    return parent


def settings(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The validated config section ``section`` (defaults filled in) from ``args``."""
    inline = getattr(args, f"{section}_settings")
    return section_settings(section, args.config, inline)


def selftrain_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``selftrain`` section without ``rounds``, which no single round depends on."""
    section = settings(args, "selftrain")
    section.pop("rounds")
    return section


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1, else argparse's usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _threads() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--threads", type=positive_int, default=1, help="worker processes/threads (default 1)")
    return parent


def _device() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CUDA when present, else CPU (default auto)")
    return parent


def _quiet() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--quiet", action="store_true", help="no progress bar")
    return parent


THREADS, DEVICE, QUIET = _threads(), _device(), _quiet()
COMPUTE = [THREADS, DEVICE, QUIET]
"""The parents of every command that runs a model: threads, device, quiet."""


def torch_setup(args: argparse.Namespace):
    """Set torch's CPU threads from ``--threads`` and return the device of ``--device``.

    ``cuda`` means CUDA or an error before any work (a node with a broken driver must not train
    for days on the CPU); ``auto`` falls back to the CPU and says so in the log. In a rank of a
    data-parallel job (``--processes``, torchrun) it also joins the process group: NCCL and the
    rank's own GPU on CUDA, gloo on the CPU, the threads shared out among the ranks.
    """
    import torch

    from ..errors import InputError
    from ..launch import started_as_rank

    torch.set_num_threads(max(1, args.threads))
    kind = "cpu"
    if args.device != "cpu" and torch.cuda.is_available():
        # fixed crop sizes: let cuDNN pick the fastest convolution algorithms once
        torch.backends.cudnn.benchmark = True
        kind = "cuda"
    elif args.device == "cuda":
        raise InputError(
            "--device cuda was asked for, but CUDA is not available (torch.cuda.is_available() is False: "
            "no GPU on this node, no CUDA build of torch, or a driver problem)",
            fix="run on a GPU node with a working driver, or set device: auto (config) / --device auto to use the CPU",
        )
    device = torch.device(kind)
    if started_as_rank():
        from .. import distributed

        device = distributed.start(kind, args.threads)
        if not distributed.is_main():
            # rank 0 prints the progress and the log lines; errors and tracebacks still go to stderr
            sys.stdout = open(os.devnull, "w")
    if args.device == "auto" and kind == "cpu":
        print("device auto: no CUDA device available, running on the CPU", flush=True)
    return device


def progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def add_training_outputs(parser: argparse.ArgumentParser, desc: str) -> None:
    """``--out``, ``--work-dir``, ``--desc``, ``--data-workers`` and ``--val-data``: what every
    training command writes, and how it runs."""
    parser.add_argument("--out", required=True, help="model file to write")
    parser.add_argument("--work-dir", required=True, help="folder for the checkpoint and the per-step log")
    parser.add_argument("--desc", default=desc, help=f"label of the progress bar (default {desc!r})")
    parser.add_argument("--data-workers", type=int, default=4, metavar="N",
                        help="on CUDA: processes preparing batches ahead of the GPU, at most the usable CPUs "
                        "minus one (default 4; CPU runs prepare batches in the main process)")
    parser.add_argument("--processes", type=positive_int, default=1, metavar="N",
                        help="data-parallel training on N processes of this machine: one GPU each on CUDA (NCCL, "
                        "SyncBatchNorm), gloo on the CPU; batch sizes stay global (default 1; config "
                        "resources.train.gpu / processes)")
    parser.add_argument("--val-data", metavar="CACHE",
                        help="target val cache (HDF5) to validate on every train.validate_every steps "
                        "(its first train.validate_images images); without it, no validation")


def validation_data(args: argparse.Namespace, train_settings, stack):
    """The val cache of ``--val-data``, opened in ``stack``, when ``train_settings`` (a
    :class:`~selfpanoptic.settings.TrainSettings`) asks for validation; else None."""
    if not train_settings.validate_every:
        return None
    if not args.val_data:
        print(f"{args.desc}: train.validate_every is {train_settings.validate_every} but no --val-data was "
              "given: no validation", flush=True)
        return None
    from ..intermediates import DatasetCache

    return stack.enter_context(DatasetCache.open(args.val_data, preload_mb=0))


def data_workers(args: argparse.Namespace, device) -> int:
    """Batch-preparing worker processes for a training command: ``--data-workers`` on CUDA, none on the CPU.

    On the CPU the workers would take cores from the model's own threads.
    """
    return args.data_workers if device.type == "cuda" else 0  # train() caps it at the usable CPUs


def add_evaluation_io(parser: argparse.ArgumentParser, task: str) -> None:
    """``--prediction``, ``--ground-truth``, ``--run``, ``--out``: what every evaluator of an
    HDF5 prediction takes. Scores are computed at the ground truth's own resolution."""
    parser.add_argument("--prediction", required=True,
                        help=f"{task} prediction HDF5, at the ground truth's resolution (predict with --full-resolution)")
    parser.add_argument("--ground-truth", required=True,
                        help="index manifest CSV of the split (results/data/index/target_<split>.csv): "
                             "its label files are the ground truth, read at their own resolution")
    parser.add_argument("--run", required=True, help="run name for the table (round0, round1, ..., translated, gan_samples, gan_encoder, gan_inversion, oracle)")
    parser.add_argument("--out", required=True, help="metrics CSV to write")


def add_translated_source(parser: argparse.ArgumentParser) -> None:
    """``--translated CACHE`` and ``--translated-share P``: source images rendered in the target's look."""
    parser.add_argument("--translated", metavar="CACHE",
                        help="translated source cache (HDF5): the --data images rendered in the target's look, "
                        "same order (translate-source, then cache)")
    parser.add_argument("--translated-share", type=float, default=0.0, metavar="P",
                        help="share of draws that take the translated image (mixing.translated; default 0)")


def _given_with_share(args: argparse.Namespace, option: str, what: str, key: str) -> bool:
    """Whether the cache of ``--<option>`` is given; refuses ``--<option>-share`` above 0 without it,
    or outside (0, 1] with it (``what``: the cache in words; ``key``: the config key of the share)."""
    from ..errors import InputError

    path, share = getattr(args, option), getattr(args, f"{option}_share")
    if not path:
        if share > 0:
            raise InputError(f"--{option}-share is {share} but no --{option} cache was given",
                             fix=f"give {what} with --{option}, or leave the share at 0")
        return False
    if not 0 < share <= 1:
        raise InputError(f"--{option}-share must be in (0, 1] with --{option}, not {share}", path,
                         f"set {key} between 0 and 1")
    return True


def translated_images(args: argparse.Namespace, cache, stack):
    """The :class:`~selfpanoptic.train.data.TranslatedImages` of ``--translated``, opened in ``stack``, or None."""
    if not _given_with_share(args, "translated", "the translated source cache", "mixing.translated"):
        return None
    from ..intermediates import DatasetCache
    from ..train.data import TranslatedImages

    translated = stack.enter_context(DatasetCache.open(
        args.translated, cache.image_ids, cache.path,
        "translate the same source cache (rerun translate_source and cache_dataset for translated_source)"))
    return TranslatedImages(translated, args.translated_share)


def add_sampled_pairs(parser: argparse.ArgumentParser) -> None:
    """``--sampled CACHE`` and ``--sampled-share P``: labelled pairs of a generator, drawn in place of source pairs."""
    parser.add_argument("--sampled", metavar="CACHE",
                        help="cache (HDF5) of labelled sampled pairs at the --data working size: a SemanticGAN "
                        "generator's samples (sample-semantic-gan, index --format gta5, then cache)")
    parser.add_argument("--sampled-share", type=float, default=0.0, metavar="P",
                        help="share of draws that take a random sampled pair (semantic_gan.source_share; default 0)")


def sampled_pairs(args: argparse.Namespace, cache, stack):
    """The :class:`~selfpanoptic.train.data.SampledPairs` of ``--sampled``, opened in ``stack``, or None."""
    from ..errors import InputError

    if not _given_with_share(args, "sampled", "the sampled pairs' cache", "semantic_gan.source_share"):
        return None
    from ..intermediates import DatasetCache
    from ..train.data import SampledPairs

    sampled = stack.enter_context(DatasetCache.open(args.sampled))
    if (sampled.height, sampled.width) != (cache.height, cache.width):
        raise InputError(f"the sampled pairs are {sampled.height}x{sampled.width}, the training data "
                         f"{cache.height}x{cache.width} ({args.data})", args.sampled,
                         "sample with a generator of the data's working size, or cache both at one data.height/width")
    if not sampled.labelled:
        raise InputError("the sampled pairs' cache has no labels", args.sampled,
                         "cache the sampled dataset with its label maps (sample-semantic-gan writes them)")
    return SampledPairs(sampled, args.sampled_share)


def check_inference_scales(args: argparse.Namespace, scales, size: tuple[int, int], size_from: str,
                           semantic_spec: dict[str, Any] | None, instances: bool, larger: str) -> None:
    """Refuse ``inference.scales`` that shrink the ``size`` working image below the output stride of
    the models that predict, as the validation of a whole config does: a stage's inline settings are
    validated alone, and its working size comes from a cache or a model file, so neither is checked
    against the other there. ``semantic_spec``: the semantic model's spec (None: only instance
    models predict); ``instances``: instance models predict too; ``size_from`` says where the size
    comes from, ``larger`` how to raise it."""
    from ..config import INSTANCE_OUTPUT_STRIDE, model_stride
    from ..config_checks import check_scales

    if semantic_spec is None:
        stride, model = INSTANCE_OUTPUT_STRIDE, "the instance model's"
    else:
        stride, model = model_stride(semantic_spec, instances)
    source = "--inference-settings (inference)" if args.inference_settings else args.config or "the default inference"
    check_scales(scales, size, stride, model, source, size_from, larger)
