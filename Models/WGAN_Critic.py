"""Wasserstein critic with one-sided gradient penalty, one per source (PAPER.md, "Critics").

A critic scores a log-normalised magnitude excerpt ``[B, 256, 64, 1]``: higher means
"looks like a real solo-source recording". It is trained to maximise
``mean D(real) - mean D(fake)`` (the Wasserstein estimate) under a gradient penalty.
"""

import collections
from typing import Callable, List, Optional

import tensorflow as tf

from Models import Layers

LEAKY_SLOPE = 0.2

CriticLoss = collections.namedtuple(
    "CriticLoss", ["loss", "wasserstein", "gradient_penalty", "real_scores", "fake_scores"]
)
CriticLoss.__doc__ = """Loss terms of one critic (all scalars except the scores).

    loss: ``-wasserstein + lam * gradient_penalty``, minimised by the critic's optimiser.
    wasserstein: ``mean D(real) - mean D(fake)``.
    gradient_penalty: ``mean over the batch of max(||grad D(interpolate)|| - 1, 0)^2``.
    real_scores, fake_scores: ``[B, 1]`` critic outputs on the real and fake batches.
"""


def _leaky_relu(x):
    return Layers.leaky_relu(x, LEAKY_SLOPE)


class Critic:
    """DCGAN-like critic network in its own variable scope.

    Calling it the first time creates the variables under ``scope``; later calls share them.

    Args:
        scope: variable scope, e.g. ``"critic_voice"``; must be unique per critic.
        num_initial_filters: filters of the first 4x4 convolution (paper: 32), doubled per
            further square-stride convolution.
        dense_units: units of the hidden dense layer (paper: 32).
        compute_dtype: dtype of the convolutions and the hidden dense layer: ``"float32"`` (the
            paper), ``"bfloat16"`` or ``"float16"`` (mixed precision, Precision.py); variables
            stay float32. The score layer (32 -> 1) always runs in float32 on the upcast hidden
            units: the scores are unbounded, and a float16 score could overflow.
    """

    def __init__(
        self, scope: str, num_initial_filters: int = 32, dense_units: int = 32, compute_dtype: str = "float32"
    ):
        if int(num_initial_filters) < 1 or int(dense_units) < 1:
            raise ValueError(
                f"Critic {scope}: num_initial_filters and dense_units must be positive, "
                f"got {num_initial_filters} and {dense_units}"
            )
        self.scope = scope
        self.num_initial_filters = int(num_initial_filters)
        self.dense_units = int(dense_units)
        self.compute_dtype = Layers.float_dtype(compute_dtype, f"Critic {scope} compute_dtype")
        self._built = False

    def __call__(self, spectrogram: tf.Tensor) -> tf.Tensor:
        """Scores a batch ``[B, F, T, 1]`` of log-normalised magnitudes; returns float32 ``[B, 1]``.

        Stride-2 4x4 "same" convolutions shrink both sides while both are larger than 4,
        then stride-(2, 1) 4x2 convolutions shrink the frequency side to 4 or less.
        """
        with tf.compat.v1.variable_scope(self.scope, reuse=self._built):
            self._built = True
            filters = self.num_initial_filters
            x = Layers.conv2d(
                Layers.cast(spectrogram, self.compute_dtype),
                filters,
                4,
                name="conv0",
                strides=2,
                padding="same",
                activation=_leaky_relu,
            )
            index = 1
            while x.shape[1] > 4 and x.shape[2] > 4:
                filters *= 2
                x = Layers.conv2d(x, filters, 4, name=f"conv{index}", strides=2, padding="same", activation=_leaky_relu)
                index += 1
            while x.shape[1] > 4:
                x = Layers.conv2d(
                    x, filters, (4, 2), name=f"conv{index}", strides=(2, 1), padding="same", activation=_leaky_relu
                )
                index += 1
            hidden = Layers.dense(Layers.flatten(x), self.dense_units, name="hidden", activation=_leaky_relu)
            return Layers.dense(Layers.cast(hidden, tf.float32), 1, name="score", use_bias=False)

    def variables(self) -> List[tf.Variable]:
        """The critic's trainable variables (those under ``<scope>/``)."""
        return tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=self.scope + "/")


def gradient_penalty(
    critic: Callable[[tf.Tensor], tf.Tensor], real: tf.Tensor, fake: tf.Tensor, seed: Optional[int] = None
) -> tf.Tensor:
    """One-sided WGAN-GP penalty at random interpolates between real and fake batches.

    The interpolates are ``real' + eps * (fake - real')`` with ``eps ~ U[0, 1]`` per example
    and ``real'`` the real batch shuffled along the batch axis.

    Args:
        critic: callable ``[B, F, T, 1] -> [B, 1]`` (its variables must already exist or be
            creatable on this call).
        real, fake: ``[B, F, T, 1]`` batches of equal shape.
        seed: op-level seed of the random ops (reproducible together with a graph seed).

    Returns:
        Scalar ``mean_b max(||d critic / d x_b|| - 1, 0)^2``, float32.

    Mixed precision: the interpolates are float32 and a 16-bit critic casts them on entry, so
    the gradient arrives here as float32 (the gradient of a cast is cast back); squares, the
    sum over the ``F * T`` values, the square root and the penalty are all float32.
    """
    batch = real.shape[0] if real.shape[0] is not None else tf.shape(real)[0]
    eps = tf.random.uniform(tf.stack([batch, 1, 1, 1]), 0.0, 1.0, seed=seed)
    real_shuffled = tf.random.shuffle(real, seed=None if seed is None else seed + 1)
    interpolates = real_shuffled + eps * (fake - real_shuffled)
    grad = tf.compat.v1.gradients(critic(interpolates), [interpolates])[0]
    grad_norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]))
    return tf.reduce_mean(tf.square(tf.maximum(grad_norm - 1.0, 0.0)))


def critic_loss(
    critic: Callable[[tf.Tensor], tf.Tensor], real: tf.Tensor, fake: tf.Tensor, lam: float, seed: Optional[int] = None
) -> CriticLoss:
    """WGAN-GP critic loss ``-(mean D(real) - mean D(fake)) + lam * GP``.

    Args:
        critic: callable ``[B, F, T, 1] -> [B, 1]``, e.g. a :class:`Critic`.
        real: log-normalised real source excerpts ``[B, F, T, 1]``.
        fake: separator outputs of the same shape (gradients flow back through them, so the
            separator's adversarial loss can reuse ``fake_scores``).
        lam: gradient penalty weight lambda (paper: 10).
        seed: op-level seed for the penalty's random ops.
    """
    real_scores = critic(real)
    fake_scores = critic(fake)
    wasserstein = tf.reduce_mean(real_scores) - tf.reduce_mean(fake_scores)
    penalty = gradient_penalty(critic, real, fake, seed)
    loss = -wasserstein + lam * penalty
    return CriticLoss(
        loss=loss, wasserstein=wasserstein, gradient_penalty=penalty, real_scores=real_scores, fake_scores=fake_scores
    )
