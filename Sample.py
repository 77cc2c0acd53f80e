"""One audio file of a dataset, described by its metadata only (no audio is loaded).

WAV, FLAC, OGG and AIFF files are inspected with soundfile (libsndfile); every other format
(MP3, M4A, ...) goes through audioread, which needs a decoder backend such as ffmpeg.
"""

import dataclasses
import os

import audioread
import soundfile

SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
# Every extension the project reads: libsndfile's, and MP3 / M4A through audioread.
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS + (".mp3", ".m4a")
FFMPEG_INSTALL_HINT = ("install ffmpeg (for example `apt-get install ffmpeg`, `brew install ffmpeg` "
                       "or `conda install -c conda-forge ffmpeg`) so that audioread can decode it, "
                       "or convert the file to WAV or FLAC")


class AudioDecoderError(RuntimeError):
    """No installed audio decoder can read a file (for example MP3 without ffmpeg)."""


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
    def from_path(cls, path, database="", song="") -> "Sample":
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
            raise ValueError(f"Audio file {path} is empty (0 bytes): replace it with a valid "
                             "audio file or remove it from the dataset")
        if path.lower().endswith(SOUNDFILE_EXTENSIONS):
            sample_rate, channels, duration = _soundfile_metadata(path)
        else:
            sample_rate, channels, duration = _audioread_metadata(path)
        if duration <= 0:
            raise ValueError(f"Audio file {path} contains no audio frames: replace it with a valid "
                             "audio file or remove it from the dataset")
        return cls(path=path, sample_rate=int(sample_rate), channels=int(channels),
                   duration=float(duration), database=database, song=song)


def _soundfile_metadata(path):
    """(sample rate in Hz, channels, duration in seconds) of a libsndfile-readable file."""
    try:
        info = soundfile.info(path)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise ValueError(f"Cannot read audio file {path}: it is corrupt or not a "
                         f"{os.path.splitext(path)[1]} file ({error}). Replace it or remove it "
                         "from the dataset") from error
    return info.samplerate, info.channels, info.frames / info.samplerate


def _audioread_metadata(path):
    """(sample rate in Hz, channels, duration in seconds) read through audioread."""
    backends = audioread.available_backends()
    if not backends:
        raise AudioDecoderError(f"No audio decoder is available to read {path}: {FFMPEG_INSTALL_HINT}")
    try:
        with audioread.audio_open(path, backends=backends) as audio:
            return audio.samplerate, audio.channels, audio.duration
    except audioread.NoBackendError as error:
        raise AudioDecoderError(f"None of the installed audio decoders can read {path}: "
                                f"{FFMPEG_INSTALL_HINT}") from error
    except (audioread.DecodeError, EOFError, OSError) as error:
        raise ValueError(f"Cannot decode audio file {path}: it is corrupt ({error}). Replace it "
                         "or remove it from the dataset") from error
