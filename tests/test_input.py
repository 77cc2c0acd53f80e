"""Input.py: reading audio (sections, resampling, decoders, non-finite samples) and spectrogram helpers."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile

import Input

from conftest import ROOT, sine, write_wav
from songs import SR, chirp, song_with_a_bad_voice_sample


def test_resampling_keeps_a_sines_frequency(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(1000.0, 2.0, 44100, channels=2), 44100)
    audio = Input.read_audio(path, SR)
    assert audio.dtype == np.float32 and audio.shape == (2 * SR,)
    spectrum = np.abs(Input.stft(audio, 512, 256)).mean(axis=1)
    assert abs(np.argmax(spectrum) * SR / 512 - 1000.0) <= SR / 512
    assert 0.25 < np.abs(audio).max() < 0.35  # amplitude kept (0.3), stereo averaged


def test_read_audio_clips_and_pads_sections(tmp_path):
    loud = np.full(SR, 1.5, np.float32)
    path = write_wav(tmp_path / "loud.wav", loud, SR)
    audio = Input.read_audio(path, SR, offset=-0.25, duration=1.0, padding_duration=0.25)
    assert audio.shape == (int(1.5 * SR),)
    assert np.all(audio[: SR // 2] == 0.0)  # before the file's start
    assert np.all(audio[SR // 2 : SR] == 1.0)  # clipped
    assert np.all(audio[3 * SR // 2 - 1 :] <= 1.0)


def test_random_section_reports_its_centre(tmp_path):
    audio = chirp(3.0, 22050)
    path = write_wav(tmp_path / "c.wav", audio, 22050)
    rng = np.random.default_rng(3)
    section, offset = Input.read_random_section(path, SR, True, duration=1.0, padding_duration=0.5, rng=rng)
    assert section.shape == (2 * SR,) and 0.0 <= offset <= 2.0
    centre = Input.read_audio(path, SR, offset=offset, duration=1.0)
    np.testing.assert_allclose(section[SR // 2 : SR // 2 + SR], centre, atol=1e-5)


def test_section_reads_match_the_whole_file(tmp_path):
    """Seeking + resampling a section gives the samples of a whole-file read."""
    noise = (np.random.default_rng(0).standard_normal(3 * 44100) * 0.1).astype(np.float32)
    path = write_wav(tmp_path / "n.wav", noise, 44100)
    whole = Input.read_audio(path, SR)
    section = Input.read_audio(path, SR, offset=1.2, duration=0.5)
    start = int(round(1.2 * SR))
    np.testing.assert_allclose(section, whole[start : start + len(section)], atol=1e-5)


def test_audioread_reader_matches_soundfile(tmp_path):
    audio = sine(440.0, 0.5, SR, channels=2)
    path = write_wav(tmp_path / "pcm.wav", audio, SR, subtype="PCM_16")
    with soundfile.SoundFile(path) as handle:
        expected = Input._SoundFileReader(path, handle).read(-10, 1000)
    try:
        decoded = Input._AudioreadReader(path).read(-10, 1000)
    except Input.UnreadableAudioError as error:
        pytest.skip(f"no audioread backend for WAV here: {error}")
    assert decoded.shape == expected.shape == (1000, 2)
    np.testing.assert_allclose(decoded, expected, atol=1e-4)


def test_unreadable_file_error_names_the_path(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"not audio at all")
    with pytest.raises(Input.UnreadableAudioError, match="broken.wav"):
        Input.read_audio(str(path), SR)
    with pytest.raises(Input.UnreadableAudioError, match="does not exist"):
        Input.read_audio(str(tmp_path / "missing.wav"), SR)


@pytest.mark.parametrize("value, sample_rate", [(np.nan, SR), (np.inf, SR), (-np.inf, 44100)])
def test_non_finite_samples_are_refused_naming_the_file_and_the_time(tmp_path, value, sample_rate):
    voice = song_with_a_bad_voice_sample(tmp_path, "bad", value, sample_rate)[2].path
    for read in (
        lambda: Input.read_audio(voice, SR),
        lambda: Input.read_audio(voice, SR, offset=0.2, duration=0.1),
        lambda: Input.check_file_finite(voice, block_seconds=0.1),
    ):
        with pytest.raises(Input.NonFiniteAudioError, match=rf"bad_voice\.wav.*\(at 0\.250 s\) is {value}"):
            read()
    assert np.isfinite(Input.read_audio(voice, SR, offset=0.6, duration=0.3)).all()  # other spans read fine


def test_stft_matches_librosa_and_round_trips_to_exact_length():
    import librosa

    audio = (np.random.default_rng(1).standard_normal(5001) * 0.2).astype(np.float32)
    spectrogram = Input.stft(audio, 512, 256)
    assert spectrogram.shape == (257, 1 + 5001 // 256)
    np.testing.assert_allclose(spectrogram, librosa.stft(audio, n_fft=512, hop_length=256), atol=1e-4)
    restored = Input.istft(np.abs(spectrogram), np.angle(spectrogram), 256, length=5001)
    assert restored.shape == (5001,) and restored.dtype == np.float32
    np.testing.assert_allclose(restored, audio, atol=1e-4)
    # Unit phasors are the same phase: 1 where the spectrogram is 0, as np.angle gives 0 there.
    spectrogram[:, :3] = 0.0
    phasors = Input.unit_phasors(spectrogram)
    assert phasors.dtype == np.complex64 and np.all(phasors[:, :3] == 1)
    np.testing.assert_allclose(np.abs(phasors), 1.0, rtol=1e-6)
    magnitude = np.abs(spectrogram) * 0.5
    np.testing.assert_allclose(
        Input.istft(magnitude, phasors, 256, 5001), Input.istft(magnitude, np.angle(spectrogram), 256, 5001), atol=1e-6
    )


def test_whole_song_spectrogram_shapes(tmp_path):
    # How Evaluate separates a song: read it whole at the model's rate, STFT, istft with its phase.
    path = write_wav(tmp_path / "s.wav", chirp(1.3, 16000), 16000)
    audio = Input.read_audio(path, SR, mono_downmix=True)
    spectrogram = Input.stft(audio, 512, 256)
    magnitude, phase = np.abs(spectrogram), np.angle(spectrogram)
    assert audio.shape == (int(round(1.3 * SR)),)
    assert magnitude.shape == phase.shape == (257, 1 + len(audio) // 256)
    np.testing.assert_allclose(Input.istft(magnitude, phase, 256, len(audio)), audio, atol=1e-4)


def test_pad_and_unpad_freqs():
    magnitude = np.random.default_rng(2).random((2, 257, 10, 1)).astype(np.float32)
    padded = Input.pad_freqs(magnitude, 350)
    assert padded.shape == (2, 350, 10, 1)
    assert not padded[:, :46].any() and not padded[:, 46 + 257 :].any()  # 46 before, 47 after
    np.testing.assert_array_equal(Input.unpad_freqs(padded, 257), magnitude)
    assert Input.pad_freqs(magnitude[0, :, :, 0], 258).shape == (258, 10)
    assert Input.pad_freqs(magnitude[0, :, :, 0], 258)[-1].sum() == 0  # odd row at the end
    with pytest.raises(ValueError, match="smaller height"):
        Input.pad_freqs(magnitude, 200)


def test_input_is_numpy_only():
    # Reader processes import Input: it must not pull in TensorFlow (the network's side of the
    # signal chain, normalisation and cropping, is Models/Inference.py).
    code = "import sys, Input; assert 'tensorflow' not in sys.modules and 'librosa' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_a_file_the_installed_ffmpeg_cannot_decode_is_described_not_install_ffmpeg(tmp_path):
    corrupt = tmp_path / "song.m4a"
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    text = tmp_path / "notes.mp3"
    text.write_text("these are notes, not audio\n")
    with pytest.raises(Input.UnreadableAudioError, match=r"song\.m4a: ffmpeg cannot decode it, the file is corrupt"):
        Input.read_audio(str(corrupt), SR)
    with pytest.raises(Input.UnreadableAudioError, match=r"notes\.mp3: it is a text file, not audio$"):
        Input.read_audio(str(text), SR)
