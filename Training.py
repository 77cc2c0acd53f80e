"""Adversarial semi-supervised singing voice separation (Stoller, Ewert & Dixon, ICASSP 2018).

The paper's experiment: supervised training, then semi-supervised adversarial training, then
BSS Eval of both models on the test songs. Settings follow "with", as key=value pairs or the
name of a preset such as demo; print_config lists them all with a description.

Examples:
  python Training.py with demo
      the whole experiment on the built-in demo database, in minutes on a CPU
  python Training.py with dataset_roots.DSD100=/data/DSD100 dataset_roots.MedleyDB=/data/MedleyDB
                          dataset_roots.CCMixter=/data/CCMixter dataset_roots.iKala=/data/iKala
      the whole experiment on your copies of the four databases
  python Training.py datasets with demo
      songs and hours of audio per partition and database
  python Training.py with resume=runs/1
      continue an interrupted run (add the settings it was started with)
  python Training.py evaluate with model_path=checkpoints/EXPERIMENT_ID_semisup/best
      BSS Eval of one trained model on the test songs
  python Training.py separate with model_path=checkpoints/EXPERIMENT_ID_semisup/best
                                   input_path=song.mp3 output_dir=separated
      one WAV per source for a song, or for every song in a folder
  python Training.py print_config with demo
      every setting, its value and what it does

TensorFlow's own start-up and information messages are hidden; TF_CPP_MIN_LOG_LEVEL=0 shows them.

This file holds the sacred experiment: its settings, the presets and thin commands. The method
lives in the library, which tests and benchmarks call without sacred: experiment/Trainer.py
(one phase: critic updates, separator updates, epochs, early stopping), experiment/Experiment.py
(both phases, then BSS Eval) and common/Config.py (every model_config key, checked once).
"""

import contextlib
import dataclasses
import logging
import os
import time
from typing import Callable, Dict, Iterator, Optional, Sequence, Union

from common import TensorFlowSetup, Utils

Utils.use_fast_cpu_kernels()
Utils.plain_numba_errors()
TensorFlowSetup.import_tensorflow()  # its start-up lines once, and only at TF_CPP_MIN_LOG_LEVEL=0

import numpy as np
import tensorflow as tf
from sacred import SETTINGS, Experiment
from sacred.observers import FileStorageObserver
from sacred.run import Run
from sacred.utils import SacredError

import Datasets
import Evaluate
import Input
from common import Checkpoints, Config
from databases import DatasetDicts
from evaluation import Comparison, Headline, Results, SeparateFiles
from experiment import ConfigDocs, Settings
from experiment.Experiment import run_experiment
from experiment.TrainingData import TrainingData, load_dataset
from Sample import AudioDecoderError

LOGGER = logging.getLogger("Training")
PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
DATABASES = ("DSD100", "MedleyDB", "CCMixter", "iKala", "MUSDB18HQ", "MUSDB18", "SongFolders")

# Capture output at the Python level: reader processes keep no handle on sacred's tee pipes.
SETTINGS.CAPTURE_MODE = "sys"
ex = Experiment("Adversarial_Source_Separation", save_git_info=False)
ex.logger = Utils.setup_logging()
ex.captured_out_filter = Utils.CapturedOutputFilter()  # cout.txt: the log and printed lines, no bars


class UsageError(SacredError):
    """A wrong setting, path or file: shown to the user as one message, without a traceback."""

    def __init__(self, message: str):
        super().__init__(message, print_traceback=False)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors caused by the user's settings or files into a :class:`UsageError`."""
    try:
        yield
    except (
        Datasets.DatasetConfigError,
        AudioDecoderError,
        Input.UnreadableAudioError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
    ) as error:
        raise UsageError(str(error)) from error


@contextlib.contextmanager
def unusable_files_end_the_run() -> Iterator[None]:
    """During training, a file that cannot be used (NaN samples, a damaged cached copy) or
    checkpoints that cannot be restored end the run with one message instead of a traceback."""
    try:
        yield
    except (Input.NonFiniteAudioError, Checkpoints.CheckpointError) as error:
        raise UsageError(str(error)) from error


def documented_config(function: Callable) -> ConfigDocs.DocumentedConfigScope:
    """Like ``@ex.config``, with :func:`nested_descriptions` for the nested keys."""
    scope = ConfigDocs.DocumentedConfigScope(function, ConfigDocs.nested_descriptions(DATABASES))
    ex.configurations.append(scope)
    return scope


@documented_config
def config() -> None:
    """Every setting with its default; the comment on its line is its description (``print_config``)."""
    model_config = Config.ModelConfig().to_dict()  # the model and its training: common/Config.py, one line per key
    experiment_id = Checkpoints.new_experiment_id()  # names checkpoint and log folders; unique per run
    seed = 2018  # reaches numpy, the TensorFlow graph seed and every reader process
    deterministic = False  # TF op determinism (slower); with num_workers=0 runs repeat exactly

    # Data: the XMLs describe each database; dataset_roots.<NAME>=/path overrides the
    # databaseFolderPath in the XML without editing it.
    dataset_xmls = {name: os.path.join(PROJECT_DIR, name + ".xml") for name in DATABASES[:4]}  # one XML per database
    dataset_roots = {name: None for name in DATABASES}  # database folders overriding the XMLs' (None: keep)
    cache_dir = "cache"  # derived audio (accompaniments, stem sums, model-rate copies, spectrograms), demo database
    # The store is about the size of the 8192 Hz copies; reader processes copy sections of it instead of doing STFTs.
    spectrogram_cache = True  # compute each training file's magnitudes once into <cache_dir>/magnitudes
    dataset_pkl = "dataset.pkl"  # cached partition; rebuilt whenever its inputs change
    custom_dataset = None  # "module:function" returning your own dataset dictionary
    # Folders of unpaired audio (any format, rate, channels; sub-folders too) added to train_unsup, per list
    unpaired_folders = {"mixtures": [], "accompaniment": [], "voice": []}
    partition_config = {
        "supervised_database": "DSD100",
        "unsupervised_databases": ["MedleyDB", "CCMixter", "iKala"],
        "supervised_valid_songs": 25,
        "supervised_validation": "test_songs",
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
    # What the separate command writes: "fullband" the input's rate, channels and whole band (the model's
    # estimates as soft masks on the input's STFT; the sources add up to the input), "model" mono in the
    # model's band (up to expected_sr / 2) resampled to the input's rate. docs/separation.md
    separate_mode = "fullband"


@ex.config_hook
def check_configuration(config: dict, command_name: str, logger: logging.Logger) -> dict:
    """Check every setting once, when any command starts: before it creates a folder or a run.

    Sacred only warns about an unknown nested key (``model_config.alpah``): here it is refused,
    naming the key it resembles, as an unknown top-level one is.
    """
    with user_errors():
        Settings.check_settings(config, known=config_keys())
    return {}


def config_keys() -> set:
    """The top-level keys of the configuration (of :func:`config`, whose values are not used)."""
    return set(config()) | {"seed"}


@ex.named_config
def demo() -> None:
    """The whole experiment on the built-in demo database with a short-budget recipe (minutes on 2 CPU cores)."""
    # The paper's method with a short-budget recipe (160 separator updates per phase instead of
    # tens of thousands). With use_demo=False the same recipe trains on your data (dataset_roots...)
    # with the paper's partition. The recipe was chosen on the validation songs; how, and what each
    # of its values was compared against, is in docs/experiments.md ("How the demo recipe was chosen").
    use_demo = True
    model_config = {
        # Small batches and reader caches: the demo songs are 9-15 s long.
        "batch_size": 8,
        "epoch_it": 40,
        "num_workers": 2,
        "cache_size": 16,
        "duration": 4,
        "min_replacement_rate": 2,
        "num_disc": 1,
        # Learning rates 10x the paper's 5e-5 for the short budget (both phases alike), the critics' 4x.
        "init_sup_sep_lr": 5e-4,
        "init_unsup_sep_lr": 5e-4,
        "init_disc_lr": 2e-4,
        # Critic updates before the separator first sees L_u, so that L_u starts from critics that
        # have learnt something. The critics' Adam keeps the paper's betas (0.9, 0.999).
        "critic_warmup": 40,
    }
    if use_demo:  # the demo database's data settings; use_demo=False keeps the recipe for your data
        partition_config = {"supervised_valid_songs": 2}
    # Epochs of 40 updates give a noisy validation loss: with the paper's patience of 1, a run can
    # stop after one unlucky epoch. Both phases get the same patience and budget.
    patience = 2
    max_epochs = 4
    summary_every = 5
    image_every = 25


# ----------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------


def prepare(seed: int) -> None:
    """Process-wide set-up shared by every command: logging, graph mode, numpy seed."""
    Utils.setup_logging()
    tf.get_logger().setLevel(logging.WARNING)  # we log restores ourselves
    tf.compat.v1.disable_eager_execution()
    np.random.seed(seed % 2**32)


@user_errors()  # a result file that cannot be written: one message (the table is logged first)
def save_results(
    results_by_model: Dict[str, list],
    out_dir: str,
    run: Run,
    partition: str = "test",
    gains: Optional[list] = None,
    gain_metric: str = "SDR",
) -> str:
    """Write result files, attach them to the sacred run and return the printed text (the short
    table, the gain lines if ``gains``, and where the full table and the files are).

    The museval JSON (with BSS Eval v4) goes to ``<out_dir>/museval``; it is not attached
    (one file per song and model), ``run.info["museval_dir"]`` names the folder.
    """
    paths = Results.write_results(results_by_model, out_dir, museval_subset=partition)
    printed = Headline.write_headline(results_by_model, out_dir, gains, gain_metric)
    for path in paths + printed.paths:
        run.add_artifact(path)
    run.info["results"] = Results.summarise(results_by_model)
    if os.path.isdir(Results.museval_dir(out_dir)):
        run.info["museval_dir"] = Results.museval_dir(out_dir)
    return printed.text


DATASET_SETTINGS = (
    "dataset_xmls",
    "dataset_roots",
    "cache_dir",
    "dataset_pkl",
    "partition_config",
    "custom_dataset",
    "use_demo",
    "demo_database",
)  # load_dataset's arguments, in order


@ex.main
def main(_run: Run, _config: dict) -> dict:
    """Supervised training, semi-supervised training, then BSS Eval of both on the test set."""
    prepare(_config["seed"])  # op determinism is switched on by the trainer's session
    with user_errors():
        config = Config.ModelConfig.from_dict(_config["model_config"])
        settings = Settings.PhaseSettings.from_config(_config)
        bss_eval = Evaluate.check_bss_eval(_config["bss_eval"])  # before training, not after it
        if _config["resume"]:
            experiment_id, model_base_dir = Checkpoints.resolve_resume(_config["resume"])
            config = config.replace(model_base_dir=model_base_dir)
            settings = dataclasses.replace(settings, experiment_id=experiment_id)
            for phase in ("sup", "semisup"):  # before anything is written or trained
                Checkpoints.check_same_network(Checkpoints.phase_folder(model_base_dir, experiment_id, phase), config)
            LOGGER.info("Resuming experiment %s", settings.experiment_id)
        else:
            Checkpoints.refuse_to_reuse(config.folders.model_base_dir, config.folders.log_dir, settings.experiment_id)
        dataset = load_dataset(
            *(_config[key] for key in DATASET_SETTINGS),
            _config["unpaired_folders"],
            config.network.sources,
            need_unpaired=True,
        )
        LOGGER.info("Dataset:\n%s", DatasetDicts.dataset_table(dataset))
        data = TrainingData.prepare(dataset, _config["cache_dir"], config.signal, _config["spectrogram_cache"])
    _run.info["experiment_id"] = settings.experiment_id

    def log_test_loss(name, state):
        _run.log_scalar(f"{name}.test_loss", state.test_loss)

    with Utils.terminate_like_ctrl_c(), unusable_files_end_the_run():
        states, results = run_experiment(
            data,
            config,
            settings,
            _config["semisup_init"],
            _config["eval_workers"],
            _config["eval_batch_size"],
            bss_eval,
            phase_done=log_test_loss,
        )
    # The experiment's question, answered below its table: semi-supervised minus supervised per source
    # (SDR, the paper's; SDR_v4 if v3 is switched off).
    metric = Comparison.gain_metric(bss_eval)
    gains = Comparison.gain_table([results["supervised"]], [results["semi-supervised"]], metric)
    _run.info["sdr_gain"] = gains
    print(
        save_results(
            results, os.path.join(_config["results_dir"], settings.experiment_id), _run, gains=gains, gain_metric=metric
        )
    )
    return {
        "experiment_id": settings.experiment_id,
        **{
            name: {"test_loss": state.test_loss, "best_checkpoint": state.best_checkpoint, "epochs": state.epoch}
            for name, state in states.items()
        },
    }


@ex.command(unobserved=True)  # prints only; nothing to record
def datasets(
    dataset_xmls: Dict[str, str],
    dataset_roots: Dict[str, Optional[str]],
    cache_dir: str,
    dataset_pkl: str,
    partition_config: dict,
    custom_dataset: Optional[str],
    use_demo: bool,
    demo_database: dict,
    seed: int,
    unpaired_folders: dict,
    model_config: dict,
) -> None:
    """Print the number of songs and hours of audio per partition and database."""
    prepare(seed)
    with user_errors():
        dataset = load_dataset(
            dataset_xmls,
            dataset_roots,
            cache_dir,
            dataset_pkl,
            partition_config,
            custom_dataset,
            use_demo,
            demo_database,
            unpaired_folders,
            model_config["sources"],
        )
    print(DatasetDicts.dataset_table(dataset))


@ex.command
def evaluate(
    _run: Run,
    model_path: Optional[str],
    partition: str,
    dataset_xmls: Dict[str, str],
    dataset_roots: Dict[str, Optional[str]],
    cache_dir: str,
    dataset_pkl: str,
    partition_config: dict,
    custom_dataset: Optional[str],
    use_demo: bool,
    demo_database: dict,
    seed: int,
    eval_workers: int,
    eval_batch_size: int,
    results_dir: str,
    bss_eval: Union[str, Sequence[str]],
    eval_precision: Optional[str],
    unpaired_folders: dict,
    model_config: dict,
) -> None:
    """BSS Eval of one checkpoint folder on the test (or valid) partition."""
    prepare(seed)
    with user_errors():
        if not model_path:
            raise ValueError(
                "evaluate needs model_path=<checkpoint folder>, e.g. "
                "python Training.py evaluate with model_path=checkpoints/<id>_sup/best"
            )
        bss_eval = Evaluate.check_bss_eval(bss_eval)
        Utils.check_writable(results_dir)  # before the model is loaded and the songs separated
        dataset = load_dataset(
            dataset_xmls,
            dataset_roots,
            cache_dir,
            dataset_pkl,
            partition_config,
            custom_dataset,
            use_demo,
            demo_database,
            unpaired_folders,
            model_config["sources"],
        )
        rows = Evaluate.evaluate_model(
            model_path,
            dataset[partition],
            num_workers=eval_workers,
            batch_size=eval_batch_size,
            bss_eval=bss_eval,
            precision=eval_precision,
        )
    name = rows[0]["model"] if rows else os.path.basename(os.path.normpath(model_path))
    out_dir = os.path.join(results_dir, f"evaluate_{_run._id or time.strftime('%Y%m%d-%H%M%S')}")
    print(save_results({name: rows}, out_dir, _run, partition))


@ex.command(unobserved=True)  # prints only; nothing to record
def separate(
    model_path: Optional[str],
    input_path: Optional[str],
    output_dir: str,
    overwrite: bool,
    eval_batch_size: int,
    eval_precision: Optional[str],
    separate_mode: str,
    seed: int,
) -> None:
    """Separate an audio file, or every audio file in a folder, into one WAV per source."""
    prepare(seed)
    with user_errors():
        if not model_path or not input_path:
            raise ValueError(
                "separate needs model_path=<checkpoint folder> and input_path=<file or folder>, "
                "e.g. python Training.py separate with model_path=checkpoints/<id>_semisup/best "
                "input_path=song.mp3 output_dir=separated"
            )
        written = SeparateFiles.separate_path(
            model_path,
            input_path,
            output_dir,
            overwrite=overwrite,
            batch_size=eval_batch_size,
            precision=eval_precision,
            mode=separate_mode,
        )
    for path in written:
        print(path)


if __name__ == "__main__":
    # main and evaluate record to runs/<id>; sacred leaves the unobserved commands unrecorded.
    ex.observers.append(FileStorageObserver(os.environ.get("SACRED_RUNS_DIR", "runs")))
    ex.run_commandline()
