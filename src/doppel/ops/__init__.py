"""Pure maths on arrays and tensors: alignment warps, colour transfer, blends, mask morphology."""
