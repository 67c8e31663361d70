"""Merging: put a trained model's face into every frame (masks, colour, blend, time, occlusion)."""
