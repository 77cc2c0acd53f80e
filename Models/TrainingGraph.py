"""The complete training graph: placeholders, separator, critics, loss terms and train ops.

Loss terms carry the paper's names (PAPER.md, "Separator losses"):

- ``supervised_loss``: sum over sources of ``mean((s_hat - s)^2)`` in log-normalised space;
- ``L_u = -sum_k mean D_k(s_hat_k,u)``: the adversarial loss on unpaired mixtures;
- ``additive_penalty P = mean((m_u - sum_k s_hat_k,u)^2)`` in linear magnitude space;
- ``unsupervised_loss = alpha * L_u + beta * P``;
- ``separator_loss = supervised_loss + unsupervised_loss`` (semi-supervised graph only;
  equal to ``supervised_loss`` in the supervised graph).

The batch generators deliver linear magnitudes; the graph normalises them itself, along the
inference path of Inference.py (``log(1 + x)`` -> U-Net -> ``exp(y) - 1``).

The graph is built from a checked ``ModelConfig`` (common/Config.py): its ``precision``
(``"float32"``, the default, or ``"mixed"``) chooses the networks' compute dtype through
Precision.py; every loss term above is float32 either way.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from common import Precision
from common.Config import ModelConfig
from Models import Inference
from Models.Unet import Unet
from Models.WGAN_Critic import Critic, critic_loss


def critic_scope(source: str) -> str:
    """Variable scope of the critic for ``source``, e.g. ``"critic_voice"``."""
    return f"critic_{source}"


def _scope_variables(scope: str, graph: Optional[tf.Graph] = None) -> List[tf.Variable]:
    # The trailing slash keeps "separator" from matching "separator_solver".
    graph = graph or tf.compat.v1.get_default_graph()
    return graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=scope + "/")


@dataclasses.dataclass
class TrainingGraph:
    """Tensors and ops of one training graph (see :func:`build_training_graph`).

    Shapes: ``B`` = ``model_config.training.batch_size``, ``(F_in, T_in)`` =
    ``input_shape``, ``(F_out, T_out)`` = ``output_shape``, ``(F_c, T_c)`` = ``critic_shape``.
    Dicts are keyed by source name in ``sources`` order. Fields only used in the
    semi-supervised graph are ``None`` / empty dicts in the supervised graph.
    """

    model_config: ModelConfig
    policy: Precision.Policy  # the compute dtype chosen for model_config.precision
    semi_supervised: bool
    sources: tuple
    input_shape: tuple  # (F_in, T_in) of the separator input
    output_shape: tuple  # (F_out, T_out) of the separator output
    critic_shape: tuple  # (num_freqs, num_frames) critic excerpt size
    # Paired batch (linear magnitudes)
    mixture: tf.Tensor  # placeholder [B, F_in, T_in, 1]
    source_targets: Dict[str, tf.Tensor]  # placeholders [B, F_out, T_out, 1]
    separator_outputs: Dict[str, tf.Tensor]  # log-normalised estimates [B, F_out, T_out, 1]
    supervised_loss: tf.Tensor
    # Unpaired batches (linear magnitudes), semi-supervised graph only
    unpaired_mixture: Optional[tf.Tensor]  # placeholder [B, F_in, T_in, 1]
    unpaired_sources: Dict[str, tf.Tensor]  # placeholders [B, F_out, T_out, 1] (real solo sources)
    unpaired_separator_outputs: Dict[str, tf.Tensor]  # log-normalised [B, F_out, T_out, 1]
    critic_real_inputs: Dict[str, tf.Tensor]  # log-normalised crops [B, F_c, T_c, 1]
    critic_fake_inputs: Dict[str, tf.Tensor]
    L_u: Optional[tf.Tensor]
    additive_penalty: Optional[tf.Tensor]
    unsupervised_loss: Optional[tf.Tensor]
    separator_loss: tf.Tensor
    critic_losses: Dict[str, tf.Tensor]
    wasserstein: Dict[str, tf.Tensor]
    gradient_penalty: Dict[str, tf.Tensor]
    critic_real_scores: Dict[str, tf.Tensor]  # [B, 1]
    critic_fake_scores: Dict[str, tf.Tensor]  # [B, 1]
    # Training control (non-trainable variables, saved in checkpoints)
    global_step: tf.Variable  # int64, incremented by separator_train_op
    sup_sep_lr: tf.Variable
    unsup_sep_lr: tf.Variable
    disc_lr: tf.Variable
    separator_train_op: tf.Operation
    critic_train_ops: Dict[str, tf.Operation]
    all_critics_train_op: Optional[tf.Operation]  # all critic steps on one shared feed
    # bool scalars, read after the update: fetching one runs its train op, then checks that
    # every weight it changed is finite (an elementwise test, the same on every CPU).
    separator_weights_finite: tf.Tensor
    critic_weights_finite: Optional[tf.Tensor]
    # Scalars to log (experiment/Summaries.py tags them): separator_scalars need only the separator
    # step's feed (paired batch + unpaired mixture); critic_scalars also need the unpaired sources.
    separator_scalars: Dict[str, tf.Tensor]
    critic_scalars: Dict[str, tf.Tensor]  # "critic_loss/<source>", "wasserstein/<source>", ...
    # Prediction and validation on any batch size (shares the separator's weights), linear magnitudes
    inference_input: tf.Tensor  # placeholder [None, F_in, T_in, 1]
    inference_outputs: Dict[str, tf.Tensor]  # expm1 of the separator outputs [None, F_out, T_out, 1]
    validation_targets: Dict[str, tf.Tensor]  # placeholders [None, F_out, T_out, 1]
    validation_frames: tf.Tensor  # int32 [None]: real output frames per example (default: all)
    validation_loss: tf.Tensor  # supervised_loss of inference_input vs validation_targets, real frames only

    def feed_paired(self, batch: Sequence[np.ndarray]) -> dict:
        """Feed dict for a paired batch ``[mixture, source_1, ...]`` (PairedBatchGenerator order).

        Mixture ``[B, F_in, T_in, 1]`` and sources ``[B, F_out, T_out, 1]``, linear magnitudes.
        """
        return self._feed_mixture_and_sources(batch, self.mixture, self.source_targets, "feed_paired")

    def feed_validation(self, batch: Sequence[np.ndarray], valid_frames: Optional[np.ndarray] = None) -> dict:
        """Feed dict for ``validation_loss``: like :meth:`feed_paired`, but any batch size.

        ``valid_frames`` (int [B], optional): how many leading output frames of each example lie
        inside its song; the loss leaves the others (zero padding past a song's end) out.
        """
        feed = self._feed_mixture_and_sources(batch, self.inference_input, self.validation_targets, "feed_validation")
        if valid_frames is not None:
            feed[self.validation_frames] = np.asarray(valid_frames, np.int32)
        return feed

    def _feed_mixture_and_sources(self, batch, mixture, targets, caller):
        if len(batch) != 1 + len(self.sources):
            raise ValueError(
                f"{caller}: expected a mixture and {len(self.sources)} source batches "
                f"({', '.join(self.sources)}), got {len(batch)} arrays"
            )
        feed = {mixture: batch[0]}
        feed.update({targets[name]: array for name, array in zip(self.sources, batch[1:])})
        return feed

    def feed_unpaired(
        self, mix_batch: np.ndarray, source_batches: Union[None, Sequence[np.ndarray], Mapping[str, np.ndarray]] = None
    ) -> dict:
        """Feed dict for unpaired batches (semi-supervised graph only).

        Args:
            mix_batch: unpaired mixtures with context ``[B, F_in, T_in, 1]``, linear magnitudes.
            source_batches: real solo-source excerpts ``[B, F_out, T_out, 1]``: a sequence in
                ``sources`` order, a dict ``source -> batch`` (a subset is fine, e.g. for one
                critic's step) or ``None`` (the separator step needs only the mixture).
        """
        if not self.semi_supervised:
            raise RuntimeError(
                "feed_unpaired: this is a supervised training graph without unpaired inputs; "
                "build it with semi_supervised=True"
            )
        feed = {self.unpaired_mixture: mix_batch}
        if source_batches is None:
            return feed
        if not isinstance(source_batches, Mapping):
            if len(source_batches) != len(self.sources):
                raise ValueError(
                    f"feed_unpaired: expected {len(self.sources)} source batches "
                    f"({', '.join(self.sources)}), got {len(source_batches)}"
                )
            source_batches = dict(zip(self.sources, source_batches))
        unknown = set(source_batches) - set(self.sources)
        if unknown:
            raise ValueError(f"feed_unpaired: unknown source(s) {sorted(unknown)}; sources are {list(self.sources)}")
        feed.update({self.unpaired_sources[name]: array for name, array in source_batches.items()})
        return feed

    def separator_variables(self) -> List[tf.Variable]:
        """Trainable separator variables (scope ``separator/``) of this graph."""
        return Inference.separator_variables(self.mixture.graph)

    def critic_variables(self, source: str) -> List[tf.Variable]:
        """Trainable variables of the critic for ``source`` (scope ``critic_<source>/``)."""
        if source not in self.sources:
            raise ValueError(f"critic_variables: unknown source {source!r}; sources are {list(self.sources)}")
        return _scope_variables(critic_scope(source), self.mixture.graph)


def _placeholder(batch_size, shape, name):
    return tf.compat.v1.placeholder(tf.float32, [batch_size, shape[0], shape[1], 1], name=name)


def _supervised_loss(estimates, targets_norm):
    """Sum over sources of the mean squared error in log-normalised magnitudes."""
    return tf.add_n([tf.reduce_mean(tf.square(estimates[name] - targets_norm[name])) for name in estimates])


def _masked_supervised_loss(estimates, targets_norm, frames, output_shape):
    """:func:`_supervised_loss` over the first ``frames[b]`` output frames of each example only.

    Equal to it when every frame is real: each source's squared error is averaged over the
    real (frequency, frame) cells of the batch.
    """
    mask = tf.sequence_mask(frames, output_shape[1], dtype=tf.float32)[:, tf.newaxis, :, tf.newaxis]
    cells = tf.reduce_sum(mask) * output_shape[0]
    return tf.add_n(
        [tf.reduce_sum(mask * tf.square(estimates[name] - targets_norm[name])) / cells for name in estimates]
    )


def _additive_penalty(mixture_linear, estimates_norm):
    """``mean((m - sum_k s_hat_k)^2)`` with everything in linear magnitudes.

    Float32 in mixed precision too: the U-Net's estimates are float32, and ``exp(y) - 1``,
    which turns an error ``d`` of ``y`` into ``exp(y) * d``, is taken in float32.
    """
    estimate_sum = tf.add_n([Inference.denormalise(estimate) for estimate in estimates_norm.values()])
    return tf.reduce_mean(tf.square(mixture_linear - estimate_sum), name="additive_penalty")


def _control_variables(schedule):
    def scalar(name, value):
        return tf.compat.v1.get_variable(
            name, [], dtype=tf.float32, trainable=False, initializer=tf.compat.v1.constant_initializer(float(value))
        )

    global_step = tf.compat.v1.get_variable(
        "global_step", [], dtype=tf.int64, trainable=False, initializer=tf.compat.v1.zeros_initializer()
    )
    return (
        global_step,
        scalar("sup_sep_lr", schedule.init_sup_sep_lr),
        scalar("unsup_sep_lr", schedule.init_unsup_sep_lr),
        scalar("disc_lr", schedule.init_disc_lr),
    )


# TensorFlow's Adam defaults, which the paper's script uses for every optimiser.
DEFAULT_ADAM_BETAS = (0.9, 0.999)


def _minimize(loss, learning_rate, var_list, scope, global_step=None, betas=DEFAULT_ADAM_BETAS, loss_scaling=False):
    # Each optimiser in its own scope so its Adam accumulators have distinct, readable names.
    with tf.compat.v1.variable_scope(scope):
        beta1, beta2 = (float(beta) for beta in betas)
        optimiser = tf.compat.v1.train.AdamOptimizer(learning_rate=learning_rate, beta1=beta1, beta2=beta2)
        if loss_scaling:  # float16 gradients (Precision.py)
            return Precision.loss_scaled_minimize(optimiser, loss, var_list, global_step=global_step)
        return optimiser.minimize(loss, var_list=var_list, global_step=global_step)


def _all_finite_after(update, variables, name):
    """bool scalar: every element of ``variables`` is finite once ``update`` has run."""
    with tf.control_dependencies([update]):
        checks = [tf.reduce_all(tf.math.is_finite(variable.read_value())) for variable in variables]
    return tf.reduce_all(tf.stack(checks), name=name)


def build_training_graph(
    config: ModelConfig, semi_supervised: bool, seed: Optional[int] = None, policy: Optional[Precision.Policy] = None
) -> TrainingGraph:
    """Builds the supervised or semi-supervised training graph in the default graph.

    Args:
        config: the checked model configuration; ``training.batch_size`` fixes the static
            batch dimension, ``network`` the U-Net's and critics' sizes and shapes.
        semi_supervised: also build unpaired inputs, one critic per source, ``L_u``, the
            additive penalty and the critics' train ops; the separator then trains on
            ``separator_loss`` with ``unsup_sep_lr`` (otherwise ``supervised_loss`` with ``sup_sep_lr``).
        seed: op-level seed base for the critics' random ops (with a graph-level seed this
            makes runs reproducible).
        policy: the compute dtype and loss scaling; ``None`` chooses it for this machine from
            ``config.precision`` (:func:`Precision.machine_policy`, which warns when ``"mixed"``
            has to fall back to float32).

    Returns:
        A :class:`TrainingGraph`; run ``tf.compat.v1.global_variables_initializer()`` before use.
    """
    network, schedule = config.network, config.training
    policy = policy or Precision.machine_policy(config.precision)
    sources = network.sources
    batch_size = schedule.batch_size
    critic_shape, input_shape, output_shape = network.critic_shape, network.input_shape, network.output_shape
    separator = Unet(
        network.num_layers,
        network.num_initial_filters,
        sources,
        output_init=network.output_init,
        compute_dtype=policy.compute_dtype,
    )

    mixture = _placeholder(batch_size, input_shape, "mixture")
    source_targets = {name: _placeholder(batch_size, output_shape, f"source_{name}") for name in sources}
    separator_outputs = Inference.estimate(separator, mixture, reuse=False)
    supervised_loss = _supervised_loss(
        separator_outputs, {name: Inference.normalise(target) for name, target in source_targets.items()}
    )

    global_step, sup_sep_lr, unsup_sep_lr, disc_lr = _control_variables(schedule)
    unpaired = (
        _build_unpaired(
            config, separator, sources, batch_size, input_shape, output_shape, critic_shape, seed, policy.compute_dtype
        )
        if semi_supervised
        else _no_unpaired()
    )
    unsupervised_loss = unpaired["unsupervised_loss"]
    separator_loss = (
        tf.add(supervised_loss, unsupervised_loss, name="separator_loss") if semi_supervised else supervised_loss
    )

    separator_vars = Inference.separator_variables()
    separator_train_op = _minimize(
        separator_loss,
        unsup_sep_lr if semi_supervised else sup_sep_lr,
        separator_vars,
        "separator_solver",
        global_step=global_step,
        loss_scaling=policy.loss_scaling,
    )
    critic_betas = schedule.critic_adam_betas
    critic_train_ops = {
        name: _minimize(
            unpaired["critic_losses"][name],
            disc_lr,
            _scope_variables(critic_scope(name)),
            f"{critic_scope(name)}_solver",
            betas=critic_betas,
            loss_scaling=policy.loss_scaling,
        )
        for name in unpaired["critic_losses"]
    }
    all_critics_train_op = (
        tf.group(*critic_train_ops.values(), name="all_critics_train_op") if critic_train_ops else None
    )
    separator_weights_finite = _all_finite_after(separator_train_op, separator_vars, "separator_weights_finite")
    critic_weights_finite = None
    if critic_train_ops:
        critic_vars = [variable for name in critic_train_ops for variable in _scope_variables(critic_scope(name))]
        critic_weights_finite = _all_finite_after(all_critics_train_op, critic_vars, "critic_weights_finite")

    inference = Inference.build_inference(separator, input_shape, reuse=True, name="inference_mixture")
    inference_input, inference_norm, inference_outputs = inference.mixture, inference.normalised, inference.estimates
    validation_targets = {name: _placeholder(None, output_shape, f"validation_source_{name}") for name in sources}
    validation_frames = tf.compat.v1.placeholder_with_default(
        tf.fill(tf.shape(inference_input)[:1], output_shape[1]), [None], name="validation_frames"
    )
    validation_loss = _masked_supervised_loss(
        inference_norm,
        {name: Inference.normalise(target) for name, target in validation_targets.items()},
        validation_frames,
        output_shape,
    )
    separator_scalars = {"supervised_loss": supervised_loss, "separator_loss": separator_loss}
    if semi_supervised:
        separator_scalars.update(
            L_u=unpaired["L_u"], additive_penalty=unpaired["additive_penalty"], unsupervised_loss=unsupervised_loss
        )
    critic_scalars = {
        f"{term}/{name}": unpaired[field][name]
        for name in unpaired["critic_losses"]
        for term, field in (
            ("critic_loss", "critic_losses"),
            ("wasserstein", "wasserstein"),
            ("gradient_penalty", "gradient_penalty"),
        )
    }

    return TrainingGraph(
        model_config=config,
        policy=policy,
        semi_supervised=bool(semi_supervised),
        sources=sources,
        input_shape=input_shape,
        output_shape=output_shape,
        critic_shape=critic_shape,
        mixture=mixture,
        source_targets=source_targets,
        separator_outputs=separator_outputs,
        supervised_loss=supervised_loss,
        unpaired_mixture=unpaired["unpaired_mixture"],
        unpaired_sources=unpaired["unpaired_sources"],
        unpaired_separator_outputs=unpaired["unpaired_separator_outputs"],
        critic_real_inputs=unpaired["critic_real_inputs"],
        critic_fake_inputs=unpaired["critic_fake_inputs"],
        L_u=unpaired["L_u"],
        additive_penalty=unpaired["additive_penalty"],
        unsupervised_loss=unsupervised_loss,
        separator_loss=separator_loss,
        critic_losses=unpaired["critic_losses"],
        wasserstein=unpaired["wasserstein"],
        gradient_penalty=unpaired["gradient_penalty"],
        critic_real_scores=unpaired["critic_real_scores"],
        critic_fake_scores=unpaired["critic_fake_scores"],
        global_step=global_step,
        sup_sep_lr=sup_sep_lr,
        unsup_sep_lr=unsup_sep_lr,
        disc_lr=disc_lr,
        separator_train_op=separator_train_op,
        critic_train_ops=critic_train_ops,
        all_critics_train_op=all_critics_train_op,
        separator_weights_finite=separator_weights_finite,
        critic_weights_finite=critic_weights_finite,
        separator_scalars=separator_scalars,
        critic_scalars=critic_scalars,
        inference_input=inference_input,
        inference_outputs=inference_outputs,
        validation_targets=validation_targets,
        validation_frames=validation_frames,
        validation_loss=validation_loss,
    )


def _no_unpaired():
    keys = (
        "unpaired_sources",
        "unpaired_separator_outputs",
        "critic_real_inputs",
        "critic_fake_inputs",
        "critic_losses",
        "wasserstein",
        "gradient_penalty",
        "critic_real_scores",
        "critic_fake_scores",
    )
    terms = {key: {} for key in keys}
    terms.update(unpaired_mixture=None, L_u=None, additive_penalty=None, unsupervised_loss=None)
    return terms


def _build_unpaired(
    config, separator, sources, batch_size, input_shape, output_shape, critic_shape, seed, compute_dtype
):
    """Unpaired placeholders, critics and the unsupervised loss terms (as a dict of fields)."""
    unpaired_mixture = _placeholder(batch_size, input_shape, "unpaired_mixture")
    unpaired_sources = {name: _placeholder(batch_size, output_shape, f"unpaired_source_{name}") for name in sources}
    estimates = Inference.estimate(separator, unpaired_mixture, reuse=True)
    real_inputs = {name: Inference.crop(Inference.normalise(unpaired_sources[name]), critic_shape) for name in sources}
    fake_inputs = {name: Inference.crop(estimates[name], critic_shape) for name in sources}

    losses = {}
    for index, name in enumerate(sources):
        critic = Critic(
            critic_scope(name),
            config.network.critic_initial_filters,
            config.network.critic_dense_units,
            compute_dtype=compute_dtype,
        )
        critic_seed = None if seed is None else seed + 2 * index  # two random ops per critic
        losses[name] = critic_loss(critic, real_inputs[name], fake_inputs[name], config.training.lam, critic_seed)

    L_u = tf.negative(tf.add_n([tf.reduce_mean(losses[name].fake_scores) for name in sources]), name="L_u")
    mixture_linear = Inference.crop(unpaired_mixture, output_shape)
    additive_penalty = _additive_penalty(mixture_linear, estimates)
    unsupervised_loss = tf.add(
        config.training.alpha * L_u, config.training.beta * additive_penalty, name="unsupervised_loss"
    )
    return {
        "unpaired_mixture": unpaired_mixture,
        "unpaired_sources": unpaired_sources,
        "unpaired_separator_outputs": estimates,
        "critic_real_inputs": real_inputs,
        "critic_fake_inputs": fake_inputs,
        "L_u": L_u,
        "additive_penalty": additive_penalty,
        "unsupervised_loss": unsupervised_loss,
        "critic_losses": {name: term.loss for name, term in losses.items()},
        "wasserstein": {name: term.wasserstein for name, term in losses.items()},
        "gradient_penalty": {name: term.gradient_penalty for name, term in losses.items()},
        "critic_real_scores": {name: term.real_scores for name, term in losses.items()},
        "critic_fake_scores": {name: term.fake_scores for name, term in losses.items()},
    }
