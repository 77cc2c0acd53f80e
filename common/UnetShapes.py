"""Which input and output sizes the U-Net's valid convolutions allow (no TensorFlow needed).

Every 3x3 convolution is valid (loses 2 rows and 2 columns), every pooling halves and every
up-sampling doubles, so only certain sizes fit. :func:`unet_shapes` finds the smallest
admissible pair whose output covers a desired size; ``Models.Unet.Unet.get_padding`` and the
typed configuration (Config.py, ``Network.input_shape`` / ``output_shape``) both use it.
"""

import math
from typing import Tuple

Shape = Tuple[int, int]


def unet_shapes(num_layers: int, desired_output_shape: Shape) -> Tuple[Shape, Shape]:
    """Input and output sizes of a ``num_layers``-level U-Net for at least a desired output size.

    Walks from the desired output towards the lowest-resolution feature map (each decoder
    level: +2 for the valid conv, /2 for the up-sampling), rounds that map's size up to an
    even integer and rebuilds input and output sizes from it.

    Args:
        num_layers: down-/up-sampling levels (the paper: 4), at least 1.
        desired_output_shape: ``(freq rows, frames)`` the output must at least cover.

    Returns:
        ``((F_in, T_in), (F_out, T_out))`` as python ints, e.g. ``((350, 158), (258, 66))``
        for ``(256, 64)`` and 4 levels. ``F_out >= desired freq``, ``T_out >= desired frames``.
    """
    if int(num_layers) < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    if len(desired_output_shape) != 2 or min(desired_output_shape) < 1:
        raise ValueError(f"desired_output_shape must be (freq rows, frames) >= 1, got {desired_output_shape}")
    lowest = [_lowest_resolution_size(int(num_layers), int(size)) for size in desired_output_shape]
    input_shape = tuple(_input_size(int(num_layers), size) for size in lowest)
    output_shape = tuple(_output_size(int(num_layers), size) for size in lowest)
    return input_shape, output_shape


def _lowest_resolution_size(num_layers: int, output_size: int) -> int:
    size = float(output_size)
    for _ in range(num_layers):
        size = (size + 2) / 2
    lowest = math.ceil(size)
    return lowest + lowest % 2  # even, so the lowest map can be pooled to it


def _input_size(num_layers: int, lowest: int) -> int:
    size = lowest
    for _ in range(num_layers):
        size = (size + 2) * 2  # valid 3x3 conv, then 2x2 max-pool
    return size + 2  # first valid 3x3 conv


def _output_size(num_layers: int, lowest: int) -> int:
    size = lowest
    for _ in range(num_layers):
        size = size * 2 - 2  # 2x up-sampling, then valid 3x3 conv
    return size
