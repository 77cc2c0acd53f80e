"""Checkpoint folders, early stopping and resume bookkeeping for one training phase.

A phase folder (``<model_base_dir>/<experiment_id>_<phase>``, phase ``sup`` or ``semisup``)
holds everything needed to continue or to use the phase's model without any other file:

- ``model_config.json``: the model configuration the graph was built from;
- ``model-<step>.*`` and ``checkpoint``: TensorFlow ``Saver`` checkpoints (all variables,
  optimiser slots and the step counter included), one per epoch plus interruptions;
- ``best/``: a copy of the checkpoint with the lowest validation loss, with its own
  ``model_config.json`` and ``checkpoint`` state file, so ``best/`` is a complete model folder;
- ``training_state.json``: epoch counter, early-stopping state and whether the phase finished.
"""

import dataclasses
import glob
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from common import Utils
from common.Config import ConfigError, ModelConfig, model_file_keys

if TYPE_CHECKING:  # the callers import TensorFlow (through TensorFlowSetup)
    import tensorflow as tf

LOGGER = logging.getLogger(__name__)

MODEL_CONFIG_FILE = "model_config.json"
STATE_FILE = "training_state.json"
BEST_FOLDER = "best"
CHECKPOINT_PREFIX = "model"
CHECKPOINT_STATE_FILE = "checkpoint"  # TensorFlow's list of the folder's checkpoints
# Last 8 bytes of an intact checkpoint .index file (an SSTable's magic number, little-endian).
_INDEX_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")


class CheckpointError(RuntimeError):
    """A phase folder has progress recorded but no checkpoint that can be restored."""


def new_experiment_id() -> str:
    """``<YYYYmmdd-HHMMSS>-<6 hex digits>``: sortable by start time and unique per run, also
    for runs started in the same second (a job array on a cluster)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


@dataclasses.dataclass
class PhaseState:
    """Progress of one training phase, saved after every epoch and on interruption.

    Attributes:
        phase: ``"sup"`` or ``"semisup"``.
        epoch: number of completed epochs.
        epoch_start_step: global step at which the current (unfinished) epoch began.
        best_loss: lowest validation loss so far (``inf`` before the first epoch).
        best_checkpoint: checkpoint prefix inside ``best/`` of that model, or ``None``.
        worse_epochs: epochs since the last improvement (early stopping counter).
        finished: the phase stopped (early stopping, epoch limit or a non-finite loss).
        stop_reason: a short human-readable reason once finished.
        test_loss: supervised loss of the best model on the test partition, once computed.
        history: one dict per epoch (epoch, step, validation loss, seconds).
    """

    phase: str
    epoch: int = 0
    epoch_start_step: int = 0
    best_loss: float = math.inf
    best_checkpoint: Optional[str] = None
    worse_epochs: int = 0
    finished: bool = False
    stop_reason: str = ""
    test_loss: Optional[float] = None
    history: list = dataclasses.field(default_factory=list)

    def record_validation(self, loss: float, step: int, seconds: float, patience: float) -> bool:
        """Update early stopping with an epoch's validation loss.

        Returns:
            True if ``loss`` is a new best (the caller then keeps that checkpoint).
        """
        improved = loss < self.best_loss
        if improved:
            self.best_loss = float(loss)
            self.worse_epochs = 0
        else:
            self.worse_epochs += 1
        self.epoch += 1
        self.history.append(
            {
                "epoch": self.epoch,
                "step": int(step),
                "valid_loss": float(loss),
                "seconds": float(seconds),
                "improved": bool(improved),
            }
        )
        if self.worse_epochs >= patience:
            self.finish(f"validation loss did not improve for {self.worse_epochs} epoch(s)")
        return improved

    def finish(self, reason: str) -> None:
        """Mark the phase as finished with a human-readable reason."""
        self.finished = True
        self.stop_reason = reason

    def save(self, folder: str) -> None:
        """Write the state atomically to ``<folder>/training_state.json``."""
        Utils.atomic_write_json(os.path.join(folder, STATE_FILE), _finite_json(dataclasses.asdict(self)))

    def rewound(self, step: int, best_step: Optional[int] = None) -> "PhaseState":
        """The state as it was when the checkpoint of ``step`` was saved.

        Used when later checkpoints are damaged: the epochs validated after ``step`` are
        forgotten and early stopping is replayed over the ones before. ``best_step`` is the
        step of the model kept in ``best/``; if it is not among the kept epochs, no best
        model is claimed, and the next validated epoch becomes the best.
        """
        state = type(self)(phase=self.phase)
        for entry in self.history:
            if entry["step"] <= step:
                state.record_validation(entry["valid_loss"], entry["step"], entry["seconds"], math.inf)
        state.epoch_start_step = state.history[-1]["step"] if state.history else 0
        best_entries = [entry for entry in state.history if entry["valid_loss"] == state.best_loss]
        if best_step is not None and best_entries and best_entries[0]["step"] == best_step:
            state.best_checkpoint = self.best_checkpoint
        else:
            state.best_loss = math.inf
        return state

    @classmethod
    def load(cls, folder: str, phase: str) -> "PhaseState":
        """Read the state of ``folder``, or a fresh state when the phase has not started."""
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            return cls(phase=phase)
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
        if values.get("best_loss") is None:
            values["best_loss"] = math.inf
        return cls(**values)


def _finite_json(values):
    """JSON has no infinity: store an unset best loss as null."""
    if values.get("best_loss") == math.inf:
        values = dict(values, best_loss=None)
    return values


def phase_folder(model_base_dir: str, experiment_id: str, phase: str) -> str:
    """Checkpoint folder of one phase: ``<model_base_dir>/<experiment_id>_<phase>``."""
    return os.path.join(model_base_dir, f"{experiment_id}_{phase}")


def write_model_config(folder: str, config: ModelConfig) -> None:
    """Store the model configuration beside the checkpoints: ``<folder>/model_config.json``,
    a flat JSON dict of every key (:meth:`ModelConfig.to_dict`), written atomically."""
    Utils.atomic_write_json(os.path.join(folder, MODEL_CONFIG_FILE), config.to_dict())


def read_model_config(folder: str) -> ModelConfig:
    """The configuration stored in ``<folder>/model_config.json``.

    Files written before a key existed load with that key's default; the keys that fix the
    network and its signal (:func:`Config.model_file_keys`) must be there.

    Raises:
        FileNotFoundError: the file is missing. ValueError (``ConfigError``): it is not a JSON
            dict, lacks a key the network needs, or holds an unknown key or a bad value; the
            message names the file.
    """
    path = os.path.join(folder, MODEL_CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model folder {folder} has no {MODEL_CONFIG_FILE}.")
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); restore it from the training run.") from error
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path} is not a JSON text file (byte {error.start} is not UTF-8: the file is damaged "
            "or not a model_config.json); restore it from the training run."
        ) from error
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path} holds a JSON {type(values).__name__}, not the model_config object of a run; "
            "restore it from the training run."
        )
    return ModelConfig.from_dict(values, where=path, required=model_file_keys())


class SettingsMismatchError(CheckpointError, ValueError):
    """Settings that shape the network differ from those a checkpoint folder was trained with
    (a ``ValueError`` too: it is the user's setting that is wrong)."""


def check_same_network(folder: str, config: ModelConfig) -> None:
    """Refuse to continue the phase in ``folder`` with settings that shape another network.

    Compares the keys that fix the network and its signal (``Config.model_file_keys``) with the
    folder's ``model_config.json``; a folder without one (a new phase) passes.

    Raises:
        SettingsMismatchError: listing every differing key with both values, before any file is written.
    """
    if not os.path.isfile(os.path.join(folder, MODEL_CONFIG_FILE)):
        return
    stored, current = read_model_config(folder).to_dict(), config.to_dict()
    differences = [
        f"model_config.{key}={current[key]!r} (the folder's: {stored[key]!r})"
        for key in model_file_keys()
        if stored[key] != current[key]
    ]
    if differences:
        raise SettingsMismatchError(
            f"{folder} was trained with another network than these settings give: {'; '.join(differences)}. "
            "Resume with the settings the run was started with (its model_config.json), or start a new "
            "experiment_id."
        )


def variable_mismatches(checkpoint: str, variables: List["tf.Variable"], scope: str) -> List[str]:
    """How the graph's ``variables`` under ``scope`` (e.g. ``"separator/"``) differ from a checkpoint's.

    Returns:
        One line per variable that the checkpoint lacks, holds with another shape, or holds
        under ``scope`` although the graph has no such variable; ``[]`` if they agree.

    Raises:
        ValueError: the checkpoint cannot be read (named).
    """
    import tensorflow as tf

    try:
        stored = {name: list(shape) for name, shape in tf.train.list_variables(checkpoint) if name.startswith(scope)}
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(
            f"Cannot read checkpoint {checkpoint} ({error}); is it complete? Use a checkpoint written by Training.py."
        ) from error
    graph = {variable.op.name: variable.shape.as_list() for variable in variables}
    problems = [f"{name} is missing" for name in sorted(set(graph) - set(stored))]
    problems += [
        f"{name} has shape {stored[name]}, the settings give {graph[name]}"
        for name in sorted(set(graph) & set(stored))
        if stored[name] != graph[name]
    ]
    problems += [
        f"{name} {stored[name]} has no place in the network the settings give"
        for name in sorted(set(stored) - set(graph))
    ]
    return problems


def save_checkpoint(saver: "tf.compat.v1.train.Saver", session: "tf.compat.v1.Session", folder: str, step: int) -> str:
    """Save all variables as ``<folder>/model-<step>`` and return that checkpoint prefix."""
    return saver.save(session, os.path.join(folder, CHECKPOINT_PREFIX), global_step=int(step))


def keep_best(folder: str, checkpoint_prefix: str, config: ModelConfig) -> str:
    """Copy a checkpoint into ``<folder>/best`` (replacing the previous best) atomically.

    The copy is assembled in a temporary folder and swapped in with renames, so an
    interruption leaves either the old or the new best model, never a mixture.

    Returns:
        The checkpoint prefix inside ``best/``.
    """
    best = os.path.join(folder, BEST_FOLDER)
    staging = best + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for path in glob.glob(checkpoint_prefix + ".*"):
        shutil.copy2(path, staging)
    name = os.path.basename(checkpoint_prefix)
    with open(os.path.join(staging, "checkpoint"), "w", encoding="utf-8") as handle:
        handle.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    write_model_config(staging, config)
    retired = best + ".old"
    shutil.rmtree(retired, ignore_errors=True)
    if os.path.exists(best):
        os.rename(best, retired)
    os.rename(staging, best)
    shutil.rmtree(retired, ignore_errors=True)
    return os.path.join(best, name)


def checkpoint_step(prefix: str) -> Optional[int]:
    """The global step in a checkpoint prefix ``.../model-<step>``, or None."""
    match = re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"-(\d+)", os.path.basename(prefix))
    return int(match.group(1)) if match else None


def checkpoint_candidates(folder: str) -> List[str]:
    """Checkpoint prefixes of a phase folder, newest (highest step) first.

    Both the ones TensorFlow's ``checkpoint`` state file lists (even if their files are gone)
    and every ``model-<step>.index`` on disk, so that a damaged state file hides nothing.
    """
    prefixes = {
        os.path.join(folder, os.path.basename(path[: -len(".index")]))
        for path in glob.glob(os.path.join(glob.escape(folder), CHECKPOINT_PREFIX + "-*.index"))
    }
    state_file = os.path.join(folder, CHECKPOINT_STATE_FILE)
    if os.path.isfile(state_file):
        with open(state_file, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = re.match(r'\s*\w+:\s*"(.*)"\s*$', line)
                if match:
                    prefixes.add(os.path.join(folder, os.path.basename(match.group(1))))
    prefixes = [prefix for prefix in prefixes if checkpoint_step(prefix) is not None]
    return sorted(prefixes, key=checkpoint_step, reverse=True)


def damaged_file(prefix: str) -> str:
    """Which file of a checkpoint that failed to restore is at fault, and how, e.g.
    ``".../model-40.index is missing"``."""
    index = prefix + ".index"
    if not os.path.isfile(index):
        return f"{index} is missing"
    with open(index, "rb") as handle:
        handle.seek(max(os.path.getsize(index) - len(_INDEX_MAGIC), 0))
        if handle.read() != _INDEX_MAGIC:
            return f"{index} is truncated or damaged"
    data = sorted(glob.glob(glob.escape(prefix) + ".data-*"))
    if not data:
        return f"{prefix}.data-00000-of-00001 is missing"
    return f"{' / '.join(data)} is truncated or damaged"


def has_progress(folder: str) -> bool:
    """True if a phase folder holds checkpoints or a training state of a run."""
    return (
        os.path.isfile(os.path.join(folder, STATE_FILE))
        or os.path.isfile(os.path.join(folder, CHECKPOINT_STATE_FILE))
        or bool(glob.glob(os.path.join(glob.escape(folder), CHECKPOINT_PREFIX + "-*.index")))
    )


def refuse_to_reuse(
    model_base_dir: str, log_dir: str, experiment_id: str, phases: Sequence[str] = ("sup", "semisup")
) -> None:
    """Raise FileExistsError if a new run would write into another run's folders.

    A phase folder with checkpoints or a training state, or a TensorBoard folder with event
    files, belongs to an earlier run: continuing it needs ``resume``.
    """
    for phase in phases:
        folder = phase_folder(model_base_dir, experiment_id, phase)
        logs = phase_folder(log_dir, experiment_id, phase)
        taken = folder if has_progress(folder) else None
        if taken is None and glob.glob(os.path.join(glob.escape(logs), "events.*")):
            taken = logs
        if taken:
            raise FileExistsError(
                f"{taken} already holds another run of experiment_id={experiment_id}. To continue that run: "
                f"python Training.py with resume={folder} (plus its other settings); to start a new one, "
                "leave experiment_id unset (each run then gets its own) or choose an unused one."
            )


def resolve_resume(path: str) -> Tuple[str, str]:
    """Find what an interrupted experiment left behind, for ``with resume=<path>``.

    Args:
        path: a phase checkpoint folder (``checkpoints/<id>_sup``), its ``best`` subfolder,
            or a sacred run folder (``runs/<n>``, whose ``config.json`` names the experiment).

    Returns:
        ``(experiment_id, model_base_dir)`` of the experiment to continue.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` and what it should contain.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"resume={path}: no such folder. Pass a checkpoint folder such as "
            "checkpoints/<experiment_id>_sup or a sacred run folder such as runs/3."
        )
    path = os.path.abspath(path)
    if os.path.basename(path) == BEST_FOLDER:
        path = os.path.dirname(path)
    sacred_config = os.path.join(path, "config.json")
    if os.path.isfile(sacred_config) and not os.path.isfile(os.path.join(path, MODEL_CONFIG_FILE)):
        try:
            with open(sacred_config, encoding="utf-8") as handle:
                config = json.load(handle)
            return str(config["experiment_id"]), config["model_config"]["model_base_dir"]
        except (ValueError, KeyError, TypeError) as error:  # JSON or UTF-8 errors, missing keys, not a dict
            missing = f"has no {error}" if isinstance(error, KeyError) else f"cannot be read ({error})"
            raise ValueError(
                f"resume={path}: its {sacred_config} {missing}, so the experiment to continue is "
                "unknown. Pass the checkpoint folder instead, e.g. resume=checkpoints/<experiment_id>_sup."
            ) from error
    name = os.path.basename(path)
    for phase in ("_semisup", "_sup"):
        if name.endswith(phase) and os.path.isfile(os.path.join(path, MODEL_CONFIG_FILE)):
            return name[: -len(phase)], os.path.dirname(path)
    raise ValueError(
        f"resume={path}: this is neither a checkpoint folder written by Training.py "
        f"(<experiment_id>_sup or <experiment_id>_semisup with {MODEL_CONFIG_FILE}) "
        "nor a sacred run folder with config.json."
    )
