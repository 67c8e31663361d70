"""Pure maths on arrays and tensors: face geometry, alignment warps, colour transfer, blends, mask morphology."""
