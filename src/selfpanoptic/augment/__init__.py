"""Data augmentation for training and self-training.

:mod:`.views` holds the view geometry (random zoom-in / flip views, warps between a view and its
reference image, rotations), :mod:`.photometric` the colour noise, :mod:`.crops` the random
crops and flips of training samples. They are shared by supervised training
(:mod:`selfpanoptic.train`), SAC pseudo-labels (:mod:`selfpanoptic.pseudo`) and the losses, so
they live in a package of their own.
"""
