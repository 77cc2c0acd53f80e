"""Sample: metadata from soundfile and audioread, picklability, and bad audio files."""

import pickle

import audioread
import numpy as np
import pytest
import soundfile
from audioread import rawread

from Sample import AudioDecoderError, Sample

from conftest import sine, write_wav


def test_from_path_reads_wav_metadata(tmp_path):
    path = write_wav(tmp_path / "song.wav", sine(440, 1.5, 8000, channels=2), 8000)
    sample = Sample.from_path(path, database="DSD100", song="A - B")
    assert sample == Sample(path=path, sample_rate=8000, channels=2, duration=1.5, database="DSD100", song="A - B")


def test_from_path_reads_flac_and_makes_path_absolute(tmp_path, monkeypatch):
    soundfile.write(str(tmp_path / "clip.flac"), sine(220, 1.0, 11025), 11025, subtype="PCM_16")
    monkeypatch.chdir(tmp_path)
    sample = Sample.from_path("clip.flac")
    assert sample.path == str(tmp_path / "clip.flac")
    assert (sample.sample_rate, sample.channels, sample.duration) == (11025, 1, 1.0)


def test_sample_is_picklable_and_frozen(tmp_path):
    sample = Sample.from_path(write_wav(tmp_path / "a.wav", sine(440, 0.25, 8000), 8000), "demo", "song")
    assert pickle.loads(pickle.dumps(sample)) == sample
    with pytest.raises(AttributeError):
        sample.duration = 3.0


def test_other_formats_go_through_audioread(tmp_path):
    path = str(tmp_path / "clip.au")  # not a soundfile extension: read by audioread's raw backend
    soundfile.write(path, sine(440, 0.5, 8000, channels=2), 8000, format="AU", subtype="PCM_16")
    sample = Sample.from_path(path)
    assert (sample.sample_rate, sample.channels) == (8000, 2)
    assert sample.duration == pytest.approx(0.5, abs=1e-3)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        Sample.from_path(tmp_path / "nowhere.wav")


def test_empty_file_is_named(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.wav.*empty"):
        Sample.from_path(tmp_path / "empty.wav")


def test_corrupt_file_is_named(tmp_path):
    (tmp_path / "broken.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match=r"broken\.wav.*corrupt"):
        Sample.from_path(tmp_path / "broken.wav")


def test_file_without_frames_is_rejected(tmp_path):
    path = write_wav(tmp_path / "silent.wav", np.zeros((0, 2)), 8000)
    with pytest.raises(ValueError, match=r"silent\.wav.*no audio frames"):
        Sample.from_path(path)


def test_mp3_without_any_decoder_says_install_ffmpeg(tmp_path, monkeypatch):
    (tmp_path / "song.mp3").write_bytes(b"ID3" + bytes(500))
    monkeypatch.setattr(audioread, "available_backends", lambda *args, **kwargs: [])
    with pytest.raises(AudioDecoderError, match=r"song\.mp3.*apt-get install ffmpeg") as raised:
        Sample.from_path(tmp_path / "song.mp3")
    assert isinstance(raised.value, RuntimeError)


def test_mp3_that_no_installed_decoder_reads_says_install_ffmpeg(tmp_path, monkeypatch):
    (tmp_path / "song.mp3").write_bytes(b"ID3" + bytes(500))
    monkeypatch.setattr(audioread, "available_backends", lambda *args, **kwargs: [rawread.RawAudioFile])
    with pytest.raises(AudioDecoderError, match=r"song\.mp3.*install ffmpeg"):
        Sample.from_path(tmp_path / "song.mp3")


def test_a_file_the_installed_ffmpeg_cannot_decode_says_what_is_wrong_not_install_ffmpeg(tmp_path):
    # ffmpeg is installed (tests/test_setup.py checks it), so "install ffmpeg" would mislead.
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    corrupt = tmp_path / "track.stem.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(ValueError, match=r"passwd: it is a text file, not audio") as raised:
        Sample.from_path(text)
    assert "install ffmpeg" not in str(raised.value)
    with pytest.raises(
        ValueError,
        match=r"track\.stem\.mp4: ffmpeg cannot decode it, the file is corrupt or not "
        r"audio \(.*Invalid data found",
    ) as raised:
        Sample.from_path(corrupt)
    assert "install ffmpeg" not in str(raised.value)


def test_a_wav_shorter_than_its_header_promises_is_described_with_a_warning(tmp_path, caplog):
    full = write_wav(tmp_path / "full.wav", sine(440, 4.0, 8000), 8000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(open(full, "rb").read()[: 44 + 2 * int(8000 * 4 / 3)])
    sample = Sample.from_path(cut)
    assert round(sample.duration, 3) == 1.333
    assert f"Audio file {cut} is truncated: its header promises 4.000 s but it holds 1.333 s" in caplog.text
    caplog.clear()
    Sample.from_path(full)
    assert "truncated" not in caplog.text
