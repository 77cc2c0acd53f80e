"""Whole-song separation: sliding a trained separator over a song.

:func:`separate_spectrogram` slides the network over a whole song's magnitudes (PAPER.md,
"Evaluation"), in chunks with time context, several chunks per network call, and
:func:`separate_audio` wraps it with the STFT and the inverse STFT using the mixture's phase.
Both take a ``predict_fn`` so that any network (the :class:`Separator`, the training graph's
inference placeholder, or a test double) can be plugged in::

    predict_fn(batch [n, F_in, T_in, 1]) -> {source: [n, F_out, T_out, 1]}

Batches hold **linear** magnitudes in and out, like ``TrainingGraph.inference_input`` /
``inference_outputs``: the network's inference path (Models/Inference.py) applies
``log(1 + x)`` and ``exp(y) - 1`` itself. :class:`Separator` is the separator of a checkpoint
folder (restored by ModelFolder.py); the ``separate`` command is SeparateFiles.py.

:func:`separate_audio` is the paper's reconstruction (mono, the model's band), which evaluation
uses; :func:`separate_fullband` gives audio at the input's own rate and with its channels, the
model's estimates serving as soft masks on the input's STFT (FullBand.py). The ``separate``
command writes either, by :data:`SEPARATE_MODES`.
"""

from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from common import Utils
from common.Config import ModelConfig
from evaluation import ModelFolder

Utils.use_fast_cpu_kernels()  # before TensorFlow is imported (lazily, below)

# TensorFlow, Input, FullBand and Models are imported inside the functions that need them: modules that
# only evaluate metrics (the BSS Eval worker processes) should not pay for TensorFlow.

DEFAULT_BATCH_SIZE = 32
# What the ``separate`` command writes (setting ``separate_mode``), the default first.
SEPARATE_MODES = {
    "fullband": "the input's rate, channels and whole band: the model's estimates as soft masks on the "
    "input's STFT, sources adding up to the input",
    "model": "mono, only the model's band (up to expected_sr / 2), resampled to the input's rate",
}

PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def chunk_starts(num_frames: int, output_frames: int) -> List[int]:
    """First output frame of every chunk that covers ``num_frames`` frames.

    Chunks of ``output_frames`` start at 0, T_out, 2 T_out, ...; if the song's end is not
    reached, one more chunk is aligned to the end (``num_frames - output_frames``). Songs shorter
    than one chunk get the single start 0 (the caller zero-pads them).
    """
    if output_frames < 1:
        raise ValueError(f"output_frames must be positive, got {output_frames}")
    last = max(num_frames, output_frames) - output_frames
    starts = list(range(0, last + 1, output_frames))
    if starts[-1] != last:
        starts.append(last)
    return starts


def separate_spectrogram(
    magnitude: np.ndarray, predict_fn: PredictFn, model_config: ModelConfig, batch_size: int = DEFAULT_BATCH_SIZE
) -> Dict[str, np.ndarray]:
    """Separate a whole song's magnitude spectrogram by sliding the U-Net over it.

    Args:
        magnitude: linear mixture magnitudes ``[F, T]`` (``F = num_fft // 2 + 1`` bins).
        predict_fn: ``batch [n, F_in, T_in, 1] -> {source: [n, F_out, T_out, 1]}``, linear
            magnitudes, ``n <= batch_size``.
        model_config: gives the network shapes (``network.input_shape`` / ``output_shape``).
        batch_size: chunks per ``predict_fn`` call.

    Returns:
        ``{source: linear magnitudes [F, T]}`` for the sources ``predict_fn`` returns.
    """
    network = model_config.network
    return slide_separator(magnitude, predict_fn, network.input_shape, network.output_shape, batch_size)


def slide_separator(
    magnitude: np.ndarray,
    predict_fn: PredictFn,
    input_shape: Tuple[int, int],
    output_shape: Tuple[int, int],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Dict[str, np.ndarray]:
    """:func:`separate_spectrogram` with explicit network shapes ``(F_in, T_in)``, ``(F_out, T_out)``.

    Output chunks of ``T_out`` frames start at :func:`chunk_starts`; each input chunk adds
    ``(T_in - T_out) / 2`` context frames on both sides (zeros beyond the song). Frequencies
    are zero-padded to ``F_in`` (odd remainder at the end) and the output's rows are cropped
    back to ``F``. Each output frame is written exactly once (the end-aligned last chunk only
    fills the frames the previous chunk left).
    """
    import Input

    magnitude = np.asarray(magnitude, dtype=np.float32)
    if magnitude.ndim != 2:
        raise ValueError(f"Expected a magnitude spectrogram [freqs, frames], got shape {magnitude.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    (freqs_in, frames_in), (freqs_out, frames_out) = input_shape, output_shape
    num_freqs, num_frames = magnitude.shape
    context = (frames_in - frames_out) // 2
    if freqs_out < num_freqs or freqs_in < freqs_out or 2 * context != frames_in - frames_out:
        raise ValueError(
            f"Network shapes input {input_shape} / output {output_shape} cannot separate "
            f"{num_freqs} frequency bins: check num_freqs and num_fft in the model_config."
        )
    padded = Input.pad_freqs(
        np.pad(magnitude, ((0, 0), (context, context + max(frames_out - num_frames, 0)))), freqs_in
    )
    estimates = {}
    written_until = 0
    starts = chunk_starts(num_frames, frames_out)
    for offset in range(0, len(starts), batch_size):
        batch_starts = starts[offset : offset + batch_size]
        batch = np.stack([padded[:, start : start + frames_in] for start in batch_starts])[..., np.newaxis]
        outputs = {}
        for name, output in predict_fn(batch).items():
            _check_output(name, output, len(batch_starts), output_shape)
            outputs[name] = Input.unpad_freqs(np.asarray(output), num_freqs)[..., 0]  # [n, F, T_out]
            estimates.setdefault(name, np.zeros((num_freqs, max(num_frames, frames_out)), np.float32))
        for index, start in enumerate(batch_starts):
            first = max(start, written_until)
            for name, output in outputs.items():
                estimates[name][:, first : start + frames_out] = output[index, :, first - start :]
            written_until = start + frames_out
    return {name: estimate[:, :num_frames] for name, estimate in estimates.items()}


def _check_output(name, output, batch_len, output_shape):
    expected = (batch_len,) + tuple(output_shape) + (1,)
    if tuple(np.shape(output)) != expected:
        raise ValueError(f"predict_fn returned shape {np.shape(output)} for source {name!r}, expected {expected}")


def separate_audio(
    audio: np.ndarray, predict_fn: PredictFn, model_config: ModelConfig, batch_size: int = DEFAULT_BATCH_SIZE
) -> Dict[str, np.ndarray]:
    """Separate mono audio at ``model_config.signal.expected_sr`` into one signal per source.

    STFT (``num_fft``, ``num_hop``), :func:`separate_spectrogram`, then inverse STFT with the
    mixture's phase, cut to the input's exact length.

    Args:
        audio: mono mixture ``[samples]`` at the model's sample rate.
        predict_fn: see :func:`separate_spectrogram` (linear magnitudes).

    Returns:
        ``{source: float32 audio [samples]}`` with ``samples == len(audio)``.
    """
    import Input

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"separate_audio expects mono audio [samples], got shape {audio.shape}")
    signal = model_config.signal
    spectrogram = Input.stft(audio, signal.num_fft, signal.num_hop)
    magnitudes = separate_spectrogram(np.abs(spectrogram), predict_fn, model_config, batch_size)
    phase = Input.unit_phasors(spectrogram)
    return {
        name: np.asarray(Input.istft(magnitude, phase, signal.num_hop, len(audio)), np.float32)
        for name, magnitude in magnitudes.items()
    }


def check_separate_mode(mode: str, setting: str = "separate_mode") -> str:
    """``mode`` if it is one of :data:`SEPARATE_MODES`, else a ValueError naming ``setting`` and the choices."""
    if not isinstance(mode, str) or mode not in SEPARATE_MODES:
        choices = "; ".join(f'"{name}": {meaning}' for name, meaning in SEPARATE_MODES.items())
        raise ValueError(f"{setting}={mode!r} is not a separation mode. Use one of {choices}.")
    return mode


def separate_fullband(
    audio: np.ndarray,
    sample_rate: int,
    predict_fn: PredictFn,
    model_config: ModelConfig,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Dict[str, np.ndarray]:
    """Separate audio at its own rate and with its channels, over its whole band.

    The model separates the mono down-mix at ``model_config.signal.expected_sr``
    (:func:`FullBand.model_input`, :func:`separate_spectrogram`); its magnitude estimates become
    soft masks on each channel's STFT at ``sample_rate`` (:func:`FullBand.apply_masks`).

    Args:
        audio: float ``[channels, samples]`` (or mono ``[samples]``) at ``sample_rate`` Hz.
        sample_rate: the audio's rate in Hz (any; the STFT grid follows it).
        predict_fn: see :func:`separate_spectrogram` (linear magnitudes).

    Returns:
        ``{source: float32 [channels, samples]}`` at ``sample_rate``, of the input's shape as
        ``[channels, samples]``; the sources add up to ``audio`` (to float rounding).
    """
    import Input
    from evaluation import FullBand

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[np.newaxis]
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise ValueError(f"separate_fullband expects audio [channels, samples], got shape {audio.shape}")
    sample_rate = Input.check_positive_int(sample_rate, "sample_rate")
    signal = model_config.signal
    mono = FullBand.model_input(audio, sample_rate, signal.expected_sr)
    spectrogram = Input.stft(mono, signal.num_fft, signal.num_hop)
    estimates = separate_spectrogram(np.abs(spectrogram), predict_fn, model_config, batch_size)
    return FullBand.apply_masks(audio, sample_rate, estimates, signal)


class Separator:
    """The separator of a checkpoint folder in its own graph and session (a context manager).

    Args:
        model_path: checkpoint folder (or checkpoint prefix), see :func:`ModelFolder.find_checkpoint`.
        batch_size: U-Net chunks per session call when separating whole songs.
        precision: ``"float32"`` or ``"mixed"`` to override the ``precision`` stored in the
            folder's ``model_config.json``; ``None`` uses the stored one (``"float32"`` for folders
            written before the setting existed). See Precision.py; the checkpoint suits either.

    Attributes:
        model_config: the folder's ``ModelConfig`` (with ``precision`` as used here).
        policy: the ``Precision.Policy`` the network computes with on this machine.
        input_shape, output_shape: ``(F_in, T_in)`` and ``(F_out, T_out)`` of the network.

    Use ``with Separator(path) as separator: separator.separate(audio)``.
    """

    def __init__(self, model_path: str, batch_size: int = DEFAULT_BATCH_SIZE, precision: Optional[str] = None):
        restored = ModelFolder.restore_separator(model_path, precision)
        self.checkpoint, self.model_config, self.policy = restored.checkpoint, restored.model_config, restored.policy
        self.input_shape, self.output_shape = restored.input_shape, restored.output_shape
        self._graph, self._session = restored.graph, restored.session
        self._input, self._outputs = restored.inference.mixture, restored.inference.estimates
        try:
            self.batch_size = int(batch_size)
        except (TypeError, ValueError):
            self.close()
            raise

    @property
    def sources(self) -> List[str]:
        """Source names in model order, e.g. ``["accompaniment", "voice"]``."""
        return list(self.model_config.network.sources)

    @property
    def sample_rate(self) -> int:
        """Sample rate in Hz the model works at (``expected_sr``)."""
        return self.model_config.signal.expected_sr

    def predict(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """``[n, F_in, T_in, 1]`` linear magnitudes -> ``{source: [n, F_out, T_out, 1]}`` linear."""
        return self._session.run(self._outputs, {self._input: batch})

    def separate_spectrogram(self, magnitude: np.ndarray) -> Dict[str, np.ndarray]:
        """Linear magnitudes ``[F, T]`` -> ``{source: linear magnitudes [F, T]}``."""
        return slide_separator(magnitude, self.predict, self.input_shape, self.output_shape, self.batch_size)

    def separate(self, audio: np.ndarray) -> Dict[str, np.ndarray]:
        """Mono audio ``[samples]`` at :attr:`sample_rate` -> ``{source: audio [samples]}``."""
        return separate_audio(audio, self.predict, self.model_config, self.batch_size)

    def separate_fullband(self, audio: np.ndarray, sample_rate: int) -> Dict[str, np.ndarray]:
        """``[channels, samples]`` at ``sample_rate`` Hz -> ``{source: [channels, samples]}`` there,
        over the whole band (see :func:`separate_fullband`)."""
        return separate_fullband(audio, sample_rate, self.predict, self.model_config, self.batch_size)

    def close(self) -> None:
        """Release the session."""
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
