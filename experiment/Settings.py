"""Training.py's settings outside ``model_config``, typed where the trainer uses them and all
checked once, when a command starts (:func:`check_settings`), before any folder is made.

The model configuration itself is common/Config.py's ``ModelConfig``.
"""

import dataclasses
import logging
import os
from typing import Any, Iterable, List, Mapping, Optional

from common import Precision
from common.Config import ConfigError, ModelConfig, check_known_keys, check_value, choice, flag, whole

LOGGER = logging.getLogger(__name__)

SEMISUP_INITS = ("scratch", "supervised")  # the paper: scratch
PARTITIONS = ("test", "valid")  # what the evaluate command may evaluate on


def _optional(check):
    return lambda value: None if value is None else check(value)


def _experiment_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value) or "/" in str(value):
        raise ValueError("give a name (letters, digits, '-', '_'), or leave it unset for a new unique one")
    return str(value)


@dataclasses.dataclass(frozen=True)
class PhaseSettings:
    """How a training phase runs, beside the model configuration.

    Attributes:
        experiment_id: names ``<model_base_dir>/<experiment_id>_<phase>`` and the log folder.
        seed: TensorFlow's graph seed and the base of the batch generators' seeds.
        patience: epochs without improvement of the validation loss before stopping (paper: 1).
        max_epochs: upper bound on epochs per phase, or ``None`` (until early stopping).
        summary_every: separator steps between TensorBoard scalar summaries.
        image_every: separator steps between spectrogram image summaries.
        deterministic: TensorFlow op determinism (slower).
    """

    experiment_id: str
    seed: int
    patience: int
    max_epochs: Optional[int]
    summary_every: int
    image_every: int
    deterministic: bool = False

    def __post_init__(self):
        checks = {
            "experiment_id": _experiment_id,
            "seed": whole(0),
            "patience": whole(1),
            "max_epochs": _optional(whole(1)),
            "summary_every": whole(1),
            "image_every": whole(1),
            "deterministic": flag,
        }
        for name, check in checks.items():
            object.__setattr__(self, name, check_value(name, getattr(self, name), check))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "PhaseSettings":
        """The phase settings of Training.py's resolved sacred config."""
        return cls(**{field.name: config[field.name] for field in dataclasses.fields(cls)})


def check_settings(config: Mapping[str, Any], known: Optional[Iterable[str]] = None) -> ModelConfig:
    """Check Training.py's resolved configuration: ``model_config`` and every top-level setting.

    ``known``: the top-level keys of the configuration; any other key is refused, naming the
    known key it resembles (sacred would only say that it is "not used anywhere").

    Called once per command before anything is created (Training.py's config hook); the
    commands then build the same typed objects from the same values. ``bss_eval`` is checked by
    the commands that evaluate (it imports museval for v4).

    Returns:
        The typed model configuration.

    Raises:
        ConfigError (a ValueError): naming the setting (``model_config.alpha``, ``patience``, ...)
            and what is wrong with it.
    """
    if known is not None:
        check_known_keys(config, known, "the configuration")
    if not isinstance(config.get("model_config"), Mapping):
        raise ConfigError(f"model_config={config.get('model_config')!r}: give a dict of model settings")
    model_config = ModelConfig.from_dict(config["model_config"])
    PhaseSettings.from_config(config)
    checks = {
        "semisup_init": choice(*SEMISUP_INITS),
        "partition": choice(*PARTITIONS),
        "eval_workers": whole(0),
        "eval_batch_size": whole(1),
        "spectrogram_cache": flag,
        "use_demo": flag,
        "overwrite": flag,
    }
    for name, check in checks.items():
        check_value(name, config[name], check)
    Precision.check_precision(config["eval_precision"], setting="eval_precision")  # None: the checkpoint's own
    warn_about_process_counts(model_config.pipeline.num_workers, config["eval_workers"], os.cpu_count() or 1)
    return model_config


def warn_about_process_counts(num_workers: int, eval_workers: int, cpus: int) -> List[str]:
    """Warn (and return the warnings) where a legal process count is likely a mistake on this machine.

    Each batch generator starts ``num_workers`` reader processes (the semi-supervised phase runs
    2 + one per source generators, each process holding its own section cache), and BSS Eval
    starts ``eval_workers``; far more processes than CPUs only costs memory and start-up time.
    """
    warnings = []
    if num_workers > 2 * cpus:
        warnings.append(
            f"model_config.num_workers={num_workers} starts {num_workers} reader processes per batch "
            f"generator (up to {4 * num_workers} in the semi-supervised phase) on a machine with "
            f"{cpus} CPU(s); a few per generator keep a GPU fed, see docs/training.md."
        )
    if eval_workers > 2 * cpus:
        warnings.append(
            f"eval_workers={eval_workers} starts {eval_workers} BSS Eval processes on a machine with "
            f"{cpus} CPU(s); more than the CPUs do not evaluate faster."
        )
    for warning in warnings:
        LOGGER.warning(warning)
    return warnings
