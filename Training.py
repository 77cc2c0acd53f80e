"""The paper's experiment: supervised, then semi-supervised adversarial training, then BSS Eval.

Stoller, Ewert & Dixon, "Adversarial semi-supervised audio source separation applied to
singing voice extraction", ICASSP 2018. Run ``python Training.py`` (after pointing the
dataset XMLs or ``dataset_roots`` at your data) or ``python Training.py with demo``.

Commands (sacred):
    python Training.py [with key=value ...]        the whole experiment
    python Training.py datasets [with ...]          partition sizes per database
    python Training.py evaluate with model_path=…   BSS Eval of one checkpoint folder
    python Training.py separate with model_path=… input_path=… output_dir=…
    python Training.py print_config [with ...]      the resolved configuration

The file reads like the method: :func:`train_epoch` runs ``epoch_it`` separator updates,
:func:`optimise` repeats epochs with early stopping on the validation loss, and
:func:`main` trains the supervised and then the semi-supervised model and evaluates both.
"""

import contextlib
import logging
import math
import os
import sys
import time

from common import Utils

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
Utils.use_fast_cpu_kernels()

import numpy as np
import tensorflow as tf
from sacred import SETTINGS, Experiment
from sacred.observers import FileStorageObserver
from sacred.utils import SacredError, apply_backspaces_and_linefeeds
from tqdm import tqdm

from pipeline import AudioCache
from common import Checkpoints
from evaluation import Comparison
import Datasets
import Evaluate
import Input
from common import Precision
from evaluation import Results
from evaluation import SeparateFiles
from experiment import Summaries
from experiment import TrainingData
from Models.TrainingGraph import build_training_graph
from Sample import AudioDecoderError

LOGGER = logging.getLogger("Training")
PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
DATABASES = ("DSD100", "MedleyDB", "CCMixter", "iKala", "MUSDB18HQ", "MUSDB18", "SongFolders")
PHASES = {"sup": "supervised", "semisup": "semi-supervised"}

# Capture output at the Python level: reader processes keep no handle on sacred's tee pipes.
SETTINGS.CAPTURE_MODE = "sys"
ex = Experiment("Adversarial_Source_Separation", save_git_info=False)
ex.logger = Utils.setup_logging()
ex.captured_out_filter = apply_backspaces_and_linefeeds  # keep progress bars out of cout.txt


class UsageError(SacredError):
    """A wrong setting, path or file: shown to the user as one message, without a traceback."""

    def __init__(self, message):
        super().__init__(message, print_traceback=False)


@contextlib.contextmanager
def user_errors():
    """Turn errors caused by the user's settings or files into a :class:`UsageError`."""
    try:
        yield
    except (Datasets.DatasetConfigError, AudioDecoderError, Input.UnreadableAudioError, FileNotFoundError,
            FileExistsError, ValueError) as error:
        raise UsageError(str(error)) from error


@contextlib.contextmanager
def unusable_files_end_the_run():
    """During training, a file that cannot be used (NaN samples, a damaged cached copy) or
    checkpoints that cannot be restored end the run with one message instead of a traceback."""
    try:
        yield
    except (Input.NonFiniteAudioError, Checkpoints.CheckpointError) as error:
        raise UsageError(str(error)) from error


@ex.config
def config():
    model_config = {
        "model_base_dir": "checkpoints",  # checkpoint folders <experiment_id>_<phase> go here
        "log_dir": "logs",  # TensorBoard folders <experiment_id>_<phase> go here
        "sources": ["accompaniment", "voice"],  # separator outputs; critics are made per source
        "batch_size": 64,
        "alpha": 0.001,  # weight of the adversarial loss L_u
        "beta": 0.001,  # weight of the additive penalty P
        "lam": 10,  # lambda: weight of the critics' gradient penalty
        "init_disc_lr": 5e-5,  # Adam learning rate of the critics
        "init_sup_sep_lr": 5e-5,  # Adam learning rate of the separator, supervised phase
        "init_unsup_sep_lr": 5e-5,  # Adam learning rate of the separator, semi-supervised phase
        "epoch_it": 1000,  # separator updates per epoch
        "num_disc": 5,  # updates of each critic per separator update
        "critic_adam_betas": [0.9, 0.999],  # the critics' Adam (beta1, beta2); TF's defaults, as the paper
        "critic_warmup": 0,  # critic updates before the separator's first semi-supervised step (paper: 0)
        # Random gain in [0.2, 1.2] on the unpaired mixtures too, as on the solo sources (the reference);
        # False only to measure what the fix is worth (bench/semisup_gain.py).
        "scale_unpaired_mixtures": True,
        "num_frames": 64,  # desired output frames of the U-Net (critic input width)
        "num_freqs": 256,  # desired output frequency rows (critic input height)
        "num_fft": 512,  # STFT size
        "num_hop": 256,  # STFT hop size
        "expected_sr": 8192,  # all audio is resampled to this rate (Hz)
        "mono_downmix": True,  # down-mix all audio to mono
        "cache_size": 64,  # spectrogram sections kept by each batch generator
        "num_workers": 4,  # reader processes per batch generator (0: read in this process)
        "duration": 10,  # seconds of audio per cached section (without input context)
        "min_replacement_rate": 8,  # cache items replaced per batch, on average, at least
        "num_layers": 4,  # U-Net levels
        "num_initial_filters": 16,  # U-Net filters of the first level (doubling per level)
        # U-Net 1x1 output kernels: "nonnegative" (|Glorot|, so that no output starts dead) or "glorot" (the reference)
        "output_init": "nonnegative",
        "critic_initial_filters": 32,  # critic filters of the first convolution
        "critic_dense_units": 32,  # critic hidden dense layer
        # "float32" (the paper) or "mixed": convolutions in bfloat16 on CPUs with avx512_bf16/amx_bf16 and
        # on GPUs from Ampere, float16 with loss scaling on Volta/Turing; float32 weights and losses
        # (Precision.py). Stored in model_config.json, so evaluate and separate use it too.
        "precision": "float32",
    }
    experiment_id = Checkpoints.new_experiment_id()  # names checkpoint and log folders; unique per run
    seed = 2018  # reaches numpy, the TensorFlow graph seed and every reader process
    deterministic = False  # TF op determinism (slower); with num_workers=0 runs repeat exactly

    # Data: the XMLs describe each database; dataset_roots.<NAME>=/path overrides the
    # databaseFolderPath in the XML without editing it.
    dataset_xmls = {name: os.path.join(PROJECT_DIR, name + ".xml") for name in DATABASES[:4]}
    dataset_roots = {name: None for name in DATABASES}
    cache_dir = "cache"  # derived audio (accompaniments, stem sums, model-rate copies, spectrograms), demo database
    # Compute each training file's magnitude spectrogram once into <cache_dir>/magnitudes (about the
    # size of the 8192 Hz copies): the reader processes then copy sections instead of doing STFTs.
    spectrogram_cache = True
    dataset_pkl = "dataset.pkl"  # cached partition; rebuilt whenever its inputs change
    custom_dataset = None  # "module:function" returning your own dataset dictionary
    # Folders of unpaired audio (any format, rate, channels; sub-folders too) added to train_unsup, per list
    unpaired_folders = {"mixtures": [], "accompaniment": [], "voice": []}
    partition_config = {
        "supervised_database": "DSD100",  # its Training split is train_sup
        "unsupervised_databases": ["MedleyDB", "CCMixter", "iKala"],  # split in thirds
        "supervised_valid_songs": 25,  # first songs of its Test split go to valid, rest to test
        "supervised_validation": "test_songs",  # or "musdb_valid" (MUSDB18/MUSDB18HQ): musdb's 14 valid tracks of train
    }
    use_demo = False  # generate the built-in demo database into <cache_dir>/demo and use it
    demo_database = {"song_seconds": 12.0}  # generate_demo_database settings (sizes, lengths)

    # Training schedule
    patience = 1  # epochs without improvement before early stopping (the paper: 1)
    max_epochs = None  # upper bound on epochs per phase (None: until early stopping)
    semisup_init = "scratch"  # "scratch" (the paper) or "supervised": start from its best model
    resume = None  # checkpoint or sacred run folder of an interrupted experiment
    summary_every = 10  # separator steps between TensorBoard scalar summaries
    image_every = 100  # separator steps between spectrogram image summaries

    # Evaluation and separation
    eval_workers = 2  # processes computing BSS Eval
    eval_batch_size = 32  # U-Net chunks per session call when separating whole songs
    eval_precision = None  # evaluate / separate: "float32" or "mixed" instead of the checkpoint's precision
    # BSS Eval versions, both at the model's 8192 Hz mono (Metrics.py): "v3" the paper's (mir_eval
    # bss_eval_sources over the whole song: SDR ... SI_SDR), "v4" museval's as in SiSEC 2018 (1-s frames,
    # median: SDR_v4 ... ISR_v4, and museval JSON in <results_dir>/<experiment_id>/museval)
    bss_eval = ["v3", "v4"]  # "v3" and/or "v4"
    results_dir = "results"  # tables, CSV/JSON and plots go to <results_dir>/<experiment_id>
    model_path = None  # checkpoint folder for the evaluate and separate commands
    partition = "test"  # partition used by the evaluate command: test or valid
    input_path = None  # audio file or folder for the separate command
    output_dir = "separated"  # where the separate command writes <name>_<source>.wav
    overwrite = False  # let the separate command replace existing outputs


@ex.named_config
def demo():
    # The whole experiment on the built-in demo database, in minutes on two CPU cores: the paper's
    # method with a short-budget recipe (160 separator updates per phase instead of tens of
    # thousands). With use_demo=False the same recipe trains on your data (dataset_roots...) with the
    # paper's partition. The recipe was chosen on the validation songs with bench/semisup_gain.py
    # (README, "What to expect"); each value says why.
    use_demo = True
    model_config = {
        # Small batches and reader caches: the demo songs are 9-15 s long.
        "batch_size": 8,
        "epoch_it": 40,
        "num_workers": 2,
        "cache_size": 16,
        "duration": 4,
        "min_replacement_rate": 2,
        # The validation voice gains below (semi-supervised minus supervised SDR on the unpaired
        # databases' validation songs, seed 2018) are bench/semisup_gain.py's; this recipe: +1.9 dB.
        "num_disc": 1,  # 2 critic updates per separator update: +1.6 dB, and a quarter slower
        "init_sup_sep_lr": 5e-4,  # 10x the paper's 5e-5, for the short budget (both phases alike)
        "init_unsup_sep_lr": 5e-4,
        "init_disc_lr": 2e-4,  # 4x the paper's: its 5e-5 and also 5e-4 gave +1.8 dB
        # The critics' Adam keeps the paper's betas (0.9, 0.999): WGAN-GP's usual (0.5, 0.9) gave
        # +0.7 dB and lost 2.1 dB of the paired domain's accompaniment SDR.
        # 40 critic updates before the separator first sees L_u, so that L_u starts from critics
        # that have learnt something: little effect here (+1.8 dB without; with the (0.5, 0.9)
        # betas +0.4 against +0.7), and they cost 20 s.
        "critic_warmup": 40,
    }
    if use_demo:  # the demo database's data settings; use_demo=False keeps the recipe for your data
        partition_config = {"supervised_valid_songs": 2}
    # Epochs of 40 updates give a noisy validation loss: with the paper's patience of 1, one of two
    # supervised runs with the same seed stopped after one epoch (valid loss 0.085 against 0.058),
    # which made the comparison a matter of luck. Both phases get the same patience and budget.
    patience = 2
    max_epochs = 4
    summary_every = 5
    image_every = 25


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

class NonFiniteLossError(RuntimeError):
    """A loss or the weights became NaN or infinite; the message names which and the step."""


def check_finite(values, step):
    """Raise :class:`NonFiniteLossError` if any fetched loss is NaN or infinite."""
    for name, value in values.items():
        if not math.isfinite(float(value)):
            raise NonFiniteLossError(f"the {name} became {value} at step {step}")


def check_weights(weights_finite, which, step):
    """Raise :class:`NonFiniteLossError` unless the update of ``step`` left ``which``'s weights finite.

    This catches what the losses may not show: a loss is computed before its update, and
    how a kernel treats a NaN input (a max-pool may drop it) differs between CPUs.
    """
    if not weights_finite:
        raise NonFiniteLossError(f"the {which} weights became non-finite in the update of step {step}")


def train_critics(session, graph, mixtures, sources, num_disc, data_timer, step):
    """``num_disc`` updates of every critic, each on fresh unpaired batches.

    All critics are updated in one ``session.run`` per iteration: they share the separator's
    forward pass on the unpaired mixtures, and each critic only depends on its own variables.

    Returns:
        The fetched critic losses, Wasserstein estimates and gradient penalties of the last update.
    """
    fetched = {}
    for _ in range(num_disc):
        with data_timer.measure():
            feed = graph.feed_unpaired(mixtures.get_batch(), [gen.get_batch() for gen in sources])
        fetched = session.run({"finite": graph.critic_weights_finite, "critic": graph.critic_scalars}, feed)
        check_weights(fetched["finite"], "critics'", step)
    return fetched["critic"]


def train_epoch(session, graph, writer, summaries, paired, mixtures, sources, model_config,
                state, summary_every, image_every):
    """Train until the epoch's ``epoch_it`` separator updates are done (resumes mid-epoch).

    Each separator update uses one paired batch and, when semi-supervised, one unpaired
    mixture batch after ``num_disc`` updates of every critic.

    Returns:
        ``(global_step, last fetched scalars, fraction of wall time spent waiting for data)``.
    """
    semi_supervised = mixtures is not None
    step = int(session.run(graph.global_step))
    remaining = state.epoch_start_step + model_config["epoch_it"] - step
    data_timer, start = Utils.Timer(), time.perf_counter()
    scalars = {}
    warmup = model_config.get("critic_warmup", 0)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"model_config.critic_warmup={warmup!r}: give a whole number of critic updates >= 0")
    if semi_supervised and step == 0 and warmup > 0:
        # The critics first learn to tell real from estimated sources, so that L_u carries a
        # signal when the separator first sees it (a resumed phase past step 0 skips this).
        LOGGER.info("Warming up the critics: %d updates before the first separator update", warmup)
        train_critics(session, graph, mixtures, sources, warmup, data_timer, step)
    with tqdm(total=model_config["epoch_it"], initial=model_config["epoch_it"] - remaining,
              desc=f"{PHASES[state.phase]} epoch {state.epoch + 1}", unit="step",
              leave=False, dynamic_ncols=True, disable=None) as progress:
        for _ in range(remaining):
            critic_scalars = {}
            if semi_supervised:
                critic_scalars = train_critics(session, graph, mixtures, sources,
                                               model_config["num_disc"], data_timer, step)
            with data_timer.measure():
                feed = graph.feed_paired(paired.get_batch())
                if semi_supervised:  # the separator's losses need no real source excerpts
                    feed.update(graph.feed_unpaired(mixtures.get_batch()))
            fetches = {"finite": graph.separator_weights_finite, "scalars": graph.separator_scalars}
            if step % summary_every == 0:
                fetches["summary"] = summaries["scalars"]
            if step % image_every == 0:
                fetches["images"] = summaries["images"]
            result = session.run(fetches, feed)
            scalars = dict(result["scalars"], **critic_scalars)
            check_finite(scalars, step)
            check_weights(result["finite"], "separator", step)
            for key in ("summary", "images"):
                if key in result:
                    writer.add_summary(result[key], step)
            if critic_scalars and step % summary_every == 0:
                writer.add_summary(Summaries.scalar_summary(critic_scalars), step)
            step += 1
            progress.update(1)
            progress.set_postfix({name: f"{value:.4g}" for name, value in scalars.items()
                                  if name in ("supervised_loss", "separator_loss")}, refresh=False)
    elapsed = time.perf_counter() - start
    wait_fraction = data_timer.seconds / elapsed if elapsed > 0 else 0.0
    writer.add_summary(Summaries.scalar_summary({"data_wait_fraction": wait_fraction}), step)
    return step, scalars, wait_fraction


def open_session(deterministic):
    """A session that lets TensorFlow place ops on whatever device is there."""
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    session_config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    session_config.gpu_options.allow_growth = True
    return tf.compat.v1.Session(config=session_config)


def optimise(phase, dataset, model_config, experiment_id, seed, patience, max_epochs,
             summary_every=10, image_every=100, init_checkpoint=None, deterministic=False, magnitudes=None):
    """Train one phase with early stopping, then compute the test loss of its best model.

    Args:
        phase: ``"sup"`` (supervised) or ``"semisup"`` (semi-supervised adversarial).
        dataset: the dataset dictionary.
        model_config: model and training settings (see the sacred config).
        experiment_id: names ``<model_base_dir>/<experiment_id>_<phase>`` and the log folder.
        seed: graph seed and base of the batch generators' seeds.
        patience: epochs without improvement of the validation loss before stopping.
        max_epochs: optional upper bound on epochs.
        init_checkpoint: optional checkpoint to initialise the separator from (new phases only).
        deterministic: turn on TensorFlow's op determinism.
        magnitudes: optional ``AudioCache.MagnitudeStore`` of the training files, for the
            batch generators.

    Returns:
        The finished :class:`Checkpoints.PhaseState` (best checkpoint, losses, history).
        Calling it again for a finished phase returns the stored state without training;
        calling it for an interrupted phase continues where it stopped.
    """
    with user_errors():  # before a bad value is written into model_config.json
        Precision.check_precision(model_config.get("precision"))
    folder = Checkpoints.phase_folder(model_config["model_base_dir"], experiment_id, phase)
    state = Checkpoints.PhaseState.load(folder, phase)
    if state.finished and state.test_loss is not None:
        LOGGER.info("%s phase already finished (%s); best model %s", PHASES[phase], state.stop_reason,
                    state.best_checkpoint)
        return state
    os.makedirs(folder, exist_ok=True)
    Checkpoints.write_model_config(folder, model_config)
    semi_supervised = phase == "semisup"

    graph_ = tf.Graph()
    with graph_.as_default():
        tf.compat.v1.set_random_seed(seed)
        graph = build_training_graph(model_config, semi_supervised=semi_supervised, seed=seed)
        summaries = {"scalars": Summaries.scalar_summaries(graph.summary_scalars),
                     "images": Summaries.spectrogram_image_summaries(graph.summary_images)}
        # Everything but the loss scale of float16 training: checkpoints do not depend on the dtype (Precision.py).
        saver = tf.compat.v1.train.Saver(var_list=Precision.saved_variables(), max_to_keep=2)
        with open_session(deterministic) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            state = restore_or_initialise(session, saver, folder, graph, init_checkpoint, state)
            writer = tf.compat.v1.summary.FileWriter(
                os.path.join(model_config["log_dir"], f"{experiment_id}_{phase}"),
                graph=graph_ if state.epoch == 0 else None)
            try:
                if not state.finished:
                    train_phase(session, graph, saver, writer, summaries, folder, state, dataset,
                                model_config, seed, patience, max_epochs, summary_every, image_every, magnitudes)
                if state.best_checkpoint is None:
                    raise RuntimeError(f"The {PHASES[phase]} phase stopped ({state.stop_reason}) "
                                       "before any epoch finished, so there is no model to test.")
                saver.restore(session, state.best_checkpoint)
                state.test_loss = TrainingData.partition_loss(session, graph, dataset["test"], model_config)
                writer.add_summary(Summaries.scalar_summary({"test_loss": state.test_loss}),
                                   int(session.run(graph.global_step)))
                state.save(folder)
                LOGGER.info("%s phase: test loss %.5f with the best model (%s)", PHASES[phase],
                            state.test_loss, state.best_checkpoint)
            finally:
                writer.close()
    return state


def restore_or_initialise(session, saver, folder, graph, init_checkpoint, state):
    """Continue from the folder's newest usable checkpoint, or start a new phase.

    A damaged checkpoint (truncated or missing files: what a kill during a save or a full disk
    leaves) is passed over with a warning naming the bad file, and the previous one is used;
    ``state`` is then rewound to that checkpoint's step. A new phase may take its separator
    weights from ``init_checkpoint`` (the supervised model, with ``semisup_init="supervised"``);
    everything else starts fresh.

    Returns:
        The phase state to continue with (``state`` itself unless it had to be rewound).

    Raises:
        Checkpoints.CheckpointError: the folder records progress but no checkpoint can be restored.
    """
    damaged = []
    for prefix in Checkpoints.checkpoint_candidates(folder):
        try:
            saver.restore(session, prefix)
        except (tf.errors.OpError, ValueError):
            damaged.append(Checkpoints.damaged_file(prefix))
            LOGGER.warning("Cannot restore checkpoint %s: %s. Trying the previous one.", prefix, damaged[-1])
            continue
        step = int(session.run(graph.global_step))
        if damaged:
            best_step = Checkpoints.checkpoint_step(state.best_checkpoint) if state.best_checkpoint else None
            state = state.rewound(step, best_step)
            state.save(folder)
            LOGGER.warning("Continuing from the older checkpoint %s: the %s phase is rewound to step %d "
                           "(%d epoch(s) done).", prefix, PHASES[state.phase], step, state.epoch)
        LOGGER.info("Resuming %s phase from %s (step %d, epoch %d)", PHASES[state.phase], prefix, step,
                    state.epoch + 1)
        return state
    if damaged or state.epoch > 0:
        found = "; ".join(damaged) if damaged else "no checkpoint files are left"
        raise Checkpoints.CheckpointError(
            f"{folder} records {state.epoch} finished epoch(s) of the {PHASES[state.phase]} phase, but none of its "
            f"checkpoints can be restored ({found}). Restore the files from a backup, or move the folder away "
            "to train this phase again from the start.")
    if init_checkpoint:
        tf.compat.v1.train.Saver(var_list=graph.separator_variables()).restore(session, init_checkpoint)
        LOGGER.info("Separator initialised from %s", init_checkpoint)
    return state


def train_phase(session, graph, saver, writer, summaries, folder, state, dataset, model_config,
                seed, patience, max_epochs, summary_every, image_every, magnitudes=None):
    """Epochs with a checkpoint and the validation loss after each, until early stopping.

    Ctrl-C (or SIGTERM, see :func:`Utils.terminate_like_ctrl_c`) saves a checkpoint (and the
    early-stopping state) before it stops the run; a non-finite loss or weight finishes the
    phase with the last good checkpoint kept. The readers' random streams are seeded from
    ``(seed, global step)``, so a resumed run draws new data rather than replaying the stream
    its interrupted epoch had started with.
    """
    semi_supervised = state.phase == "semisup"
    start_step = int(session.run(graph.global_step))
    with TrainingData.batch_generators(dataset, model_config, semi_supervised, [seed, start_step],
                          magnitudes) as (paired, mixtures, sources):
        while not state.finished:
            if max_epochs is not None and state.epoch >= max_epochs:
                state.finish(f"reached max_epochs={max_epochs}")
                break
            epoch_start = time.perf_counter()
            try:
                step, scalars, wait = train_epoch(session, graph, writer, summaries, paired, mixtures,
                                                  sources, model_config, state, summary_every, image_every)
            except KeyboardInterrupt:
                step = int(session.run(graph.global_step))
                path = Checkpoints.save_checkpoint(saver, session, folder, step)
                state.save(folder)
                LOGGER.warning("Interrupted at step %d: saved %s. Continue with: python Training.py with "
                               "resume=%s", step, path, folder)
                raise
            except NonFiniteLossError as error:
                state.finish(f"stopped: {error}")
                state.save(folder)
                LOGGER.error("Stopping the %s phase: %s. The last good checkpoint is kept.",
                             PHASES[state.phase], error)
                break
            checkpoint = Checkpoints.save_checkpoint(saver, session, folder, step)
            valid_loss = TrainingData.partition_loss(session, graph, dataset["valid"], model_config)
            seconds = time.perf_counter() - epoch_start
            if state.record_validation(valid_loss, step, seconds, patience):
                state.best_checkpoint = Checkpoints.keep_best(folder, checkpoint, model_config)
            state.epoch_start_step = step
            state.save(folder)
            writer.add_summary(Summaries.scalar_summary({"valid_loss": valid_loss, "best_valid_loss": state.best_loss}), step)
            if dataset["valid"]:
                writer.add_summary(Summaries.audio_summary(
                    TrainingData.validation_clips(session, graph, dataset["valid"][0], model_config),
                    model_config["expected_sr"]), step)
            writer.flush()
            losses = ", ".join(f"{name} {value:.4g}" for name, value in sorted(scalars.items()))
            LOGGER.info("%s epoch %d (step %d): %s | valid %.5f (best %.5f) | %.0f s, %.0f%% waiting for data",
                        PHASES[state.phase], state.epoch, step, losses, valid_loss, state.best_loss,
                        seconds, 100 * wait)
        LOGGER.info("%s phase finished: %s", PHASES[state.phase], state.stop_reason)


# ----------------------------------------------------------------------------------------
# Sacred entry points
# ----------------------------------------------------------------------------------------

def prepare(seed):
    """Process-wide set-up shared by every command: logging, graph mode, numpy seed."""
    Utils.setup_logging()
    tf.get_logger().setLevel(logging.WARNING)  # we log restores ourselves
    tf.compat.v1.disable_eager_execution()
    np.random.seed(seed % 2 ** 32)


def save_results(results_by_model, out_dir, run, partition="test"):
    """Write result files, attach them to the sacred run and return the printed table.

    The museval JSON (with BSS Eval v4) goes to ``<out_dir>/museval``; it is not attached
    (one file per song and model), ``run.info["museval_dir"]`` names the folder.
    """
    paths = Results.write_results(results_by_model, out_dir, museval_subset=partition)
    for path in paths:
        run.add_artifact(path)
    run.info["results"] = Results.summarise(results_by_model)
    if os.path.isdir(Results.museval_dir(out_dir)):
        run.info["museval_dir"] = Results.museval_dir(out_dir)
    return Results.format_results_table(results_by_model)


@ex.main
def main(_run, model_config, experiment_id, seed, deterministic, dataset_xmls, dataset_roots,
         cache_dir, spectrogram_cache, dataset_pkl, custom_dataset, partition_config, use_demo, demo_database,
         patience, max_epochs, semisup_init, resume, summary_every, image_every, eval_workers, eval_batch_size,
         results_dir, bss_eval, unpaired_folders):
    """Supervised training, semi-supervised training, then BSS Eval of both on the test set."""
    prepare(seed)  # op determinism is switched on by optimise's session
    with user_errors():
        if semisup_init not in ("scratch", "supervised"):
            raise ValueError(f"semisup_init={semisup_init!r}: use 'scratch' (the paper) or 'supervised'.")
        bss_eval = Evaluate.check_bss_eval(bss_eval)  # before training, not after it
        if resume:
            experiment_id, model_base_dir = Checkpoints.resolve_resume(resume)
            model_config = dict(model_config, model_base_dir=model_base_dir)
            LOGGER.info("Resuming experiment %s", experiment_id)
        else:
            Checkpoints.refuse_to_reuse(model_config["model_base_dir"], model_config["log_dir"], experiment_id)
        dataset = TrainingData.load_dataset(dataset_xmls, dataset_roots, cache_dir, dataset_pkl, partition_config,
                               custom_dataset, use_demo, demo_database, unpaired_folders, model_config["sources"],
                               need_unpaired=True)
        LOGGER.info("Dataset:\n%s", Datasets.dataset_table(dataset))
        # Reader processes then read audio at the model's rate instead of resampling every section.
        dataset = AudioCache.model_rate_dataset(dataset, cache_dir, model_config["expected_sr"],
                                                model_config["mono_downmix"])
        magnitudes = None
        if spectrogram_cache:
            magnitudes = AudioCache.magnitude_store({key: dataset[key] for key in ("train_sup", "train_unsup")},
                                                    cache_dir, model_config["expected_sr"], model_config["num_fft"],
                                                    model_config["num_hop"])
    _run.info["experiment_id"] = experiment_id

    phase_settings = dict(experiment_id=experiment_id, seed=seed, patience=patience, max_epochs=max_epochs,
                          summary_every=summary_every, image_every=image_every, deterministic=deterministic,
                          magnitudes=magnitudes)
    with Utils.terminate_like_ctrl_c(), unusable_files_end_the_run():
        sup = optimise("sup", dataset, model_config, **phase_settings)
        _run.log_scalar("supervised.test_loss", sup.test_loss)
        init = sup.best_checkpoint if semisup_init == "supervised" else None
        semisup = optimise("semisup", dataset, model_config, init_checkpoint=init, **phase_settings)
        _run.log_scalar("semi-supervised.test_loss", semisup.test_loss)

        results = {}
        for name, state in ((PHASES["sup"], sup), (PHASES["semisup"], semisup)):
            LOGGER.info("Evaluating the %s model on %d test songs", name, len(dataset["test"]))
            results[name] = Evaluate.evaluate_model(os.path.dirname(state.best_checkpoint), dataset["test"],
                                                    num_workers=eval_workers, batch_size=eval_batch_size,
                                                    model_name=name, bss_eval=bss_eval)
    table = save_results(results, os.path.join(results_dir, str(experiment_id)), _run)
    # The experiment's question, answered below its table: semi-supervised minus supervised per source
    # (SDR, the paper's; SDR_v4 if v3 is switched off).
    metric = Comparison.gain_metric(bss_eval)
    gains = Comparison.gain_table([results[PHASES["sup"]]], [results[PHASES["semisup"]]], metric)
    _run.info["sdr_gain"] = gains
    print(table)
    print(Comparison.format_gain_lines(gains, metric))
    return {"experiment_id": str(experiment_id),
            "supervised": {"test_loss": sup.test_loss, "best_checkpoint": sup.best_checkpoint,
                           "epochs": sup.epoch},
            "semi-supervised": {"test_loss": semisup.test_loss, "best_checkpoint": semisup.best_checkpoint,
                                "epochs": semisup.epoch}}


@ex.command
def datasets(dataset_xmls, dataset_roots, cache_dir, dataset_pkl, partition_config, custom_dataset,
             use_demo, demo_database, seed, unpaired_folders, model_config):
    """Print the number of songs and hours of audio per partition and database."""
    prepare(seed)
    with user_errors():
        dataset = TrainingData.load_dataset(dataset_xmls, dataset_roots, cache_dir, dataset_pkl, partition_config,
                               custom_dataset, use_demo, demo_database, unpaired_folders, model_config["sources"])
    print(Datasets.dataset_table(dataset))


@ex.command
def evaluate(_run, model_path, partition, dataset_xmls, dataset_roots, cache_dir, dataset_pkl,
             partition_config, custom_dataset, use_demo, demo_database, seed, eval_workers, eval_batch_size,
             results_dir, bss_eval, eval_precision, unpaired_folders, model_config):
    """BSS Eval of one checkpoint folder on the test (or valid) partition."""
    prepare(seed)
    with user_errors():
        if not model_path:
            raise ValueError("evaluate needs model_path=<checkpoint folder>, e.g. "
                             "python Training.py evaluate with model_path=checkpoints/<id>_sup/best")
        if partition not in ("test", "valid"):
            raise ValueError(f"partition={partition!r}: use test or valid.")
        bss_eval = Evaluate.check_bss_eval(bss_eval)
        if eval_precision is not None:
            Precision.check_precision(eval_precision, setting="eval_precision")
        dataset = TrainingData.load_dataset(dataset_xmls, dataset_roots, cache_dir, dataset_pkl, partition_config,
                               custom_dataset, use_demo, demo_database, unpaired_folders, model_config["sources"])
        rows = Evaluate.evaluate_model(model_path, dataset[partition], num_workers=eval_workers,
                                       batch_size=eval_batch_size, bss_eval=bss_eval, precision=eval_precision)
    name = rows[0]["model"] if rows else os.path.basename(os.path.normpath(model_path))
    out_dir = os.path.join(results_dir, f"evaluate_{_run._id or time.strftime('%Y%m%d-%H%M%S')}")
    print(save_results({name: rows}, out_dir, _run, partition))


@ex.command
def separate(model_path, input_path, output_dir, overwrite, eval_batch_size, eval_precision, seed):
    """Separate an audio file, or every audio file in a folder, into one WAV per source."""
    prepare(seed)
    with user_errors():
        if not model_path or not input_path:
            raise ValueError("separate needs model_path=<checkpoint folder> and input_path=<file or folder>, "
                             "e.g. python Training.py separate with model_path=checkpoints/<id>_semisup/best "
                             "input_path=song.mp3 output_dir=separated")
        written = SeparateFiles.separate_path(model_path, input_path, output_dir, overwrite=overwrite,
                                             batch_size=eval_batch_size, precision=eval_precision)
    for path in written:
        print(path)


if __name__ == "__main__":
    if not any(command in sys.argv[1:2] for command in ("datasets", "separate", "print_config")):
        ex.observers.append(FileStorageObserver(os.environ.get("SACRED_RUNS_DIR", "runs")))
    ex.run_commandline()
