"""One training phase as an object that reads like the paper's schedule (PAPER.md, "Training").

A :class:`Trainer` owns everything of one phase (supervised ``"sup"`` or semi-supervised
``"semisup"``): the TensorFlow graph and session, the saver, the TensorBoard writer and summary
ops, the early-stopping state and the batch generators. Its methods are the schedule:

- :meth:`Trainer.train_critics`: ``num_disc`` updates of every critic on fresh unpaired batches;
- :meth:`Trainer.train_separator`: one separator update on a paired (and an unpaired) batch;
- :meth:`Trainer.train_epoch`: ``epoch_it`` separator updates, each after the critics' updates;
- :meth:`Trainer.end_epoch`: checkpoint, validation loss and early stopping;
- :meth:`Trainer.run`: the phase as a whole (restore or resume, epochs until early stopping,
  Ctrl-C/SIGTERM saving, the non-finite guard, the test loss of the best model).

:func:`optimise` runs one phase; it needs no sacred and is what Training.py and the benchmarks call.
"""

import logging
import math
import os
import time
from typing import Dict, Optional, Tuple

import tensorflow as tf
from tqdm import tqdm

from common import Checkpoints, Precision, TensorFlowSetup, Utils
from common.Config import ModelConfig
from experiment import Summaries, TrainingData
from experiment.Settings import PhaseSettings
from Models.TrainingGraph import build_training_graph

LOGGER = logging.getLogger("Training")
PHASES = {"sup": "supervised", "semisup": "semi-supervised"}


class NonFiniteLossError(RuntimeError):
    """A loss or the weights became NaN or infinite; the message names which and the step."""


def check_finite(values: Dict[str, float], step: int) -> None:
    """Raise :class:`NonFiniteLossError` if any fetched loss is NaN or infinite."""
    for name, value in values.items():
        if not math.isfinite(float(value)):
            raise NonFiniteLossError(f"the {name} became {value} at step {step}")


def check_weights(weights_finite: bool, which: str, step: int) -> None:
    """Raise :class:`NonFiniteLossError` unless the update of ``step`` left ``which``'s weights finite.

    This catches what the losses may not show: a loss is computed before its update, and
    how a kernel treats a NaN input (a max-pool may drop it) differs between CPUs.
    """
    if not weights_finite:
        raise NonFiniteLossError(f"the {which} weights became non-finite in the update of step {step}")


def open_session(deterministic: bool) -> tf.compat.v1.Session:
    """A session that lets TensorFlow place ops on whatever device is there."""
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    session_config = TensorFlowSetup.session_config(allow_soft_placement=True)
    session_config.gpu_options.allow_growth = True
    return tf.compat.v1.Session(config=session_config)


class Trainer:
    """One training phase with early stopping (the paper's Algorithm: critics, then separator).

    Args:
        phase: ``"sup"`` (supervised) or ``"semisup"`` (semi-supervised adversarial).
        config: the checked model configuration.
        data: the partitions and what feeds the batch generators.
        settings: experiment id, seed, patience, epoch limit, summary intervals, determinism.
        init_checkpoint: optional checkpoint to initialise the separator from (new phases only).

    The graph, session, saver, writer and batch generators exist while :meth:`run` runs.
    """

    def __init__(
        self,
        phase: str,
        config: ModelConfig,
        data: TrainingData.TrainingData,
        settings: PhaseSettings,
        init_checkpoint: Optional[str] = None,
    ):
        if phase not in PHASES:
            raise ValueError(f"phase={phase!r}: use one of {sorted(PHASES)}")
        self.phase, self.name = phase, PHASES[phase]
        self.semi_supervised = phase == "semisup"
        self.config, self.data, self.settings = config, data, settings
        self.init_checkpoint = init_checkpoint
        self.folder = Checkpoints.phase_folder(config.folders.model_base_dir, settings.experiment_id, phase)
        self.log_folder = Checkpoints.phase_folder(config.folders.log_dir, settings.experiment_id, phase)
        self.state = Checkpoints.PhaseState.load(self.folder, phase)
        self.session = self.graph = self.saver = self.writer = self.summaries = None
        self.paired, self.mixtures, self.sources = None, None, []
        self.data_timer = Utils.Timer()

    # -- the phase ---------------------------------------------------------------------

    def run(self) -> Checkpoints.PhaseState:
        """Train the phase (or continue it) until early stopping, then test its best model.

        Returns:
            The finished :class:`Checkpoints.PhaseState` (best checkpoint, losses, history).
            For a finished phase it is the stored state, without training; an interrupted
            phase continues where it stopped.
        """
        Checkpoints.check_same_network(self.folder, self.config)  # a resume, before anything is written
        if self.state.finished and self.state.test_loss is not None:
            LOGGER.info(
                "%s phase already finished (%s); best model %s",
                self.name,
                self.state.stop_reason,
                self.state.best_checkpoint,
            )
            return self.state
        os.makedirs(self.folder, exist_ok=True)
        Checkpoints.write_model_config(self.folder, self.config)
        tf_graph = tf.Graph()
        with tf_graph.as_default():
            tf.compat.v1.set_random_seed(self.settings.seed)
            self.graph = build_training_graph(
                self.config, semi_supervised=self.semi_supervised, seed=self.settings.seed
            )
            self.summaries = {
                "scalars": Summaries.training_scalar_summaries(self.graph),
                "spectrograms": Summaries.spectrogram_tensors(self.graph),
            }
            # Everything but the loss scale of float16 training: checkpoints do not depend on the dtype (Precision.py).
            self.saver = tf.compat.v1.train.Saver(var_list=Precision.saved_variables(), max_to_keep=2)
            with open_session(self.settings.deterministic) as self.session:
                self.session.run(tf.compat.v1.global_variables_initializer())
                self.restore_or_initialise()
                self.writer = tf.compat.v1.summary.FileWriter(
                    self.log_folder, graph=tf_graph if self.state.epoch == 0 else None
                )
                try:
                    if not self.state.finished:
                        self.train()
                    self.test_best_model()
                finally:
                    self.writer.close()
        return self.state

    def restore_or_initialise(self) -> None:
        """Continue from the folder's newest usable checkpoint, or start a new phase.

        A damaged checkpoint (truncated or missing files: what a kill during a save or a full disk
        leaves) is passed over with a warning naming the bad file, and the previous one is used;
        the state is then rewound to that checkpoint's step. A new phase may take its separator
        weights from ``init_checkpoint`` (the supervised model, with ``semisup_init="supervised"``);
        everything else starts fresh.

        Raises:
            Checkpoints.CheckpointError: the folder records progress but no checkpoint can be restored.
        """
        state, damaged = self.state, []
        for prefix in Checkpoints.checkpoint_candidates(self.folder):
            try:
                self.saver.restore(self.session, prefix)
            except (tf.errors.OpError, ValueError):
                damaged.append(Checkpoints.damaged_file(prefix))
                LOGGER.warning("Cannot restore checkpoint %s: %s. Trying the previous one.", prefix, damaged[-1])
                continue
            step = self.global_step()
            if damaged:
                best_step = Checkpoints.checkpoint_step(state.best_checkpoint) if state.best_checkpoint else None
                self.state = state = state.rewound(step, best_step)
                state.save(self.folder)
                LOGGER.warning(
                    "Continuing from the older checkpoint %s: the %s phase is rewound to step %d (%d epoch(s) done).",
                    prefix,
                    self.name,
                    step,
                    state.epoch,
                )
            LOGGER.info("Resuming %s phase from %s (step %d, epoch %d)", self.name, prefix, step, state.epoch + 1)
            return
        if damaged or state.epoch > 0:
            found = "; ".join(damaged) if damaged else "no checkpoint files are left"
            raise Checkpoints.CheckpointError(
                f"{self.folder} records {state.epoch} finished epoch(s) of the {self.name} phase, but none of its "
                f"checkpoints can be restored ({found}). Restore the files from a backup, or move the folder away "
                "to train this phase again from the start."
            )
        if self.init_checkpoint:
            tf.compat.v1.train.Saver(var_list=self.graph.separator_variables()).restore(
                self.session, self.init_checkpoint
            )
            LOGGER.info("Separator initialised from %s", self.init_checkpoint)

    def train(self) -> None:
        """Epochs with a checkpoint and the validation loss after each, until early stopping.

        Ctrl-C (or SIGTERM, see :func:`Utils.terminate_like_ctrl_c`) saves a checkpoint (and the
        early-stopping state) before it stops the run; a non-finite loss or weight finishes the
        phase with the last good checkpoint kept. The readers' random streams are seeded from
        ``(seed, global step)``, so a resumed run draws new data rather than replaying the stream
        its interrupted epoch had started with.
        """
        state, max_epochs = self.state, self.settings.max_epochs
        with self.data.batch_generators(
            self.config, self.semi_supervised, [self.settings.seed, self.global_step()]
        ) as generators:
            self.paired, self.mixtures, self.sources = generators
            while not state.finished:
                if max_epochs is not None and state.epoch >= max_epochs:
                    state.finish(f"reached max_epochs={max_epochs}")
                    break
                epoch_start = time.perf_counter()
                try:
                    step, scalars, wait = self.train_epoch()
                except KeyboardInterrupt:
                    self.save_interrupted()
                    raise
                except NonFiniteLossError as error:
                    state.finish(f"stopped: {error}")
                    state.save(self.folder)
                    LOGGER.error("Stopping the %s phase: %s. The last good checkpoint is kept.", self.name, error)
                    break
                self.end_epoch(step, scalars, wait, epoch_start)
            LOGGER.info("%s phase finished: %s", self.name, state.stop_reason)

    def test_best_model(self) -> float:
        """Restore the best checkpoint and compute its supervised loss on the test partition."""
        if self.state.best_checkpoint is None:
            raise RuntimeError(
                f"The {self.name} phase stopped ({self.state.stop_reason}) "
                "before any epoch finished, so there is no model to test."
            )
        self.saver.restore(self.session, self.state.best_checkpoint)
        self.state.test_loss = TrainingData.partition_loss(self.session, self.graph, self.data["test"], self.config)
        self.writer.add_summary(
            Summaries.scalar_summary({Summaries.TEST_LOSS: self.state.test_loss}), self.global_step()
        )
        self.state.save(self.folder)
        LOGGER.info(
            "%s phase: test loss %.5f with the best model (%s)",
            self.name,
            self.state.test_loss,
            self.state.best_checkpoint,
        )
        return self.state.test_loss

    # -- one epoch -----------------------------------------------------------------------

    def train_epoch(self) -> Tuple[int, Dict[str, float], float]:
        """Train until the epoch's ``epoch_it`` separator updates are done (resumes mid-epoch).

        Each separator update uses one paired batch and, when semi-supervised, one unpaired
        mixture batch after ``num_disc`` updates of every critic.

        Returns:
            ``(global_step, last fetched scalars, fraction of wall time spent waiting for data)``.
        """
        schedule = self.config.training
        step = self.global_step()
        remaining = self.state.epoch_start_step + schedule.epoch_it - step
        self.data_timer, start = Utils.Timer(), time.perf_counter()
        scalars = {}
        if self.semi_supervised and step == 0 and schedule.critic_warmup > 0:
            self.warm_up_critics()
        with tqdm(
            total=schedule.epoch_it,
            initial=schedule.epoch_it - remaining,
            desc=f"{self.name} epoch {self.state.epoch + 1}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
            disable=None,
        ) as progress:
            for _ in range(remaining):
                critic_scalars = self.train_critics(schedule.num_disc, step) if self.semi_supervised else {}
                scalars = self.train_separator(step, critic_scalars)
                if critic_scalars and step % self.settings.summary_every == 0:
                    self.writer.add_summary(Summaries.critic_scalar_summary(critic_scalars), step)
                step += 1
                progress.update(1)
                progress.set_postfix(
                    {
                        name: f"{value:.4g}"
                        for name, value in scalars.items()
                        if name in ("supervised_loss", "separator_loss")
                    },
                    refresh=False,
                )
        elapsed = time.perf_counter() - start
        wait_fraction = self.data_timer.seconds / elapsed if elapsed > 0 else 0.0
        self.writer.add_summary(Summaries.scalar_summary({Summaries.DATA_WAIT_FRACTION: wait_fraction}), step)
        return step, scalars, wait_fraction

    def warm_up_critics(self) -> None:
        """``critic_warmup`` critic updates before the separator's first semi-supervised step.

        The critics first learn to tell real from estimated sources, so that L_u carries a
        signal when the separator first sees it (a resumed phase past step 0 skips this).
        """
        updates = self.config.training.critic_warmup
        LOGGER.info("Warming up the critics: %d updates before the first separator update", updates)
        self.train_critics(updates, self.global_step())

    def train_critics(self, updates: int, step: int) -> Dict[str, float]:
        """``updates`` updates of every critic, each on fresh unpaired batches.

        All critics are updated in one ``session.run`` per iteration: they share the separator's
        forward pass on the unpaired mixtures, and each critic only depends on its own variables.

        Returns:
            The fetched critic losses, Wasserstein estimates and gradient penalties of the last update.
        """
        fetched = {}
        for _ in range(updates):
            with self.data_timer.measure():
                feed = self.graph.feed_unpaired(self.mixtures.get_batch(), [gen.get_batch() for gen in self.sources])
            fetched = self.session.run(
                {"finite": self.graph.critic_weights_finite, "critic": self.graph.critic_scalars}, feed
            )
            check_weights(fetched["finite"], "critics'", step)
        return fetched["critic"]

    def train_separator(self, step: int, critic_scalars: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """One separator update: a paired batch (and, semi-supervised, an unpaired mixture batch).

        Then the step's losses (``critic_scalars``, the critics' of the same step, included) must
        be finite and the separator's weights too (:class:`NonFiniteLossError`); the scalar
        summaries are written every ``summary_every`` and the spectrogram images every
        ``image_every`` steps.

        Returns:
            The separator's fetched scalars (losses of this step, computed before the update) and
            ``critic_scalars``.
        """
        with self.data_timer.measure():
            feed = self.graph.feed_paired(self.paired.get_batch())
            if self.semi_supervised:  # the separator's losses need no real source excerpts
                feed.update(self.graph.feed_unpaired(self.mixtures.get_batch()))
        fetches = {"finite": self.graph.separator_weights_finite, "scalars": self.graph.separator_scalars}
        if step % self.settings.summary_every == 0:
            fetches["summary"] = self.summaries["scalars"]
        if step % self.settings.image_every == 0:
            fetches["spectrograms"] = self.summaries["spectrograms"]
        result = self.session.run(fetches, feed)
        scalars = dict(result["scalars"], **(critic_scalars or {}))
        check_finite(scalars, step)
        check_weights(result["finite"], "separator", step)
        if "summary" in result:
            self.writer.add_summary(result["summary"], step)
        if "spectrograms" in result:
            pictures = Summaries.spectrogram_summary(result["spectrograms"], self.config.signal.num_fft)
            self.writer.add_summary(pictures, step)
        return scalars

    def end_epoch(self, step: int, scalars: Dict[str, float], wait: float, epoch_start: float) -> None:
        """Checkpoint, validation loss and early stopping after an epoch, with its summaries and log line.

        The summaries: the validation loss and the best so far, and the first 10 s of the first
        validation song separated, as audio and as each source's SDR (``validation/sdr_<source>``).
        """
        state, valid = self.state, self.data["valid"]
        checkpoint = Checkpoints.save_checkpoint(self.saver, self.session, self.folder, step)
        valid_loss = TrainingData.partition_loss(self.session, self.graph, valid, self.config)
        seconds = time.perf_counter() - epoch_start
        if state.record_validation(valid_loss, step, seconds, self.settings.patience):
            state.best_checkpoint = Checkpoints.keep_best(self.folder, checkpoint, self.config)
        state.epoch_start_step = step
        state.save(self.folder)
        validation = {Summaries.VALID_LOSS: valid_loss, Summaries.BEST_VALID_LOSS: state.best_loss}
        if valid:
            sample_rate = self.config.signal.expected_sr
            clips = TrainingData.validation_clips(self.session, self.graph, valid[0], self.config)
            self.writer.add_summary(Summaries.audio_summary(clips, sample_rate), step)
            validation.update(Summaries.validation_sdr(clips, self.graph.sources, sample_rate))
        self.writer.add_summary(Summaries.scalar_summary(validation), step)
        self.writer.flush()
        losses = ", ".join(f"{name} {value:.4g}" for name, value in sorted(scalars.items()))
        LOGGER.info(
            "%s epoch %d (step %d): %s | valid %.5f (best %.5f) | %.0f s, %.0f%% waiting for data",
            self.name,
            state.epoch,
            step,
            losses,
            valid_loss,
            state.best_loss,
            seconds,
            100 * wait,
        )

    def save_interrupted(self) -> str:
        """Save a checkpoint and the state when Ctrl-C or SIGTERM stops the phase mid-epoch."""
        step = self.global_step()
        path = Checkpoints.save_checkpoint(self.saver, self.session, self.folder, step)
        self.state.save(self.folder)
        LOGGER.warning(
            "Interrupted at step %d: saved %s. Continue with: python Training.py with resume=%s",
            step,
            path,
            self.folder,
        )
        return path

    def global_step(self) -> int:
        """The separator updates done so far in this phase (the graph's step counter)."""
        return int(self.session.run(self.graph.global_step))


def optimise(
    phase: str,
    data: TrainingData.TrainingData,
    config: ModelConfig,
    settings: PhaseSettings,
    init_checkpoint: Optional[str] = None,
) -> Checkpoints.PhaseState:
    """Train one phase with early stopping, then compute the test loss of its best model (:meth:`Trainer.run`)."""
    return Trainer(phase, config, data, settings, init_checkpoint).run()
