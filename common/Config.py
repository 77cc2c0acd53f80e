"""The model configuration (sacred's ``model_config``): typed, with its defaults, checked once.

Every key of ``model_config`` is a field of exactly one frozen group, with its default (the
paper's) and a one-line description, which ``python Training.py print_config`` shows:

- :class:`Signal`: how audio becomes spectrograms (rate, down-mix, STFT);
- :class:`Network`: the U-Net and the critics, and the network shapes derived from them once;
- :class:`Schedule`: the losses' weights, the optimisers and the training schedule;
- :class:`InputPipeline`: the batch generators' caches and reader processes;
- :class:`Folders`: where checkpoints and TensorBoard logs go;
- ``precision``: float32 or mixed (Precision.py).

:meth:`ModelConfig.from_dict` builds it from the flat dict that sacred and ``model_config.json``
hold (today's keys): an unknown key is refused with the nearest known one ("did you mean"), and
every value is checked when its group is made, so a :class:`ModelConfig` that exists is valid.
:meth:`ModelConfig.to_dict` gives the flat dict back.
"""

import dataclasses
import difflib
import math
import numbers
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from common import Precision
from common.UnetShapes import unet_shapes

SECTION = "model_config"  # how the user writes a key: model_config.<key>
OUTPUT_INITS = ("nonnegative", "glorot")


class ConfigError(ValueError):
    """A key or value of the model configuration that cannot be used; the message names it."""


# --- Checks of single values: each returns the value as stored or raises ValueError(problem) ---


def check_value(setting: str, value: Any, check: Callable[[Any], Any]) -> Any:
    """``check(value)``, or a :class:`ConfigError` ``"<setting>=<value>: <problem>"``."""
    try:
        return check(value)
    except ValueError as problem:
        raise ConfigError(f"{setting}={value!r}: {problem}") from None


def whole(minimum: int) -> Callable[[Any], int]:
    """A check for a whole number (not a bool) of at least ``minimum``."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"give a whole number >= {minimum}")
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return int(value)

    return check


def number(minimum: float, strict: bool = False) -> Callable[[Any], float]:
    """A check for a finite real number ``>= minimum`` (``> minimum`` if ``strict``)."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"give a finite number {bound}")
        if value < minimum or (strict and value == minimum):
            raise ValueError(f"must be {bound}")
        return value if isinstance(value, (int, float)) else float(value)

    return check


def flag(value: Any) -> bool:
    """Check for ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError("give True or False")
    return value


def _mono(value) -> bool:
    if flag(value) is not True:
        raise ValueError("the U-Net takes one channel, so only True (down-mix to mono) is supported")
    return value


def choice(*options: str) -> Callable[[Any], str]:
    """A check for one of ``options``."""

    def check(value):
        if value not in options:
            raise ValueError(f"use one of {', '.join(repr(option) for option in options)}")
        return value

    return check


def _sources(value) -> Tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError("give a non-empty list of source names, e.g. ['accompaniment', 'voice']")
    if not all(isinstance(name, str) and name for name in value) or len(set(value)) != len(value):
        raise ValueError("source names must be distinct non-empty strings")
    if "vocals" in value:
        raise ValueError(
            "the project calls the singing voice 'voice' (SiSEC's 'vocals' is used only in museval JSON): "
            "write 'voice', e.g. ['drums', 'bass', 'other', 'voice']"
        )
    return tuple(value)


def _betas(value) -> Tuple[float, float]:
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(beta, numbers.Real) and not isinstance(beta, bool) and 0 <= beta < 1 for beta in value)
    ):
        raise ValueError("give two numbers in [0, 1), e.g. [0.5, 0.9]")
    return tuple(float(beta) for beta in value)


def _folder(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("give a folder path")
    return value


def _precision(value) -> str:
    if not isinstance(value, str) or value not in Precision.PRECISIONS:
        raise ValueError(Precision.PRECISION_USAGE)
    return value


def _setting(default, check: Callable[[Any], Any], doc: str, in_model_file: bool = False):
    """A field with its default, its check and its description.

    ``in_model_file``: a ``model_config.json`` must state it (it fixes the trained network or
    its signal); every other key missing from an older file takes its default.
    """
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc, "in_model_file": in_model_file})


def _check_fields(group) -> None:
    """Check every field of a group once, storing the checked value (e.g. a list as a tuple)."""
    for field in dataclasses.fields(group):
        if not field.init or "check" not in field.metadata:
            continue
        checked = check_value(f"{SECTION}.{field.name}", getattr(group, field.name), field.metadata["check"])
        object.__setattr__(group, field.name, checked)


# --- The groups ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Signal:
    """How audio becomes the network's input: magnitudes of a mono STFT at one sample rate."""

    expected_sr: int = _setting(8192, whole(1), "all audio is resampled to this rate (Hz)", True)
    mono_downmix: bool = _setting(True, _mono, "down-mix all audio to mono (the only supported choice)")
    num_fft: int = _setting(512, whole(2), "STFT size (samples)", True)
    num_hop: int = _setting(256, whole(1), "STFT hop size (samples), at most num_fft", True)

    def __post_init__(self):
        _check_fields(self)
        if self.num_hop > self.num_fft:
            raise ConfigError(
                f"{SECTION}.num_hop={self.num_hop} exceeds {SECTION}.num_fft={self.num_fft}: frames would skip samples"
            )

    @property
    def bins(self) -> int:
        """Frequency bins of a spectrogram, ``num_fft // 2 + 1`` (257 for the paper's 512)."""
        return self.num_fft // 2 + 1


@dataclasses.dataclass(frozen=True)
class Network:
    """The separator (U-Net) and the critics; the U-Net's shapes are derived once, here.

    ``input_shape`` ``(F_in, T_in)`` and ``output_shape`` ``(F_out, T_out)``: the U-Net's input
    with time context and its output, the smallest admissible sizes whose output covers
    ``critic_shape`` ``(num_freqs, num_frames)`` (the paper: (350, 158), (258, 66), (256, 64)).
    """

    sources: Tuple[str, ...] = _setting(
        ("accompaniment", "voice"), _sources, "separator outputs; critics are made per source", True
    )
    num_layers: int = _setting(4, whole(1), "U-Net levels", True)
    num_initial_filters: int = _setting(16, whole(1), "U-Net filters of the first level (doubling per level)", True)
    output_init: str = _setting(
        "nonnegative",
        choice(*OUTPUT_INITS),
        'U-Net 1x1 output kernels: "nonnegative" (|Glorot|, no output starts dead) or "glorot" (the reference)',
    )
    critic_initial_filters: int = _setting(32, whole(1), "critic filters of the first convolution")
    critic_dense_units: int = _setting(32, whole(1), "critic hidden dense layer")
    num_frames: int = _setting(64, whole(1), "desired output frames of the U-Net (critic input width)", True)
    num_freqs: int = _setting(256, whole(1), "desired output frequency rows (critic input height)", True)
    input_shape: Tuple[int, int] = dataclasses.field(init=False, repr=False, compare=False)
    output_shape: Tuple[int, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_fields(self)
        input_shape, output_shape = unet_shapes(self.num_layers, self.critic_shape)
        object.__setattr__(self, "input_shape", input_shape)
        object.__setattr__(self, "output_shape", output_shape)

    @property
    def critic_shape(self) -> Tuple[int, int]:
        """``(num_freqs, num_frames)``: the excerpt size the critics score."""
        return self.num_freqs, self.num_frames

    @property
    def context_frames(self) -> int:
        """Frames of time context on each side of the U-Net's output, ``(T_in - T_out) / 2``."""
        return (self.input_shape[1] - self.output_shape[1]) // 2


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The loss weights, the optimisers and the schedule of updates (PAPER.md, "Training")."""

    batch_size: int = _setting(64, whole(1), "examples per batch (paired, unpaired mixtures and sources alike)")
    alpha: float = _setting(0.001, number(0), "weight of the adversarial loss L_u")
    beta: float = _setting(0.001, number(0), "weight of the additive penalty P")
    lam: float = _setting(10, number(0), "lambda: weight of the critics' gradient penalty")
    init_disc_lr: float = _setting(5e-5, number(0, strict=True), "Adam learning rate of the critics")
    init_sup_sep_lr: float = _setting(
        5e-5, number(0, strict=True), "Adam learning rate of the separator, supervised phase"
    )
    init_unsup_sep_lr: float = _setting(
        5e-5, number(0, strict=True), "Adam learning rate of the separator, semi-supervised phase"
    )
    epoch_it: int = _setting(1000, whole(1), "separator updates per epoch")
    num_disc: int = _setting(5, whole(1), "updates of each critic per separator update")
    critic_adam_betas: Tuple[float, float] = _setting(
        (0.9, 0.999), _betas, "the critics' Adam (beta1, beta2); TF's defaults, as the paper"
    )
    critic_warmup: int = _setting(
        0, whole(0), "critic updates before the separator's first semi-supervised step (paper: 0)"
    )
    scale_unpaired_mixtures: bool = _setting(
        True,
        flag,
        "random gain in [0.2, 1.2] on the unpaired mixtures too, as on the "
        "solo sources (the reference); False only to measure the fix",
    )

    def __post_init__(self):
        _check_fields(self)


@dataclasses.dataclass(frozen=True)
class InputPipeline:
    """The batch generators: cached spectrogram sections refreshed by reader processes."""

    cache_size: int = _setting(64, whole(1), "spectrogram sections kept by each batch generator")
    num_workers: int = _setting(4, whole(0), "reader processes per batch generator (0: read in this process)")
    duration: float = _setting(
        10, number(0, strict=True), "seconds of audio per cached section (without input context)"
    )
    min_replacement_rate: float = _setting(8, number(0), "cache items replaced per batch, on average, at least")

    def __post_init__(self):
        _check_fields(self)


@dataclasses.dataclass(frozen=True)
class Folders:
    """Where a run writes its checkpoints and TensorBoard logs."""

    model_base_dir: str = _setting("checkpoints", _folder, "checkpoint folders <experiment_id>_<phase> go here")
    log_dir: str = _setting("logs", _folder, "TensorBoard folders <experiment_id>_<phase> go here")

    def __post_init__(self):
        _check_fields(self)


GROUPS = {"signal": Signal, "network": Network, "training": Schedule, "pipeline": InputPipeline, "folders": Folders}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The whole model configuration: one frozen group per concern plus the precision.

    Build it with :meth:`from_dict` (sacred's ``model_config``, a ``model_config.json``) or
    from groups (``ModelConfig(network=Network(num_layers=2))``); change it with :meth:`replace`.
    """

    signal: Signal = dataclasses.field(default_factory=Signal)
    network: Network = dataclasses.field(default_factory=Network)
    training: Schedule = dataclasses.field(default_factory=Schedule)
    pipeline: InputPipeline = dataclasses.field(default_factory=InputPipeline)
    folders: Folders = dataclasses.field(default_factory=Folders)
    precision: str = _setting(
        Precision.DEFAULT_PRECISION,
        _precision,
        '"float32" (the paper) or "mixed": 16-bit convolutions where this machine runs '
        "them fast (Precision.py); kept in model_config.json",
    )

    def __post_init__(self):
        for name, group in GROUPS.items():
            if not isinstance(getattr(self, name), group):
                raise TypeError(f"ModelConfig.{name} must be a {group.__name__}, got {getattr(self, name)!r}")
        _check_fields(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = SECTION, required: Iterable[str] = ()) -> "ModelConfig":
        """The configuration of a flat dict ``{key: value}`` (keys as in sacred's ``model_config``).

        Args:
            values: any subset of the keys; a missing key takes its default.
            where: names the dict in messages, e.g. ``"model_config"`` or a file's path.
            required: keys that must be present (see :func:`model_file_keys`).

        Raises:
            ConfigError: naming an unknown key (and the known key it resembles), a missing
                required key, or a key whose value is wrong and why.
        """
        known = _key_groups()
        check_known_keys(values, known, where)
        missing = [key for key in required if key not in values]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}: it must hold the full model_config of the run")
        try:
            groups = {
                name: group(**{key: value for key, value in values.items() if known[key] == name})
                for name, group in GROUPS.items()
            }
            return cls(**groups, **{key: value for key, value in values.items() if known[key] is None})
        except ConfigError as error:
            if where == SECTION:
                raise
            raise ConfigError(f"{where}: {error}") from None

    def to_dict(self) -> Dict[str, Any]:
        """The flat dict of every key (lists for sequences), as sacred and model_config.json hold it."""
        flat = {}
        for name in GROUPS:
            group = getattr(self, name)
            flat.update(
                {field.name: _plain(getattr(group, field.name)) for field in dataclasses.fields(group) if field.init}
            )
        flat["precision"] = self.precision
        return flat

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some flat keys changed (checked like :meth:`from_dict`), e.g. ``replace(batch_size=8)``."""
        return type(self).from_dict(dict(self.to_dict(), **changes))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _key_groups() -> Dict[str, Optional[str]]:
    """``{flat key: group name}`` (``None`` for ModelConfig's own keys, i.e. ``precision``)."""
    keys = {field.name: name for name, group in GROUPS.items() for field in dataclasses.fields(group) if field.init}
    keys.update({field.name: None for field in dataclasses.fields(ModelConfig) if field.name not in GROUPS})
    return keys


def check_known_keys(values: Iterable[str], known: Iterable[str], where: str) -> None:
    """Raise a :class:`ConfigError` naming every key of ``values`` not in ``known``, each with the
    known key it resembles, e.g. ``model_config: unknown key 'alpah' (did you mean 'alpha'?)``."""
    known = list(known)
    unknown = [key for key in values if key not in known]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(_with_suggestion(key, known) for key in unknown)}"
        )


def _with_suggestion(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else f"{key!r} (see print_config for the keys)"


def _fields_with_metadata():
    for group in GROUPS.values():
        yield from (field for field in dataclasses.fields(group) if field.init)
    yield from (field for field in dataclasses.fields(ModelConfig) if field.name not in GROUPS)


def descriptions() -> Dict[str, str]:
    """``{key: one-line description}`` of every model_config key (what print_config shows)."""
    return {field.name: field.metadata["doc"] for field in _fields_with_metadata()}


def model_file_keys() -> Tuple[str, ...]:
    """The keys a ``model_config.json`` must hold: they fix the trained network and its signal."""
    return tuple(field.name for field in _fields_with_metadata() if field.metadata["in_model_file"])
