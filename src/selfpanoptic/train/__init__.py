"""Training: the engine (per-step RNG, hash-checked resume, NaN guard) and one step function per kind of training."""
