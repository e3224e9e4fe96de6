"""Evaluation metrics, pure numpy: :mod:`.semantic` (IoU, mIoU), :mod:`.instance` (Cityscapes-style AP),
:mod:`.panoptic` (PQ, SQ, RQ, PQ-dagger, the official evaluator's protocol) and :mod:`.table` (the
long metrics table). Import from the submodule you need: a stage then depends on that metric alone.
"""
