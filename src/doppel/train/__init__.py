"""Training: the per-pair face model (architectures, data, losses, loop, checkpoints, export)."""
