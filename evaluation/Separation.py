"""Whole-song separation with a trained separator, and separating anyone's audio files.

:class:`Separator` rebuilds the U-Net from a checkpoint folder alone (``model_config.json`` plus
TensorFlow ``Saver`` files) in its own ``tf.Graph`` and restores only the ``separator/``
variables. :func:`separate_spectrogram` slides the network over a whole song (PAPER.md,
"Evaluation") and :func:`separate_audio` wraps it with the STFT and the inverse STFT using the
mixture's phase. Both take a ``predict_fn`` so that any network (the :class:`Separator`, the
training graph's inference placeholder, or a test double) can be plugged in::

    predict_fn(batch [n, F_in, T_in, 1]) -> {source: [n, F_out, T_out, 1]}

Batches hold **linear** magnitudes in and out, like ``TrainingGraph.inference_input`` /
``inference_outputs``: the graph applies ``log(1 + x)`` and ``exp(y) - 1`` itself.

:func:`separate_path` is the ``separate`` command: any audio file (or folder of files) into
one WAV per source at the input's sample rate and length.
"""

import json
import logging
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
from tqdm import tqdm

from common import TensorFlowSetup, Utils
from common.Checkpoints import MODEL_CONFIG_FILE

Utils.use_fast_cpu_kernels()  # before TensorFlow is imported (lazily, below)

# TensorFlow, Input and Models are imported inside the functions that need them: modules that
# only evaluate metrics (the BSS Eval worker processes) should not pay for TensorFlow.

LOGGER = logging.getLogger(__name__)

SEPARATOR_SCOPE = "separator"
DEFAULT_BATCH_SIZE = 32
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a")

PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def find_checkpoint(model_path: str) -> Tuple[str, str]:
    """Locate the checkpoint of a model folder (or a direct checkpoint prefix).

    Args:
        model_path: a folder written by Training.py (``model_config.json``, ``checkpoint``
            state file and ``Saver`` files), or a checkpoint prefix such as
            ``checkpoints/1_sup/model-3000`` whose folder holds ``model_config.json``.

    Returns:
        ``(checkpoint_prefix, folder)``.

    Raises:
        FileNotFoundError: naming the path and what is missing.
    """
    import tensorflow as tf

    model_path = os.fspath(model_path)
    is_prefix = not os.path.isdir(model_path) and os.path.isfile(model_path + ".index")
    if not (os.path.isdir(model_path) or is_prefix):
        raise FileNotFoundError(
            f"Model path {model_path} does not exist: pass a checkpoint folder written by Training.py "
            "(e.g. checkpoints/<id>_semisup/best) or a checkpoint prefix (e.g. checkpoints/<id>_sup/model-3000).")
    folder = os.path.dirname(os.path.abspath(model_path)) if is_prefix else model_path
    if not os.path.isfile(os.path.join(folder, MODEL_CONFIG_FILE)):
        raise FileNotFoundError(f"Model folder {folder} has no {MODEL_CONFIG_FILE}: it is needed to rebuild the "
                                "separator. Pass a folder written by Training.py, e.g. checkpoints/<id>_sup/best.")
    if is_prefix:
        return model_path, folder
    checkpoint = tf.train.latest_checkpoint(folder) or _relocated_checkpoint(folder)
    if checkpoint is None:
        raise FileNotFoundError(
            f"Model folder {folder} holds no TensorFlow checkpoint (no 'checkpoint' state file, or the "
            "files it names are missing). Pass a folder written by Training.py, e.g. checkpoints/<id>_sup/best.")
    return checkpoint, folder


def _relocated_checkpoint(folder):
    """The state file's checkpoint looked up in ``folder`` (state files may hold stale absolute paths)."""
    import tensorflow as tf

    state_path = os.path.join(folder, "checkpoint")
    if not os.path.isfile(state_path):
        return None
    state = tf.train.get_checkpoint_state(folder)
    if state is None or not state.model_checkpoint_path:
        return None
    candidate = os.path.join(folder, os.path.basename(state.model_checkpoint_path))
    return candidate if os.path.isfile(candidate + ".index") else None


def load_model_config(folder: str) -> dict:
    """The ``model_config`` dict stored in ``<folder>/model_config.json``.

    Raises:
        FileNotFoundError: the file is missing. ValueError: it is not valid JSON or lacks keys.
    """
    path = os.path.join(folder, MODEL_CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model folder {folder} has no {MODEL_CONFIG_FILE}.")
    try:
        with open(path, encoding="utf-8") as handle:
            model_config = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it from the training run.") from error
    required = ("sources", "expected_sr", "num_fft", "num_hop", "num_layers", "num_initial_filters",
                "num_frames", "num_freqs")
    missing = [key for key in required if key not in model_config]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; it must hold the full model_config of the run.")
    return model_config


def network_shapes(model_config: Mapping) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """U-Net ``((F_in, T_in), (F_out, T_out))`` for a model_config (e.g. ((350, 158), (258, 66)))."""
    from Models.Unet import shapes_for_config  # TensorFlow: imported only when needed

    return shapes_for_config(model_config)

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


def separate_spectrogram(magnitude: np.ndarray, predict_fn: PredictFn, model_config: Mapping,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> Dict[str, np.ndarray]:
    """Separate a whole song's magnitude spectrogram by sliding the U-Net over it.

    Args:
        magnitude: linear mixture magnitudes ``[F, T]`` (``F = num_fft // 2 + 1`` bins).
        predict_fn: ``batch [n, F_in, T_in, 1] -> {source: [n, F_out, T_out, 1]}``, linear
            magnitudes, ``n <= batch_size``.
        model_config: gives the network shapes (see :func:`network_shapes`).
        batch_size: chunks per ``predict_fn`` call.

    Returns:
        ``{source: linear magnitudes [F, T]}`` for the sources ``predict_fn`` returns.
    """
    input_shape, output_shape = network_shapes(model_config)
    return slide_separator(magnitude, predict_fn, input_shape, output_shape, batch_size)


def slide_separator(magnitude: np.ndarray, predict_fn: PredictFn, input_shape: Tuple[int, int],
                    output_shape: Tuple[int, int], batch_size: int = DEFAULT_BATCH_SIZE) -> Dict[str, np.ndarray]:
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
        raise ValueError(f"Network shapes input {input_shape} / output {output_shape} cannot separate "
                         f"{num_freqs} frequency bins: check num_freqs and num_fft in the model_config.")
    padded = Input.pad_freqs(np.pad(magnitude, ((0, 0), (context, context + max(frames_out - num_frames, 0)))),
                             freqs_in)
    estimates = {}
    written_until = 0
    starts = chunk_starts(num_frames, frames_out)
    for offset in range(0, len(starts), batch_size):
        batch_starts = starts[offset:offset + batch_size]
        batch = np.stack([padded[:, start:start + frames_in] for start in batch_starts])[..., np.newaxis]
        outputs = {}
        for name, output in predict_fn(batch).items():
            _check_output(name, output, len(batch_starts), output_shape)
            outputs[name] = Input.unpad_freqs(np.asarray(output), num_freqs)[..., 0]  # [n, F, T_out]
            estimates.setdefault(name, np.zeros((num_freqs, max(num_frames, frames_out)), np.float32))
        for index, start in enumerate(batch_starts):
            first = max(start, written_until)
            for name, output in outputs.items():
                estimates[name][:, first:start + frames_out] = output[index, :, first - start:]
            written_until = start + frames_out
    return {name: estimate[:, :num_frames] for name, estimate in estimates.items()}


def _check_output(name, output, batch_len, output_shape):
    expected = (batch_len,) + tuple(output_shape) + (1,)
    if tuple(np.shape(output)) != expected:
        raise ValueError(f"predict_fn returned shape {np.shape(output)} for source {name!r}, "
                         f"expected {expected}")


def separate_audio(audio: np.ndarray, predict_fn: PredictFn, model_config: Mapping,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> Dict[str, np.ndarray]:
    """Separate mono audio at ``model_config["expected_sr"]`` into one signal per source.

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
    spectrogram = Input.stft(audio, model_config["num_fft"], model_config["num_hop"])
    magnitudes = separate_spectrogram(np.abs(spectrogram), predict_fn, model_config, batch_size)
    phase = Input.unit_phasors(spectrogram)
    return {name: np.asarray(Input.istft(magnitude, phase, model_config["num_hop"], len(audio)), np.float32)
            for name, magnitude in magnitudes.items()}

class Separator:
    """The separator of a checkpoint folder in its own graph and session (a context manager).

    Args:
        model_path: checkpoint folder (or checkpoint prefix), see :func:`find_checkpoint`.
        batch_size: U-Net chunks per session call when separating whole songs.
        precision: ``"float32"`` or ``"mixed"`` to override the ``precision`` stored in the
            folder's ``model_config.json``; ``None`` uses the stored one (``"float32"`` for folders
            written before the setting existed). See Precision.py; the checkpoint suits either.

    Attributes:
        model_config: the folder's ``model_config`` dict (with ``precision`` as used here).
        policy: the ``Precision.Policy`` the network computes with on this machine.
        input_shape, output_shape: ``(F_in, T_in)`` and ``(F_out, T_out)`` of the network.

    Use ``with Separator(path) as separator: separator.separate(audio)``.
    """

    def __init__(self, model_path: str, batch_size: int = DEFAULT_BATCH_SIZE, precision: Optional[str] = None):
        import tensorflow as tf

        from common import Precision
        from Models.Unet import Unet

        self.checkpoint, folder = find_checkpoint(model_path)
        self.model_config = load_model_config(folder)
        self.policy = Precision.config_policy(self.model_config, precision)
        self.model_config["precision"] = self.policy.precision
        self.batch_size = int(batch_size)
        self.input_shape, self.output_shape = network_shapes(self.model_config)
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._input = tf.compat.v1.placeholder(tf.float32, (None,) + tuple(self.input_shape) + (1,),
                                                   name="mixture_magnitudes")
            unet = Unet(self.model_config["num_layers"], self.model_config["num_initial_filters"],
                        self.model_config["sources"], compute_dtype=self.policy.compute_dtype)
            outputs = unet.get_output(tf.math.log1p(self._input), reuse=False)
            self._outputs = {name: tf.math.expm1(output) for name, output in outputs.items()}
            variables = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, scope=SEPARATOR_SCOPE)
            _check_checkpoint_variables(self.checkpoint, variables)
            saver = tf.compat.v1.train.Saver(var_list=variables)
            self._session = tf.compat.v1.Session(graph=self._graph, config=TensorFlowSetup.session_config())
            try:  # inside the graph context so restoring works whether or not eager execution is on
                saver.restore(self._session, self.checkpoint)
            except tf.errors.OpError as error:
                self._session.close()
                raise ValueError(f"Cannot restore checkpoint {self.checkpoint}: {error.message}. "
                                 "Is it complete? Use a checkpoint written by Training.py.") from error
        self._graph.finalize()
        LOGGER.info("Restored the separator from %s", self.checkpoint)

    @property
    def sources(self) -> List[str]:
        """Source names in model order, e.g. ``["accompaniment", "voice"]``."""
        return list(self.model_config["sources"])

    @property
    def sample_rate(self) -> int:
        """Sample rate in Hz the model works at (``expected_sr``)."""
        return int(self.model_config["expected_sr"])

    def predict(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """``[n, F_in, T_in, 1]`` linear magnitudes -> ``{source: [n, F_out, T_out, 1]}`` linear."""
        return self._session.run(self._outputs, {self._input: batch})

    def separate_spectrogram(self, magnitude: np.ndarray) -> Dict[str, np.ndarray]:
        """Linear magnitudes ``[F, T]`` -> ``{source: linear magnitudes [F, T]}``."""
        return slide_separator(magnitude, self.predict, self.input_shape, self.output_shape, self.batch_size)

    def separate(self, audio: np.ndarray) -> Dict[str, np.ndarray]:
        """Mono audio ``[samples]`` at :attr:`sample_rate` -> ``{source: audio [samples]}``."""
        return separate_audio(audio, self.predict, self.model_config, self.batch_size)

    def close(self):
        """Release the session."""
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _check_checkpoint_variables(checkpoint, variables):
    """Raise a clear error if the checkpoint lacks a separator variable or has another shape."""
    import tensorflow as tf

    try:
        stored = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"Cannot read checkpoint {checkpoint} ({error}); is it complete? "
                         "Use a checkpoint written by Training.py.") from error
    problems = []
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in stored:
            problems.append(f"{name} is missing")
        elif list(stored[name]) != shape:
            problems.append(f"{name} has shape {stored[name]}, the model_config gives {shape}")
    if problems:
        raise ValueError(f"Checkpoint {checkpoint} does not match its model_config.json: "
                         f"{'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}. "
                         "Use the model_config.json written together with the checkpoint.")

def separate_path(model_path: str, input_path: str, output_dir: str, overwrite: bool = False,
                  batch_size: int = DEFAULT_BATCH_SIZE, precision: Optional[str] = None) -> List[str]:
    """Separate an audio file, or every audio file in a folder, into one WAV per source.

    ``<name>.<ext>`` gives ``<output_dir>/<name>_<source>.wav`` for each of the model's sources
    (e.g. ``song_accompaniment.wav`` and ``song_voice.wav``). The outputs are **mono** (the
    model separates the mono down-mix), 32-bit float WAV, resampled back to the input's sample
    rate (soxr, high quality) and cut to the input's exact length. They only contain the band
    the model sees (up to ``expected_sr / 2``, 4096 Hz for the paper's settings).

    Args:
        model_path: checkpoint folder (see :func:`find_checkpoint`).
        input_path: an audio file (WAV, FLAC, MP3, OGG, AIFF, M4A) or a folder; a folder's
            audio files are separated in sorted order, sub-folders are ignored.
        output_dir: created if missing.
        overwrite: replace existing output files instead of refusing.
        batch_size: U-Net chunks per session call.
        precision: overrides the model's ``precision`` (see :class:`Separator`); ``None`` keeps it.

    Returns:
        The written paths, per input file in the model's source order.

    Raises:
        FileNotFoundError: the input or the model is missing.
        FileExistsError: an output exists and ``overwrite`` is False.
        ValueError: an input cannot be read or holds NaN or infinite samples (the message
            names the file; nothing is written then), or a folder holds no audio files.
    """
    inputs = list_audio_files(input_path)
    checkpoint, folder = find_checkpoint(model_path)
    sources = load_model_config(folder)["sources"]
    plan = _output_plan(inputs, sources, output_dir)
    if not overwrite:
        _refuse_existing([path for outputs in plan.values() for path in outputs.values()])
    samples = {path: _probe_audio(path) for path in inputs}
    if len(inputs) > 1:  # refuse a bad file before anything is written (one file is checked as it is read)
        for path in inputs:
            _check_finite_input(path)
    written = []
    with Separator(checkpoint, batch_size, precision) as separator:
        for path in tqdm(inputs, desc="Separating", unit="file", disable=None):
            estimates = _separate_file(separator, samples[path])
            for source, output_path in plan[path].items():
                Utils.atomic_write_audio(output_path, estimates[source], samples[path].sample_rate)
                written.append(output_path)
            LOGGER.info("Separated %s", path)
    return written


def list_audio_files(input_path: str) -> List[str]:
    """``[input_path]`` for a file; the sorted audio files directly inside a folder.

    Raises:
        FileNotFoundError: nothing at ``input_path``. ValueError: a folder without audio files.
    """
    input_path = os.fspath(input_path)
    if os.path.isfile(input_path):
        return [input_path]
    if not os.path.isdir(input_path):
        raise FileNotFoundError(f"Input {input_path} does not exist: pass an audio file or a folder of audio files.")
    files = sorted(os.path.join(input_path, name) for name in os.listdir(input_path)
                   if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)
                   and os.path.isfile(os.path.join(input_path, name)))
    if not files:
        raise ValueError(f"Folder {input_path} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); "
                         "sub-folders are not searched.")
    return files


def _output_plan(inputs, sources, output_dir):
    """``{input path: {source: output path}}``; two inputs may not share a name."""
    plan, owners = {}, {}
    for path in inputs:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in owners:
            raise ValueError(f"{owners[name]} and {path} would write the same outputs ({name}_<source>.wav): "
                             "rename one of them or separate them one at a time into different folders.")
        owners[name] = path
        plan[path] = {source: os.path.join(output_dir, f"{name}_{source}.wav") for source in sources}
    return plan


def _refuse_existing(paths):
    existing = [path for path in paths if os.path.exists(path)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"Output file {existing[0]} already exists{more}; not overwriting it. "
                              "Pass overwrite=True (command line: `with overwrite=True`) to replace it, "
                              "or choose another output_dir.")


def _probe_audio(path):
    """The file's ``Sample`` metadata; a ValueError naming the file if it cannot be read."""
    from Sample import AudioDecoderError, Sample

    try:
        return Sample.from_path(path)
    except AudioDecoderError as error:
        raise ValueError(str(error)) from error


def _check_finite_input(path):
    """A ValueError naming the file and the time of its first NaN or infinite sample, if any."""
    import Input

    try:
        Input.check_file_finite(path)
    except Input.UnreadableAudioError as error:
        raise ValueError(str(error)) from error


def _separate_file(separator, sample):
    """``{source: mono float32 audio}`` at the file's sample rate and exact length."""
    import Input
    import soxr

    try:
        mixture = Input.read_audio(sample.path, separator.sample_rate, mono_downmix=True)
    except Input.UnreadableAudioError as error:
        raise ValueError(str(error)) from error
    length = int(round(sample.duration * sample.sample_rate))
    outputs = {}
    for source, estimate in separator.separate(mixture).items():
        if sample.sample_rate != separator.sample_rate:
            estimate = soxr.resample(estimate, separator.sample_rate, sample.sample_rate, quality="HQ")
        outputs[source] = Input.fit_length(np.asarray(estimate, np.float32), length)
    return outputs
