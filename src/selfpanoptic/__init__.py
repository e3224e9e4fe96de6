"""SelfPanoptic: self-trained, domain-adaptive panoptic segmentation as a Snakemake workflow."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("selfpanoptic")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
