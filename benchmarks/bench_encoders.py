"""What each encoder costs: parameters, FLOPs per image and training images/s of its semantic model.

    python benchmarks/bench_encoders.py                        # every encoder, FLOPs at 512x512, speed at 64x128
    python benchmarks/bench_encoders.py --encoders resnet18 mit_b0 --speed-size 512 512 --json out.json

For every encoder of :data:`selfpanoptic.models.ENCODERS` it builds the semantic model the way a
config does (``semantic.model``: ResNets under DeepLabV3+ at output stride 16, transformers under
DAFormer's head; random weights, nothing is downloaded) and reports:

* **parameters** of the encoder and of the whole model (19 classes);
* **GFLOPs per image** of one forward pass of the encoder and of the whole model at
  ``--flops-size`` (default 512x512, the size papers quote), counted by ``torch.utils.flop_counter``
  (a multiply-add is 2 FLOPs);
* **images/s** of training steps (forward, backward, AdamW step) at ``--speed-size`` with
  ``--batch`` images, after ``--warmup`` steps, on ``--device`` (default: the CPU, one thread per
  ``--threads``).

Run it on an otherwise idle machine: the speed column is the machine's, the others are not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from selfpanoptic.config import validate_config
from selfpanoptic.models import ENCODERS, TRANSFORMERS, build_semantic_model


def semantic_model(encoder: str) -> torch.nn.Module:
    """The semantic model of ``encoder`` with its family's head, built from a validated config section."""
    head = "daformer" if encoder in TRANSFORMERS else "deeplabv3plus"
    spec = validate_config({"semantic": {"model": {"backbone": encoder, "head": head}}})["semantic"]["model"]
    return build_semantic_model(spec)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def gflops(model: torch.nn.Module, size: tuple[int, int]) -> float:
    """GFLOPs of one forward pass of one image at ``size`` (eval mode, no gradients)."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, *size))
    return counter.get_total_flops() / 1e9


def images_per_second(model: torch.nn.Module, size: tuple[int, int], batch: int, steps: int, warmup: int,
                      device: torch.device) -> float:
    """Training images/s: forward, cross-entropy, backward and an AdamW step on random batches."""
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, *size, device=device)
    labels = torch.randint(0, 19, (batch, *size), device=device)
    for index in range(warmup + steps):
        if index == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            began = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--flops-size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--speed-size", type=int, nargs=2, default=[64, 128], metavar=("H", "W"),
                        help="training crop of the speed column (default 64 128, the toy's)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="measured training steps (default 5; 0: no speed column)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    size = f"{args.flops_size[0]}x{args.flops_size[1]}"
    print(f"| encoder | head | encoder params (M) | model params (M) | encoder GFLOPs at {size} | model GFLOPs at "
          f"{size} | training images/s at {args.speed_size[0]}x{args.speed_size[1]} ({args.device}) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for encoder in args.encoders:
        model = semantic_model(encoder)
        row = {"encoder": encoder, "head": model.head_name, "encoder_params": count(model.encoder),
               "model_params": count(model), "encoder_gflops": gflops(model.encoder, tuple(args.flops_size)),
               "gflops": gflops(model, tuple(args.flops_size)),
               "images_per_s": images_per_second(model, tuple(args.speed_size), args.batch, args.steps,
                                                 args.warmup, device) if args.steps else None}
        rows.append(row)
        speed = "-" if row["images_per_s"] is None else f"{row['images_per_s']:.2f}"
        print(f"| {encoder} | {row['head']} | {row['encoder_params'] / 1e6:.2f} | {row['model_params'] / 1e6:.2f} | "
              f"{row['encoder_gflops']:.1f} | {row['gflops']:.1f} | {speed} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "threads": torch.get_num_threads(),
                                         "flops_size": args.flops_size, "speed_size": args.speed_size,
                                         "batch": args.batch, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
