"""Whole-song separation, BSS Eval of test songs, result files, and separating any audio file.

Separation
----------
:class:`Separator` rebuilds the U-Net from a checkpoint folder alone (``model_config.json`` plus
TensorFlow ``Saver`` files) in its own ``tf.Graph`` and restores only the ``separator/``
variables. :func:`separate_spectrogram` slides the network over a whole song (PAPER.md,
"Evaluation") and :func:`separate_audio` wraps it with the STFT and the inverse STFT using the
mixture's phase. Both take a ``predict_fn`` so that any network (the :class:`Separator`, the
training graph's inference placeholder, or a test double) can be plugged in::

    predict_fn(batch [n, F_in, T_in, 1]) -> {source: [n, F_out, T_out, 1]}

Batches hold **linear** magnitudes in and out, like ``TrainingGraph.inference_input`` /
``inference_outputs``: the graph applies ``log(1 + x)`` and ``exp(y) - 1`` itself.

Metrics
-------
Per song and source, at the model's sample rate (8192 Hz mono), in dB:

- ``SDR``, ``SIR``, ``SAR``: ``mir_eval.separation.bss_eval_sources`` without permutation;
- ``NSDR``, ``NSIR``: SDR / SIR of the estimate minus those of the mixture used as the
  estimate of every source;
- ``SNR_scale_optimal``: ``10 log10(|a r|^2 / |a r - e|^2)`` with ``a = <e, r> / <r, r>``
  (reference ``r`` scaled optimally towards the estimate ``e``; equal to SI-SDR).

A metric without a meaningful value is *undefined*: stored as NaN (``null`` in JSON, an empty
cell in CSV), flagged, counted and left out of means and medians; no noise is ever added.
See :func:`compute_song_metrics` for the rules.

Result files (:func:`write_results`)
------------------------------------
- ``per_song.csv``: one row per model, song and source with :data:`PER_SONG_COLUMNS`:
  ``model``, ``database``, ``song``, ``source``, the six metrics above (dB, empty when
  undefined), ``undefined`` (True if any metric of the row is undefined), ``undefined_metrics``
  (names separated by ``;``), ``undefined_reason`` (why, ``;``-separated) and ``seconds``
  (song duration).
- ``summary.csv``: one row per model, database (``all`` = every test song), source and metric
  with :data:`SUMMARY_COLUMNS`: ``mean``, ``median`` (dB over the songs where the metric is
  defined; empty if none), ``num_defined``, ``num_undefined``.
- ``results.json``: ``{"columns": {...descriptions}, "per_song": [...], "summary": [...],
  "undefined_counts": {model: {database: {source: {metric: count}}}}}``; undefined values are
  ``null``, infinite ones the strings ``"inf"`` / ``"-inf"``.
- ``sdr_boxplot.png``: SDR per database and source, one box per model side by side.
"""

import concurrent.futures
import contextlib
import csv
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import warnings
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

import Utils
from Checkpoints import MODEL_CONFIG_FILE

Utils.use_fast_cpu_kernels()  # before TensorFlow is imported (lazily, below)

# TensorFlow, Input and Models are imported inside the functions that need them: the BSS Eval
# worker processes import this module and should not pay for (or hold memory of) TensorFlow.

LOGGER = logging.getLogger(__name__)

SEPARATOR_SCOPE = "separator"
DEFAULT_BATCH_SIZE = 32
DEFAULT_NUM_WORKERS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a")

# A reference whose mean power is at most this (RMS 1e-6, -120 dBFS) counts as silent.
SILENCE_MEAN_SQUARE = 1e-12

METRICS = ("SDR", "SIR", "SAR", "NSDR", "NSIR", "SNR_scale_optimal")
PER_SONG_COLUMNS = ("model", "database", "song", "source") + METRICS + (
    "undefined", "undefined_metrics", "undefined_reason", "seconds")
SUMMARY_COLUMNS = ("model", "database", "source", "metric", "mean", "median", "num_defined", "num_undefined")
ALL_DATABASES = "all"
COLUMN_DESCRIPTIONS = {
    "model": "model name (e.g. supervised, semi-supervised)",
    "database": "database of the song; 'all' in summaries means every song",
    "song": "song name",
    "source": "separated source (e.g. accompaniment, voice)",
    "SDR": "signal to distortion ratio, dB (BSS Eval v3, mir_eval bss_eval_sources, no permutation)",
    "SIR": "signal to interference ratio, dB",
    "SAR": "signal to artefacts ratio, dB",
    "NSDR": "SDR minus the SDR of the mixture used as estimate, dB",
    "NSIR": "SIR minus the SIR of the mixture used as estimate, dB",
    "SNR_scale_optimal": "10 log10(|a r|^2 / |a r - e|^2), a = <e,r>/<r,r> (SI-SDR), dB",
    "undefined": "True if any metric of the row is undefined (NaN / null / empty)",
    "undefined_metrics": "';'-separated names of the undefined metrics",
    "undefined_reason": "';'-separated reasons (silent reference, silent estimate, ...)",
    "seconds": "song duration in seconds",
    "metric": "metric name (one of the metric columns above)",
    "mean": "mean over songs where the metric is defined, dB (null if none)",
    "median": "median over songs where the metric is defined, dB (null if none)",
    "num_defined": "songs with a defined value",
    "num_undefined": "songs where the metric is undefined (left out of mean and median)",
}

PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


# ----------------------------------------------------------------------------------------
# Checkpoint folders
# ----------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------
# Whole-song separation (pure functions)
# ----------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------
# The restored separator
# ----------------------------------------------------------------------------------------

class Separator:
    """The separator of a checkpoint folder in its own graph and session (a context manager).

    Args:
        model_path: checkpoint folder (or checkpoint prefix), see :func:`find_checkpoint`.
        batch_size: U-Net chunks per session call when separating whole songs.

    Attributes:
        model_config: the folder's ``model_config`` dict.
        input_shape, output_shape: ``(F_in, T_in)`` and ``(F_out, T_out)`` of the network.

    Use ``with Separator(path) as separator: separator.separate(audio)``.
    """

    def __init__(self, model_path: str, batch_size: int = DEFAULT_BATCH_SIZE):
        import tensorflow as tf

        from Models.Unet import Unet

        self.checkpoint, folder = find_checkpoint(model_path)
        self.model_config = load_model_config(folder)
        self.batch_size = int(batch_size)
        self.input_shape, self.output_shape = network_shapes(self.model_config)
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._input = tf.compat.v1.placeholder(tf.float32, (None,) + tuple(self.input_shape) + (1,),
                                                   name="mixture_magnitudes")
            unet = Unet(self.model_config["num_layers"], self.model_config["num_initial_filters"],
                        self.model_config["sources"])
            outputs = unet.get_output(tf.math.log1p(self._input), reuse=False)
            self._outputs = {name: tf.math.expm1(output) for name, output in outputs.items()}
            variables = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, scope=SEPARATOR_SCOPE)
            _check_checkpoint_variables(self.checkpoint, variables)
            saver = tf.compat.v1.train.Saver(var_list=variables)
            self._session = tf.compat.v1.Session(graph=self._graph)
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


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------

def scale_optimal_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(|a r|^2 / |a r - e|^2)`` with ``a = <e, r> / <r, r>`` in dB (= SI-SDR).

    Returns NaN when undefined (silent reference or estimate) and +inf for a perfect estimate.
    """
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    reference_power = float(np.dot(reference, reference))
    if reference_power == 0.0 or not np.any(estimate):
        return math.nan
    target = (np.dot(estimate, reference) / reference_power) * reference
    error_power = float(np.sum((target - estimate) ** 2))
    target_power = float(np.sum(target ** 2))
    if error_power == 0.0:
        return math.inf
    if target_power == 0.0:
        return -math.inf
    return 10.0 * math.log10(target_power / error_power)


def compute_song_metrics(references: np.ndarray, estimates: np.ndarray,
                         mixture: np.ndarray) -> List[dict]:
    """All metrics of one song, per source.

    Args:
        references: true sources ``[sources, samples]`` at the model's sample rate.
        estimates: separated sources ``[sources, samples]`` in the same order.
        mixture: the mixture ``[samples]`` (for NSDR / NSIR).

    Returns:
        One dict per source: ``{metric: float (NaN if undefined), "undefined_metrics": [...],
        "undefined_reason": [...]}``.

    Undefined values (NaN) and how silence is handled:

    - A *silent reference* (mean power <= :data:`SILENCE_MEAN_SQUARE`) makes every metric of
      its source undefined. BSS Eval then runs on the non-silent references only; an all-zero
      reference spans nothing, so leaving it out of the interference subspace gives exactly the
      numbers mir_eval would give if it accepted silent references.
    - An all-zero *estimate* makes every metric of its source undefined (mir_eval rejects it;
      its SDR would be -inf). To keep mir_eval's input valid, that slot's estimate is replaced by
      its reference and the result thrown away: without permutation, each estimate is
      decomposed on its own, so the other sources' numbers are unaffected.
    - SIR and NSIR are undefined for a source with no other non-silent reference (no
      interference to measure; mir_eval would report +inf).
    - NSDR and NSIR are undefined when any reference of the song is silent (the mixture then is
      a near-perfect estimate of the remaining source, so the difference is meaningless) or
      when the mixture is all zeros.
    """
    from mir_eval.separation import bss_eval_sources

    references = np.asarray(references, np.float64)
    estimates = np.asarray(estimates, np.float64)
    mixture = np.asarray(mixture, np.float64)
    if references.shape != estimates.shape or references.ndim != 2 or mixture.shape != references.shape[1:]:
        raise ValueError(f"Shapes do not match: references {references.shape}, estimates {estimates.shape}, "
                         f"mixture {mixture.shape}")
    num_sources = references.shape[0]
    results = [{**{metric: math.nan for metric in METRICS}, "undefined_metrics": [], "undefined_reason": []}
               for _ in range(num_sources)]
    silent_reference = np.mean(references ** 2, axis=1) <= SILENCE_MEAN_SQUARE
    silent_estimate = ~np.any(estimates, axis=1)
    active = np.flatnonzero(~silent_reference)
    if active.size:
        active_references = references[active]
        valid_estimates = np.where(silent_estimate[active, None], active_references, estimates[active])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mir_eval 0.8 warns about the function's removal in 0.9
            sdr, sir, sar, _ = bss_eval_sources(active_references, valid_estimates, compute_permutation=False)
            mixture_scores = None
            if not silent_reference.any() and np.any(mixture):
                mixture_scores = bss_eval_sources(active_references, np.tile(mixture, (active.size, 1)),
                                                  compute_permutation=False)
        for index, source in enumerate(active):
            if silent_estimate[source]:
                continue
            result = results[source]
            result["SDR"], result["SAR"] = float(sdr[index]), float(sar[index])
            result["SNR_scale_optimal"] = scale_optimal_snr(references[source], estimates[source])
            if active.size > 1:
                result["SIR"] = float(sir[index])
            if mixture_scores is not None:
                result["NSDR"] = float(sdr[index] - mixture_scores[0][index])
                if active.size > 1:
                    result["NSIR"] = float(sir[index] - mixture_scores[1][index])
    for source, result in enumerate(results):
        result["undefined_metrics"] = [metric for metric in METRICS if math.isnan(result[metric])]
        result["undefined_reason"] = _undefined_reasons(source, silent_reference, silent_estimate, active.size,
                                                        np.any(mixture), result["undefined_metrics"])
    return results


def _undefined_reasons(source, silent_reference, silent_estimate, num_active, mixture_nonzero, undefined):
    if not undefined:
        return []
    if silent_reference[source]:
        return ["silent reference"]
    if silent_estimate[source]:
        return ["silent estimate"]
    reasons = []
    if "SIR" in undefined:
        reasons.append("no other non-silent reference (no interference to measure)")
    if "NSDR" in undefined:
        reasons.append("another reference is silent" if silent_reference.any() else "silent mixture")
    return reasons


# ----------------------------------------------------------------------------------------
# Evaluating a model on songs
# ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class SongJob:
    """Everything a BSS Eval worker needs for one separated song (picklable)."""

    index: int
    model: str
    database: str
    song: str
    source_names: Tuple[str, ...]
    source_paths: Tuple[Optional[str], ...]  # None: the song lacks the source (silence)
    mixture: np.ndarray  # [samples] at sample_rate
    estimates: Dict[str, np.ndarray]  # source -> [samples]
    sample_rate: int


def evaluate_song(job: SongJob) -> List[dict]:
    """Load a song's true sources and compute its metrics; runs in a worker process.

    Returns:
        One per-song row (:data:`PER_SONG_COLUMNS`) per source.
    """
    import Input

    length = len(job.mixture)
    references = []
    for name, path in zip(job.source_names, job.source_paths):
        if path is None:
            references.append(np.zeros(length, np.float32))
            continue
        audio = np.asarray(Input.read_audio(path, job.sample_rate, mono_downmix=True), np.float32)
        if len(audio) != length:
            LOGGER.debug("%s has %d samples, its mixture %d: fitted to the mixture", path, len(audio), length)
        references.append(_fit_length(audio, length))
    estimates = np.stack([job.estimates[name] for name in job.source_names])
    metrics = compute_song_metrics(np.stack(references), estimates, job.mixture)
    rows = []
    for name, values in zip(job.source_names, metrics):
        row = {"model": job.model, "database": job.database, "song": job.song, "source": name}
        row.update({metric: values[metric] for metric in METRICS})
        row.update(undefined=bool(values["undefined_metrics"]),
                   undefined_metrics=";".join(values["undefined_metrics"]),
                   undefined_reason=";".join(values["undefined_reason"]),
                   seconds=length / job.sample_rate)
        rows.append(row)
    return rows


def _fit_length(audio, length):
    """Cut or zero-pad ``audio`` [samples] to ``length`` samples."""
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))


def evaluate_model(model_path: str, songs: Sequence[Sequence], num_workers: int = DEFAULT_NUM_WORKERS,
                   batch_size: int = DEFAULT_BATCH_SIZE, model_name: Optional[str] = None) -> List[dict]:
    """Separate every song with a checkpoint's separator and compute its BSS Eval metrics.

    Separation runs in this process (TensorFlow); the metrics of each separated song are
    computed in ``num_workers`` worker processes ('spawn' context) while the next song is
    separated. A tqdm bar counts evaluated songs.

    Args:
        model_path: checkpoint folder (see :func:`find_checkpoint`).
        songs: ``[(mixture, *sources), ...]`` of ``Sample`` in the order of the model's
            ``sources``; a source the song lacks (``None`` or ``silent``, see
            ``Input.is_silent``) is silence. Audio is read mono at the model's sample rate.
        num_workers: BSS Eval processes; 1 computes in this process.
        batch_size: U-Net chunks per session call.
        model_name: ``model`` column of the rows; defaults to the checkpoint folder's name.

    Returns:
        Per-song rows (:data:`PER_SONG_COLUMNS`), songs in input order, sources in model order.
    """
    import Input

    with Separator(model_path, batch_size) as separator:
        name = model_name or _default_model_name(model_path)
        _check_songs(songs, separator.sources)

        def jobs():
            for index, song in enumerate(songs):
                mixture = Input.read_audio(song[0].path, separator.sample_rate, mono_downmix=True)
                yield SongJob(index=index, model=name, database=song[0].database or "unknown",
                              song=_song_name(song[0]), source_names=tuple(separator.sources),
                              source_paths=tuple(None if Input.is_silent(sample) else sample.path
                                                 for sample in song[1:]),
                              mixture=mixture, estimates=separator.separate(mixture),
                              sample_rate=separator.sample_rate)

        results = _run_jobs(jobs(), len(songs), num_workers)
    return [row for index in sorted(results) for row in results[index]]


def _run_jobs(jobs: Iterable[SongJob], total: int, num_workers: int) -> Dict[int, List[dict]]:
    """Evaluate jobs in-process or in a spawn process pool; returns ``index -> rows``."""
    results = {}
    with tqdm(total=total, desc="BSS Eval", unit="song", disable=None) as progress:
        if num_workers <= 1:
            for job in jobs:
                with _naming_the_song(job.song):
                    results[job.index] = evaluate_song(job)
                progress.update()
            return results
        # 'spawn': the parent holds a TensorFlow session, which must not be forked; and unlike
        # forkserver children, spawned ones get the thread settings of the current environment.
        context = multiprocessing.get_context("spawn")
        with _single_threaded_math_in_children(), \
                concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            _start_workers(pool, num_workers)
            pending = {}
            for job in jobs:
                pending[pool.submit(evaluate_song, job)] = (job.index, job.song)
                if len(pending) >= 2 * num_workers:  # bound the separated songs held in memory
                    done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    _collect(done, pending, results, progress)
            _collect(concurrent.futures.as_completed(list(pending)), pending, results, progress)
    return results


def _start_workers(pool, num_workers):
    """Start the pool's processes now, with the main script hidden from them.

    A spawned child re-runs the parent's main script; for Training.py that means importing
    TensorFlow (about 12 s and 650 MB per process on our machine) for nothing. The pool
    starts a process per submitted job while none is idle, so ``num_workers`` quick jobs
    submitted inside :func:`Utils.main_script_hidden` start them all.
    """
    import Input

    with Utils.main_script_hidden():
        started = [pool.submit(os.getpid) for _ in range(num_workers)]
    concurrent.futures.wait(started)


@contextlib.contextmanager
def _single_threaded_math_in_children():
    """One BLAS/OpenMP thread per worker process (one process per core instead of oversubscribing).

    Spawned children read these variables when they start, which happens while the pool is in
    use, so they are set for the pool's lifetime; settings the user made are kept.
    """
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: "1" for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _collect(futures, pending, results, progress):
    """Move finished futures' rows from ``pending`` (future -> (index, song)) into ``results``."""
    for future in futures:
        index, song = pending.pop(future)
        with _naming_the_song(song):
            results[index] = future.result()
        progress.update()


@contextlib.contextmanager
def _naming_the_song(song):
    """Re-raise a failure of one song's evaluation with the song's name in the message (a file
    that cannot be used keeps its own error, which names the file)."""
    import Input

    try:
        yield
    except Input.UnreadableAudioError:
        raise
    except Exception as error:
        raise RuntimeError(f"Evaluating song {song!r} failed: {error}") from error


def _check_songs(songs, sources):
    for song in songs:
        if len(song) != 1 + len(sources):
            raise ValueError(f"Song {song[0].path if song else song!r} has {len(song)} files; the model expects "
                             f"(mixture, {', '.join(sources)}).")


def _song_name(sample):
    return sample.song or os.path.basename(os.path.dirname(sample.path)) or os.path.basename(sample.path)


def _default_model_name(model_path):
    path = os.path.normpath(os.path.abspath(model_path))
    if os.path.isfile(path + ".index"):
        path = os.path.dirname(path)
    name = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) if name == "best" else name


# ----------------------------------------------------------------------------------------
# Aggregates, tables and result files
# ----------------------------------------------------------------------------------------

def summarise(results_by_model: Mapping[str, Sequence[dict]]) -> List[dict]:
    """Mean and median per model, database (and ``all``), source and metric.

    Args:
        results_by_model: ``{model name: per-song rows}``, e.g. ``{"supervised": rows,
            "semi-supervised": rows}``; the key becomes the ``model`` column.

    Returns:
        Rows with :data:`SUMMARY_COLUMNS`. ``mean`` / ``median`` are in dB over the songs
        where the metric is defined (``None`` if there are none); undefined values are counted
        in ``num_undefined`` and left out.
    """
    summary = []
    for model, rows in results_by_model.items():
        for database in _databases(rows):
            for source in _sources(rows):
                selected = [row for row in rows if row["source"] == source
                            and database in (ALL_DATABASES, row["database"])]
                if not selected:
                    continue
                for metric in METRICS:
                    values = np.array([row[metric] for row in selected], dtype=np.float64)
                    defined = values[~np.isnan(values)]
                    summary.append({"model": model, "database": database, "source": source, "metric": metric,
                                    "mean": float(np.mean(defined)) if defined.size else None,
                                    "median": _median(defined) if defined.size else None,
                                    "num_defined": int(defined.size),
                                    "num_undefined": int(values.size - defined.size)})
    return summary


def _median(values):
    """Median that keeps infinite values (np.median turns a middle pair with inf into NaN)."""
    ordered = np.sort(values)
    middle = len(ordered) // 2
    return float(ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2)


def _databases(rows):
    """``all`` followed by the rows' databases, sorted."""
    return [ALL_DATABASES] + sorted({row["database"] for row in rows})


def _sources(rows):
    """Source names in order of first appearance."""
    return list(dict.fromkeys(row["source"] for row in rows))


def format_results_table(results_by_model: Mapping[str, Sequence[dict]],
                         metrics: Sequence[str] = METRICS) -> str:
    """A plain-text table: database, source and metric rows; per model mean, median, n, undefined.

    Args:
        results_by_model: ``{model name: per-song rows}`` (see :func:`summarise`).
        metrics: metric names to show, in this order.

    Returns:
        The table as one string (no trailing newline), models side by side.
    """
    summary = summarise(results_by_model)
    models = list(results_by_model)
    cells = {(row["model"], row["database"], row["source"], row["metric"]): row for row in summary}
    databases = [ALL_DATABASES] + sorted({row["database"] for row in summary} - {ALL_DATABASES})
    sources = _sources(summary)
    keys = sorted({(row["database"], row["source"], row["metric"]) for row in summary if row["metric"] in metrics},
                  key=lambda key: (databases.index(key[0]), sources.index(key[1]), list(metrics).index(key[2])))
    label_widths = [max([len(header)] + [len(str(key[i])) for key in keys])
                    for i, header in enumerate(("database", "source", "metric"))]
    cell_width = 30
    lines = ["BSS Eval results in dB: mean and median over songs; n = songs with a defined value, "
             "undef = songs where it is undefined (e.g. a silent reference), left out.",
             _join_labels(("", "", ""), label_widths) + "".join(f"  {model:>{cell_width}}" for model in models),
             _join_labels(("database", "source", "metric"), label_widths)
             + "".join(f"  {'mean':>8} {'median':>8} {'n':>5} {'undef':>6}" for _ in models)]
    previous_database = None
    for database, source, metric in keys:
        if previous_database is not None and database != previous_database:
            lines.append("")
        previous_database = database
        line = _join_labels((database, source, metric), label_widths)
        for model in models:
            row = cells.get((model, database, source, metric))
            line += "  " + (_format_cell(row) if row else f"{'-':>{cell_width}}")
        lines.append(line)
    return "\n".join(lines)


def _join_labels(labels, widths):
    return "  ".join(f"{label:<{width}}" for label, width in zip(labels, widths))


def _format_cell(row):
    def number(value):
        return f"{'-':>8}" if value is None else f"{value:8.2f}"

    return f"{number(row['mean'])} {number(row['median'])} {row['num_defined']:5d} {row['num_undefined']:6d}"


def write_results(results_by_model: Mapping[str, Sequence[dict]], out_dir: str) -> List[str]:
    """Write ``results.json``, ``per_song.csv``, ``summary.csv`` and ``sdr_boxplot.png``.

    Columns and layouts are described in the module docstring; every file is written
    atomically. The dict keys of ``results_by_model`` become the ``model`` column.

    Returns:
        The written file paths.
    """
    per_song = [dict(row, model=model) for model, rows in results_by_model.items() for row in rows]
    summary = summarise(results_by_model)
    paths = [os.path.join(out_dir, name) for name in ("results.json", "per_song.csv", "summary.csv",
                                                       "sdr_boxplot.png")]
    Utils.atomic_write_json(paths[0], {
        "columns": COLUMN_DESCRIPTIONS,
        "per_song": [{key: _json_value(row[key]) for key in PER_SONG_COLUMNS} for row in per_song],
        "summary": [{key: _json_value(row[key]) for key in SUMMARY_COLUMNS} for row in summary],
        "undefined_counts": _undefined_counts(summary)})
    _write_csv(paths[1], PER_SONG_COLUMNS, per_song)
    _write_csv(paths[2], SUMMARY_COLUMNS, summary)
    _write_sdr_boxplot(paths[3], results_by_model)
    LOGGER.info("Wrote results to %s", out_dir)
    return paths


def _json_value(value):
    """JSON has no NaN or infinity: NaN (undefined) -> null, +-inf -> "inf" / "-inf"."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    return value


def _undefined_counts(summary):
    counts = {}
    for row in summary:
        counts.setdefault(row["model"], {}).setdefault(row["database"], {}).setdefault(
            row["source"], {})[row["metric"]] = row["num_undefined"]
    return counts


def _write_csv(path, columns, rows):
    with Utils.atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row[column]) for column in columns])


def _csv_value(value):
    """Undefined (NaN / None) -> empty cell; floats with 6 significant digits."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return value


def _write_sdr_boxplot(path, results_by_model):
    """Box plot of finite SDR values: one panel per source, databases on x, a box per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [row for model_rows in results_by_model.values() for row in model_rows]
    sources = _sources(rows)
    databases = sorted({row["database"] for row in rows})
    if len(databases) > 1:
        databases.append(ALL_DATABASES)
    models = list(results_by_model)
    figure = Figure(figsize=(max(6.0, 1.6 * len(databases) * len(models)), 4.0 * max(len(sources), 1)))
    FigureCanvasAgg(figure)
    width = 0.8 / max(len(models), 1)
    for panel, source in enumerate(sources or [""]):
        axes = figure.add_subplot(max(len(sources), 1), 1, panel + 1)
        for index, model in enumerate(models):
            data, positions = [], []
            for group, database in enumerate(databases):
                values = [row["SDR"] for row in results_by_model[model] if row["source"] == source
                          and database in (ALL_DATABASES, row["database"]) and math.isfinite(row["SDR"])]
                if values:
                    data.append(values)
                    positions.append(group + (index - (len(models) - 1) / 2) * width)
            if data:
                boxes = axes.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                                     manage_ticks=False, medianprops={"color": "black"})
                colour = f"C{index}"
                for box in boxes["boxes"]:
                    box.set_facecolor(colour)
                    box.set_alpha(0.6)
                axes.plot([], [], color=colour, linewidth=8, alpha=0.6, label=model)
        axes.set_xticks(range(len(databases)))
        axes.set_xticklabels(databases)
        axes.set_xlim(-0.6, len(databases) - 0.4)
        axes.set_ylabel("SDR (dB)")
        axes.set_title(f"SDR of {source}" if source else "SDR")
        axes.grid(axis="y", alpha=0.3)
        if models:
            axes.legend(loc="best")
    figure.tight_layout()
    with Utils.atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)


# ----------------------------------------------------------------------------------------
# Separating anyone's audio
# ----------------------------------------------------------------------------------------

def separate_path(model_path: str, input_path: str, output_dir: str, overwrite: bool = False,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> List[str]:
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
    for path in inputs:  # refuse a bad file before anything is written
        _check_finite_input(path)
    written = []
    with Separator(checkpoint, batch_size) as separator:
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
        outputs[source] = _fit_length(np.asarray(estimate, np.float32), length)
    return outputs
