"""The separator: a U-Net with valid convolutions on magnitude spectrograms.

Maps a log-normalised mixture magnitude spectrogram with time context
``[B, F_in, T_in, 1]`` to one log-normalised magnitude estimate per source
``[B, F_out, T_out, 1]`` for the centre of the input (PAPER.md, "Separator").
Because every 3x3 convolution is valid, only certain input/output sizes are possible;
:meth:`Unet.get_padding` finds them for a desired output size.
"""

import logging
from typing import Dict, Sequence, Tuple

import tensorflow as tf

from common.UnetShapes import unet_shapes
from Models import Layers

LOGGER = logging.getLogger(__name__)

SCOPE = "separator"
OUTPUT_INITIALIZERS = {
    "nonnegative": Layers.nonnegative_glorot_uniform,
    "glorot": tf.compat.v1.glorot_uniform_initializer,
}


class Unet:
    """U-Net separator (Stoller et al. 2018), one output per source name.

    Args:
        num_layers: number of down-/up-sampling levels (paper: 4).
        num_initial_filters: filters of the first convolution (paper: 16); level ``i``
            (1-based) of the encoder has ``num_initial_filters * 2**i``.
        source_names: one output (and one 1x1 output convolution) per name, in this order.
        output_init: initialisation of the 1x1 output kernels: ``"nonnegative"`` (default,
            ``|w|`` of a Glorot draw) or ``"glorot"`` (the reference). The outputs are ReLUs
            of non-negative features, so with the reference's signed draw an output was nearly
            all zero from the first step for 5 of 12 seeds we checked, and in one run it never
            recovered (a separator that outputs silence for one source).
        compute_dtype: dtype of the encoder's and decoder's convolutions: ``"float32"`` (the
            paper), or ``"bfloat16"`` / ``"float16"`` for mixed precision (see Precision.py). The
            variables stay float32. The 1x1 output convolutions always run in float32 on the
            float32 network input and the upcast features (they are cheap), so the estimates
            that the losses see and that ``exp(y) - 1`` amplifies carry no extra output rounding.
    """

    def __init__(
        self,
        num_layers: int = 4,
        num_initial_filters: int = 16,
        source_names: Sequence[str] = ("accompaniment", "voice"),
        output_init: str = "nonnegative",
        compute_dtype: str = "float32",
    ):
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if int(num_initial_filters) < 1:
            raise ValueError(f"num_initial_filters must be at least 1, got {num_initial_filters}")
        if len(source_names) == 0 or len(set(source_names)) != len(source_names):
            raise ValueError(f"source_names must be non-empty and unique, got {list(source_names)}")
        self.num_layers = int(num_layers)
        self.num_initial_filters = int(num_initial_filters)
        self.source_names = tuple(source_names)
        if output_init not in OUTPUT_INITIALIZERS:
            raise ValueError(f"output_init={output_init!r}: use one of {sorted(OUTPUT_INITIALIZERS)}")
        self.output_init = output_init
        self.compute_dtype = Layers.float_dtype(compute_dtype, "Unet compute_dtype")

    def get_padding(self, desired_output_shape: Tuple[int, int] = (256, 64)) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """Input and output sizes of the network for at least a desired output size.

        See ``common.UnetShapes.unet_shapes`` (the typed configuration derives the same shapes
        once, ``Config.Network.input_shape`` / ``output_shape``).

        Args:
            desired_output_shape: ``(freq rows, frames)`` the output must at least cover.

        Returns:
            ``((F_in, T_in), (F_out, T_out))`` as python ints, e.g. ``((350, 158), (258, 66))``
            for ``(256, 64)`` and 4 levels. ``F_out >= desired freq``, ``T_out >= desired frames``.
        """
        input_shape, output_shape = unet_shapes(self.num_layers, desired_output_shape)
        if tuple(output_shape) != tuple(desired_output_shape):
            LOGGER.debug("U-Net output %s is larger than desired %s", output_shape, desired_output_shape)
        return input_shape, output_shape

    def get_output(self, mix_context_norm: tf.Tensor, reuse: bool) -> Dict[str, tf.Tensor]:
        """Builds the separator graph in variable scope ``"separator"``.

        Args:
            mix_context_norm: log-normalised mixture magnitudes with time context,
                ``[B, F_in, T_in, 1]`` with ``(F_in, T_in)`` from :meth:`get_padding`; ``B``
                may be ``None``.
            reuse: ``False`` to create the variables, ``True`` to share existing ones.

        Returns:
            ``{source_name: [B, F_out, T_out, 1]}`` float32 log-normalised magnitude estimates
            (non-negative, ReLU outputs), whatever the compute dtype.
        """
        self._check_input(mix_context_norm)
        mix_context_norm = Layers.cast(mix_context_norm, tf.float32)
        with tf.compat.v1.variable_scope(SCOPE, reuse=reuse):
            skips, bottleneck = self._encoder(Layers.cast(mix_context_norm, self.compute_dtype))
            features = Layers.cast(self._decoder(bottleneck, skips), tf.float32)
            # Passing the input to the last feature map lets the outputs reuse the mixture.
            features = Layers.crop_and_concat(mix_context_norm, features)
            initializer = OUTPUT_INITIALIZERS[self.output_init]()
            return {
                name: Layers.conv2d(
                    features, 1, 1, name=f"output_{name}", activation=tf.nn.relu, kernel_initializer=initializer
                )
                for name in self.source_names
            }

    def _check_input(self, x):
        shape = x.shape.as_list()
        if len(shape) != 4 or shape[3] != 1 or shape[1] is None or shape[2] is None:
            raise ValueError(f"U-Net input must be [batch, freq, frames, 1] with static freq and frames, got {x.shape}")
        for axis, size in (("frequency", shape[1]), ("time", shape[2])):
            inner = size - 2
            for _ in range(self.num_layers):
                if inner % 2:
                    raise ValueError(
                        f"U-Net input {axis} size {size} is not admissible for "
                        f"{self.num_layers} levels: use Unet.get_padding() to choose it"
                    )
                inner = inner // 2 - 2
            if inner < 2:
                raise ValueError(f"U-Net input {axis} size {size} is too small for {self.num_layers} levels")

    def _encoder(self, x):
        """Returns the skip feature maps (highest resolution first) and the bottleneck map."""
        skips = []
        x = Layers.conv2d(x, self.num_initial_filters, 3, name="enc_conv0", activation=tf.nn.relu)
        for level in range(1, self.num_layers + 1):
            skips.append(x)
            x = Layers.max_pool(x, 2, 2)
            x = Layers.conv2d(x, self.num_initial_filters * 2**level, 3, name=f"enc_conv{level}", activation=tf.nn.relu)
        return skips, x

    def _decoder(self, x, skips):
        for level in range(self.num_layers - 1, -1, -1):
            filters = self.num_initial_filters * 2**level
            x = Layers.conv2d_transpose(x, filters, 2, 2, name=f"dec_upconv{level}", activation=tf.nn.relu)
            x = Layers.crop_and_concat(skips[level], x)
            x = Layers.conv2d(x, filters, 3, name=f"dec_conv{level}", activation=tf.nn.relu)
        return x
