"""The separator's inference path: linear magnitudes in, linear magnitudes out.

One chain serves the training graph (TrainingGraph.py) and the separator restored from a
checkpoint (evaluation/ModelFolder.py):

    mixture window [B, F_in, T_in, 1], linear magnitudes (frequency-padded, with time context)
      -> normalise:   log(1 + x)
      -> U-Net (variable scope ``Unet.SCOPE``, "separator")
      -> per-source log-normalised estimates [B, F_out, T_out, 1]
      -> denormalise: exp(y) - 1, linear estimates [B, F_out, T_out, 1]

The estimates cover the centre ``(F_out, T_out)`` of the input window; :func:`crop` cuts that
span out of a window (the mixture part the estimates must add up to, or a summary image).
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from Models import Layers
from Models.Unet import SCOPE, Unet


def normalise(magnitudes: tf.Tensor) -> tf.Tensor:
    """Linear magnitudes to the network's log-normalised scale ``log(1 + x)`` (same shape)."""
    return tf.math.log1p(magnitudes)


def denormalise(normalised: tf.Tensor) -> tf.Tensor:
    """Log-normalised magnitudes back to linear ``exp(y) - 1``, the inverse of :func:`normalise`."""
    return tf.math.expm1(normalised)


def crop(window: tf.Tensor, shape: Tuple[int, int]) -> tf.Tensor:
    """Centre crop ``[B, F, T, C] -> [B, shape[0], shape[1], C]`` (``B`` may be unknown).

    An odd difference leaves the extra row or frame at the end, as the U-Net aligns its
    output with its input. Raises ValueError if ``shape`` is larger than the window.
    """
    return Layers.crop(window, int(shape[0]), int(shape[1]))


def estimate(separator: Unet, mixture: tf.Tensor, reuse: bool) -> Dict[str, tf.Tensor]:
    """The separator's log-normalised estimates of a linear mixture window.

    Args:
        separator: the U-Net (its ``get_padding`` gives the admissible window sizes).
        mixture: linear mixture magnitudes ``[B, F_in, T_in, 1]``.
        reuse: ``False`` creates the separator's variables, ``True`` shares existing ones.

    Returns:
        ``{source: [B, F_out, T_out, 1]}`` float32 log-normalised magnitudes (>= 0).
    """
    return separator.get_output(normalise(mixture), reuse=reuse)


@dataclasses.dataclass(frozen=True)
class InferenceGraph:
    """Placeholder and outputs of :func:`build_inference` (any batch size ``n``)."""

    mixture: tf.Tensor  # placeholder [n, F_in, T_in, 1], linear magnitudes
    normalised: Dict[str, tf.Tensor]  # log-normalised estimates [n, F_out, T_out, 1]
    estimates: Dict[str, tf.Tensor]  # linear estimates exp(y) - 1 [n, F_out, T_out, 1]


def build_inference(separator: Unet, input_shape: Tuple[int, int], reuse: bool, name: str) -> InferenceGraph:
    """The whole inference chain on a new placeholder of any batch size, in the default graph.

    Args:
        separator: the U-Net.
        input_shape: ``(F_in, T_in)`` from ``separator.get_padding``, e.g. ``(350, 158)``.
        reuse: ``False`` creates the separator's variables (a graph for inference only),
            ``True`` shares those of a training graph.
        name: the placeholder's name.
    """
    mixture = tf.compat.v1.placeholder(tf.float32, [None, int(input_shape[0]), int(input_shape[1]), 1], name=name)
    normalised = estimate(separator, mixture, reuse)
    return InferenceGraph(
        mixture=mixture,
        normalised=normalised,
        estimates={source: denormalise(output) for source, output in normalised.items()},
    )


def separator_variables(graph: Optional[tf.Graph] = None, trainable_only: bool = True) -> List[tf.Variable]:
    """The separator's variables (scope ``separator/``) of ``graph`` (default: the default graph).

    ``trainable_only=False`` also lists non-trainable variables of that scope (what a checkpoint
    restore needs); optimiser slots live in other scopes (``separator_solver/...``) either way.
    """
    graph = graph or tf.compat.v1.get_default_graph()
    keys = tf.compat.v1.GraphKeys
    collection = keys.TRAINABLE_VARIABLES if trainable_only else keys.GLOBAL_VARIABLES
    # The trailing slash keeps "separator" from matching "separator_solver".
    return graph.get_collection(collection, scope=SCOPE + "/")
