"""One audio file of a dataset, described by its metadata only (no audio is loaded).

WAV, FLAC, OGG and AIFF files are inspected with soundfile (libsndfile); every other format
(MP3, M4A, ...) goes through audioread, which needs a decoder backend such as ffmpeg. A file
that the installed ffmpeg cannot decode is described by :func:`undecodable_reason` (not "install
ffmpeg"); a WAV whose header promises more audio than the file holds is read as far as it goes,
with a warning (:func:`truncated_wav_warning`).
"""

import dataclasses
import logging
import os
import shutil
import struct
import subprocess

import audioread
import soundfile

LOGGER = logging.getLogger(__name__)

SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
# Every extension the project reads: libsndfile's, and MP3 / M4A through audioread.
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS + (".mp3", ".m4a")
FFMPEG_INSTALL_HINT = (
    "install ffmpeg (for example `apt-get install ffmpeg`, `brew install ffmpeg` "
    "or `conda install -c conda-forge ffmpeg`) so that audioread can decode it, "
    "or convert the file to WAV or FLAC"
)


class AudioDecoderError(RuntimeError):
    """No installed audio decoder can read a file (for example MP3 without ffmpeg)."""


def ffmpeg_is_installed() -> bool:
    """True if audioread can decode through ffmpeg (its ffmpeg backend is available)."""
    from audioread import ffdec

    return any(backend is ffdec.FFmpegAudioFile for backend in audioread.available_backends())


def undecodable_reason(path: str) -> str:
    """Why the installed ffmpeg cannot decode ``path``, for an error message.

    A text file is called one; otherwise ffprobe's own error (e.g. "moov atom not found",
    "Invalid data found when processing input") or the streams the file holds instead of audio.
    """
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head and b"\0" not in head and _is_text(head):
        return "it is a text file, not audio"
    if shutil.which("ffprobe") is None:
        return "ffmpeg cannot decode it: it is corrupt or not an audio file"
    try:
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", path],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"ffmpeg cannot decode it ({error})"
    if probe.returncode != 0:
        lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
        detail = "; ".join(line.split("] ", 1)[-1].replace(f"{path}: ", "") for line in lines[-2:])
        return f"ffmpeg cannot decode it, the file is corrupt or not audio ({detail or 'no details'})"
    streams = sorted({line.strip() for line in probe.stdout.splitlines() if line.strip()})
    if "audio" not in streams:
        return f"it holds no audio stream (only {', '.join(streams) or 'no streams'})"
    return "ffmpeg cannot decode its audio stream: the file is corrupt"


@dataclasses.dataclass(frozen=True)
class Sample:
    """Metadata of one audio file; picklable and hashable.

    Attributes:
        path: absolute path of the audio file.
        sample_rate: sampling rate in Hz, as stored in the file.
        channels: number of channels in the file.
        duration: length in seconds.
        database: name of the database the file belongs to (e.g. "DSD100"), "" if none.
        song: human-readable song name for results tables, "" if none.
    """

    path: str
    sample_rate: int
    channels: int
    duration: float
    database: str = ""
    song: str = ""

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], database: str = "", song: str = "") -> "Sample":
        """Describe the audio file at ``path`` by reading its header only.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: the file is empty, corrupt or holds no audio frames.
            AudioDecoderError: the format needs audioread and no decoder backend can read it.
        """
        path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Audio file not found: {path}")
        if os.path.getsize(path) == 0:
            raise ValueError(
                f"Audio file {path} is empty (0 bytes): replace it with a valid "
                "audio file or remove it from the dataset"
            )
        if path.lower().endswith(SOUNDFILE_EXTENSIONS):
            sample_rate, channels, duration = _soundfile_metadata(path)
        else:
            sample_rate, channels, duration = _audioread_metadata(path)
        if duration <= 0:
            raise ValueError(
                f"Audio file {path} contains no audio frames: replace it with a valid "
                "audio file or remove it from the dataset"
            )
        return cls(
            path=path,
            sample_rate=int(sample_rate),
            channels=int(channels),
            duration=float(duration),
            database=database,
            song=song,
        )


def _is_text(head):
    """True if the bytes are UTF-8 text (a character cut at the block's end allowed)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3
    return True


def _soundfile_metadata(path):
    """(sample rate in Hz, channels, duration in seconds) of a libsndfile-readable file."""
    try:
        info = soundfile.info(path)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise ValueError(
            f"Cannot read audio file {path}: it is corrupt or not a "
            f"{os.path.splitext(path)[1]} file ({error}). Replace it or remove it "
            "from the dataset"
        ) from error
    warning = truncated_wav_warning(path, info.frames, info.samplerate)
    if warning:
        LOGGER.warning(warning)
    return info.samplerate, info.channels, info.frames / info.samplerate


def truncated_wav_warning(path: str, frames: int, sample_rate: int) -> str:
    """A warning naming ``path`` and both lengths if its RIFF header promises more audio than
    the ``frames`` it holds (a cut download or copy); "" otherwise (and for other formats).

    libsndfile reads such a file up to its end without a word.
    """
    declared = _declared_wav_frames(path)
    if declared is None or declared <= frames:
        return ""
    return (
        f"Audio file {path} is truncated: its header promises {declared / sample_rate:.3f} s but it holds "
        f"{frames / sample_rate:.3f} s; only those {frames / sample_rate:.3f} s are used"
    )


def _declared_wav_frames(path):
    """Frames the ``data`` chunk's size of a RIFF WAV file declares, or None (not RIFF WAV, unknown size)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(12)[:4] != b"RIFF":
                return None
            block_align = None
            for _ in range(64):  # chunks before "data": fmt, fact, LIST, PEAK, ...
                header = handle.read(8)
                if len(header) < 8:
                    return None
                chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk == b"fmt ":
                    block_align = struct.unpack("<H", handle.read(16)[12:14])[0]
                    handle.seek(size - 16 + size % 2, os.SEEK_CUR)
                elif chunk == b"data":
                    return None if not block_align or size in (0, 0xFFFFFFFF) else size // block_align
                else:
                    handle.seek(size + size % 2, os.SEEK_CUR)
    except (OSError, struct.error):
        return None
    return None


def _audioread_metadata(path):
    """(sample rate in Hz, channels, duration in seconds) read through audioread."""
    backends = audioread.available_backends()
    if not backends:
        raise AudioDecoderError(f"No audio decoder is available to read {path}: {FFMPEG_INSTALL_HINT}")
    try:
        with audioread.audio_open(path, backends=backends) as audio:
            return audio.samplerate, audio.channels, audio.duration
    except audioread.NoBackendError as error:
        if ffmpeg_is_installed():
            raise ValueError(
                f"Cannot decode audio file {path}: {undecodable_reason(path)}. Replace it or remove it from the dataset"
            ) from error
        raise AudioDecoderError(
            f"None of the installed audio decoders can read {path}: {FFMPEG_INSTALL_HINT}"
        ) from error
    except (audioread.DecodeError, EOFError, OSError) as error:
        raise ValueError(
            f"Cannot decode audio file {path}: it is corrupt ({error}). Replace it or remove it from the dataset"
        ) from error
