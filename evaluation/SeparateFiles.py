"""The ``separate`` command: anyone's audio files into one WAV per source.

:func:`separate_path` plans the outputs of a file or a folder of files
(``<output_dir>/<name>_<source>.wav``), refuses existing outputs and unreadable inputs before
anything is written, separates each file with a :class:`Separation.Separator` and writes the
estimates at the input's sample rate and length: by default (``mode="fullband"``) with the
input's channels and whole band, or (``mode="model"``) mono in the model's band
(``Separation.SEPARATE_MODES``).
"""

import logging
import os
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from common import Utils
from evaluation.ModelFolder import find_checkpoint, load_model_config
from evaluation.Separation import DEFAULT_BATCH_SIZE, Separator, check_separate_mode

LOGGER = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a")


def separate_path(model_path: str, input_path: str, output_dir: str, overwrite: bool = False,
                  batch_size: int = DEFAULT_BATCH_SIZE, precision: Optional[str] = None,
                  mode: str = "fullband") -> List[str]:
    """Separate an audio file, or every audio file in a folder, into one WAV per source.

    ``<name>.<ext>`` gives ``<output_dir>/<name>_<source>.wav`` for each of the model's sources
    (e.g. ``song_accompaniment.wav`` and ``song_voice.wav``), 32-bit float WAV at the input's
    sample rate and exact length. With ``mode="fullband"`` they have the input's channels and
    whole band and add up to the input (``Separation.separate_fullband``); with ``mode="model"``
    they are **mono** (the model separates the mono down-mix), resampled back from the model's
    rate (soxr, high quality), and only contain the band the model sees (up to
    ``expected_sr / 2``, 4096 Hz for the paper's settings).

    Args:
        model_path: checkpoint folder (see :func:`ModelFolder.find_checkpoint`).
        input_path: an audio file (WAV, FLAC, MP3, OGG, AIFF, M4A) or a folder; a folder's
            audio files are separated in sorted order, sub-folders are ignored.
        output_dir: created if missing.
        overwrite: replace existing output files instead of refusing.
        batch_size: U-Net chunks per session call.
        precision: overrides the model's ``precision`` (see :class:`Separator`); ``None`` keeps it.
        mode: ``"fullband"`` or ``"model"`` (``Separation.SEPARATE_MODES``).

    Returns:
        The written paths, per input file in the model's source order.

    Raises:
        FileNotFoundError: the input or the model is missing.
        FileExistsError: an output exists and ``overwrite`` is False.
        ValueError: an input cannot be read or holds NaN or infinite samples (the message
            names the file; nothing is written then), a folder holds no audio files, or
            ``mode`` is not a separation mode.
    """
    mode = check_separate_mode(mode)
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
            estimates = _separate_file(separator, samples[path], mode)
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


def _separate_file(separator, sample, mode):
    """``{source: float32 audio}`` at the file's sample rate and exact length: ``[samples, channels]``
    with the file's channels (``mode="fullband"``) or mono ``[samples]`` (``mode="model"``)."""
    import Input
    import soxr

    length = int(round(sample.duration * sample.sample_rate))
    try:
        if mode == "fullband":
            mixture = Input.read_audio(sample.path, sample.sample_rate, mono_downmix=False)
        else:
            mixture = Input.read_audio(sample.path, separator.sample_rate, mono_downmix=True)
    except Input.UnreadableAudioError as error:
        raise ValueError(str(error)) from error
    if mode == "fullband":
        return {source: Input.fit_length(np.ascontiguousarray(estimate.T), length)
                for source, estimate in separator.separate_fullband(mixture, sample.sample_rate).items()}
    outputs = {}
    for source, estimate in separator.separate(mixture).items():
        if sample.sample_rate != separator.sample_rate:
            estimate = soxr.resample(estimate, separator.sample_rate, sample.sample_rate, quality="HQ")
        outputs[source] = Input.fit_length(np.asarray(estimate, np.float32), length)
    return outputs
