"""The ``separate`` command: anyone's audio files into one WAV per source.

:func:`separate_path` plans the outputs of a file or a folder of files
(``<output_dir>/<name>_<source>.wav``), refuses existing outputs, unreadable inputs and an
output folder that cannot hold the outputs before anything is written, separates each file with
a :class:`Separation.Separator` and writes the estimates at the input's sample rate and length:
by default (``mode="fullband"``) with the input's channels and whole band, or (``mode="model"``)
mono in the model's band (``Separation.SEPARATE_MODES``).

What is never overwritten, even with ``overwrite=True``: an input, and any file that is not an
output of ``separate`` (outputs are tagged: their WAV INFO ``software`` is :data:`OUTPUT_TAG`).
One run at a time writes into an output folder (a lock file, :data:`LOCK_FILE`, held from the
last check of existing outputs to the last write), and a song's outputs are written all or none:
every source to a temporary file first, then all moved into place.
"""

import contextlib
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import soundfile
from tqdm import tqdm

from common import Utils
from common.Checkpoints import read_model_config
from evaluation.ModelFolder import find_checkpoint
from evaluation.Separation import DEFAULT_BATCH_SIZE, Separator, check_separate_mode

LOGGER = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif", ".m4a")
OUTPUT_TAG = "Adversarial semi-supervised separation: separate"  # the WAV INFO software tag of our outputs
LOCK_FILE = ".separate.lock"  # in the output folder while a run writes into it
WAV_HEADER_BYTES = 100  # per output file, for the free-space estimate


def separate_path(
    model_path: str,
    input_path: str,
    output_dir: str,
    overwrite: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: Optional[str] = None,
    mode: str = "fullband",
) -> List[str]:
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
        overwrite: replace existing outputs of an earlier ``separate`` run instead of refusing
            (an input, or any other file, is never replaced).
        batch_size: U-Net chunks per session call.
        precision: overrides the model's ``precision`` (see :class:`Separator`); ``None`` keeps it.
        mode: ``"fullband"`` or ``"model"`` (``Separation.SEPARATE_MODES``).

    Returns:
        The written paths, per input file in the model's source order.

    Raises:
        FileNotFoundError: the input or the model is missing.
        FileExistsError: an output exists and ``overwrite`` is False; or an output path is an
            input or a file ``separate`` did not write (whatever ``overwrite`` says).
        ValueError: an input cannot be read or holds NaN or infinite samples (the message
            names the file; nothing is written then), a folder holds no audio files, or
            ``mode`` is not a separation mode.
        Utils.OutputError: ``output_dir`` cannot be written or has too little free space (before
            the model is loaded), another run is writing into it, or a write failed (a song's
            outputs are then all missing; the earlier songs' are complete).
    """
    mode = check_separate_mode(mode)
    inputs = list_audio_files(input_path)
    checkpoint, folder = find_checkpoint(model_path)
    sources = list(read_model_config(folder).network.sources)
    plan = _output_plan(inputs, sources, output_dir)
    _refuse_protected(plan, overwrite)
    samples = {path: _probe_audio(path) for path in inputs}
    if len(inputs) > 1:  # refuse a bad file before anything is written (one file is checked as it is read)
        for path in inputs:
            _check_finite_input(path)
    Utils.check_writable(output_dir, _output_bytes(samples.values(), len(sources), mode))
    written = []
    with _claimed_folder(output_dir):
        _refuse_protected(plan, overwrite)  # again: another run may have finished writing since the first check
        tags = {"software": OUTPUT_TAG, "comment": f"model {os.path.abspath(checkpoint)}"}
        with Separator(checkpoint, batch_size, precision) as separator:
            for path in tqdm(inputs, desc="Separating", unit="file", disable=None):
                estimates = _separate_file(separator, samples[path], mode)
                try:
                    written += _write_song(plan[path], estimates, samples[path].sample_rate, tags)
                except Utils.OutputError as error:
                    done = (
                        f"; the outputs of the {len(written) // len(sources)} file(s) before are complete"
                        if written
                        else ""
                    )
                    raise Utils.OutputError(f"{error}. No output of {path} was written{done}") from error
                LOGGER.info("Separated %s", path)
    return written


def list_audio_files(input_path: str) -> List[str]:
    """``[input_path]`` for a file; the sorted audio files directly inside a folder.

    A folder's files that are outputs of an earlier ``separate`` run (see :func:`is_separate_output`)
    are not inputs: they are left out, with an info message.

    Raises:
        FileNotFoundError: nothing at ``input_path``. ValueError: a folder without audio files.
    """
    input_path = os.fspath(input_path)
    if os.path.isfile(input_path):
        return [input_path]
    if not os.path.isdir(input_path):
        raise FileNotFoundError(f"Input {input_path} does not exist: pass an audio file or a folder of audio files.")
    files = sorted(
        os.path.join(input_path, name)
        for name in os.listdir(input_path)
        if not name.startswith(".")
        and name.lower().endswith(AUDIO_EXTENSIONS)
        and os.path.isfile(os.path.join(input_path, name))
    )
    outputs = [path for path in files if is_separate_output(path)]
    if outputs:
        LOGGER.info(
            "Leaving out %d file(s) of %s written by separate (e.g. %s)",
            len(outputs),
            input_path,
            os.path.basename(outputs[0]),
        )
        files = [path for path in files if path not in outputs]
    if not files:
        raise ValueError(
            f"Folder {input_path} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); sub-folders are not searched."
        )
    return files


def is_separate_output(path: str) -> bool:
    """True if ``path`` is a WAV written by ``separate`` (its INFO ``software`` tag starts with :data:`OUTPUT_TAG`)."""
    if not path.lower().endswith(".wav"):
        return False
    try:
        with soundfile.SoundFile(path) as sound:
            return (sound.software or "").startswith(OUTPUT_TAG)
    except (RuntimeError, OSError, ValueError):
        return False


def _output_plan(inputs, sources, output_dir):
    """``{input path: {source: output path}}``; two inputs may not share a name."""
    plan, owners = {}, {}
    for path in inputs:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in owners:
            raise ValueError(
                f"{owners[name]} and {path} would write the same outputs ({name}_<source>.wav): "
                "rename one of them or separate them one at a time into different folders."
            )
        owners[name] = path
        plan[path] = {source: os.path.join(output_dir, f"{name}_{source}.wav") for source in sources}
    return plan


def _refuse_protected(plan: Dict[str, Dict[str, str]], overwrite: bool) -> None:
    """Refuse an output path that is an input, that holds a file ``separate`` did not write, or
    (without ``overwrite``) that exists at all; the FileExistsError names the first such path."""
    inputs = {os.path.realpath(path): path for path in plan}
    existing = []
    for path, outputs in plan.items():
        for source, output in outputs.items():
            if os.path.realpath(output) in inputs:
                raise FileExistsError(
                    f"Output file {output} is one of the inputs ({inputs[os.path.realpath(output)]}): the {source} "
                    f"estimate of {path} would replace it. Inputs are never overwritten, not even with "
                    "overwrite=True: choose another output_dir or rename the file."
                )
            if os.path.lexists(output):
                if overwrite and not is_separate_output(output):
                    raise FileExistsError(
                        f"Output file {output} exists and was not written by separate: overwrite=True only "
                        "replaces earlier outputs of separate. Move it away or choose another output_dir."
                    )
                existing.append(output)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"Output file {existing[0]} already exists{more}; not overwriting it. "
            "Pass overwrite=True (command line: `with overwrite=True`) to replace it, "
            "or choose another output_dir."
        )


def _output_bytes(samples, num_sources, mode):
    """Bytes of the outputs of these inputs (32-bit float WAV at the input's rate, per source; with
    the input's channels in the full-band mode, mono in the model mode)."""
    return sum(
        num_sources
        * (
            4 * (sample.channels if mode == "fullband" else 1) * int(round(sample.duration * sample.sample_rate))
            + WAV_HEADER_BYTES
        )
        for sample in samples
    )


@contextlib.contextmanager
def _claimed_folder(output_dir):
    """Create ``output_dir`` if missing and hold its lock file for the block; folders created
    here are removed again if they are empty when the block ends (a run that wrote nothing)."""
    output_dir = os.path.abspath(output_dir)
    created = []
    folder = output_dir
    while not os.path.isdir(folder):
        created.append(folder)
        folder = os.path.dirname(folder)
    try:
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as error:
            raise Utils.output_error(output_dir, error, "create") from error
        with Utils.exclusive_lock(os.path.join(output_dir, LOCK_FILE), f"Output folder {output_dir}"):
            yield
    finally:
        for folder in created:  # deepest first
            try:
                os.rmdir(folder)
            except OSError:  # not empty (outputs written), or gone
                break


def _write_song(outputs, estimates, sample_rate, tags):
    """Write a song's outputs all or none: each to a temporary file, then all moved into place.

    Returns the output paths in ``outputs``' order. Raises ``Utils.OutputError`` naming the file
    and the cause; no output of the song is then left (replaced files of an earlier run are lost).
    """
    temporary = {}
    try:
        for source, output in outputs.items():
            data = Utils.encode_audio(output, estimates[source], sample_rate, tags=tags)
            temporary[source] = Utils.write_beside(output, data)
        moved = []
        try:
            for source, output in outputs.items():
                os.replace(temporary.pop(source), output)
                moved.append(output)
        except OSError as error:
            for path in moved:
                with contextlib.suppress(OSError):
                    os.remove(path)
            raise Utils.output_error(output, error) from error
    finally:
        for path in temporary.values():
            with contextlib.suppress(OSError):
                os.remove(path)
    return list(outputs.values())


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
    import soxr

    import Input

    length = int(round(sample.duration * sample.sample_rate))
    try:
        if mode == "fullband":
            mixture = Input.read_audio(sample.path, sample.sample_rate, mono_downmix=False)
        else:
            mixture = Input.read_audio(sample.path, separator.sample_rate, mono_downmix=True)
    except Input.UnreadableAudioError as error:
        raise ValueError(str(error)) from error
    if mode == "fullband":
        return {
            source: Input.fit_length(np.ascontiguousarray(estimate.T), length)
            for source, estimate in separator.separate_fullband(mixture, sample.sample_rate).items()
        }
    outputs = {}
    for source, estimate in separator.separate(mixture).items():
        if sample.sample_rate != separator.sample_rate:
            estimate = soxr.resample(estimate, separator.sample_rate, sample.sample_rate, quality="HQ")
        outputs[source] = Input.fit_length(np.asarray(estimate, np.float32), length)
    return outputs
