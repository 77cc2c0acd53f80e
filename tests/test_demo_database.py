"""Tests of DemoDatabase.py: layouts, audio format, sums, voice character, determinism, idempotence."""

import glob
import hashlib
import json
import os
import re

import numpy as np
import pytest
import soundfile
import yaml

from databases import DemoDatabase, DemoSongs

SAMPLE_RATE = 44100
TINY = dict(
    dsd_songs_per_split=1, medleydb_songs=2, ccmixter_songs=1, ikala_clips=2, song_seconds=4.0, ikala_clip_seconds=3.0
)
SINGER_LABELS = {"male singer", "female singer", "vocalists", "male rapper", "female rapper", "choir"}


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """The tiny demo database (seed 0), generated once for the module: (target_dir, roots)."""
    target = tmp_path_factory.mktemp("demo")
    return str(target), DemoDatabase.generate_demo_database(str(target), seed=0, **TINY)


def read(path):
    """Audio of ``path`` as float64 [samples, channels]."""
    audio, sample_rate = soundfile.read(path, always_2d=True)
    assert sample_rate == SAMPLE_RATE
    return audio


def all_files(target):
    """Relative path -> absolute path of every file under ``target`` (hidden files included)."""
    paths = [os.path.join(folder, name) for folder, _, names in os.walk(target) for name in names]
    return {os.path.relpath(p, target): p for p in paths}


def only(pattern):
    matches = sorted(glob.glob(pattern))
    assert len(matches) == 1, f"expected one match for {pattern}, got {matches}"
    return matches[0]


def medleydb_songs(root):
    """(folder, parsed metadata) of every MedleyDB song, in name order."""
    folders = sorted(glob.glob(os.path.join(root, "Audio", "*")))
    songs = []
    for folder in folders:
        name = os.path.basename(folder)
        with open(os.path.join(folder, f"{name}_METADATA.yaml"), encoding="utf-8") as handle:
            songs.append((folder, yaml.safe_load(handle)))
    return songs


def frame_rms(mono, frame=2205):
    """RMS per non-overlapping frame (50 ms at 44.1 kHz)."""
    frames = mono[: len(mono) // frame * frame].reshape(-1, frame)
    return np.sqrt(np.mean(frames**2, axis=1))


def autocorrelation_f0(frame, sample_rate=SAMPLE_RATE, fmin=60.0, fmax=1200.0):
    """(f0 in Hz, normalised periodicity in [0, 1]) of one frame by autocorrelation."""
    frame = frame - frame.mean()
    spectrum = np.fft.rfft(frame, 2 * len(frame))
    correlation = np.fft.irfft(np.abs(spectrum) ** 2)[: len(frame)]
    low, high = int(sample_rate / fmax), int(sample_rate / fmin)
    lag = low + int(np.argmax(correlation[low:high]))
    return sample_rate / lag, correlation[lag] / correlation[0]


def voiced_frame_f0s(mono, frame=2048):
    """(f0, periodicity) of the loudest-third frames of ``mono``."""
    frames = mono[: len(mono) // frame * frame].reshape(-1, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return [autocorrelation_f0(f) for f in frames[rms > 0.3 * rms.max()]]


def test_returns_absolute_roots_named_after_the_databases(database):
    target, roots = database
    assert set(roots) == {"DSD100", "MedleyDB", "CCMixter", "iKala"}
    for name, root in roots.items():
        assert os.path.isabs(root) and root == os.path.join(target, name) and os.path.isdir(root)


def test_dsd100_layout(database):
    root = database[1]["DSD100"]
    for split in ("Dev", "Test"):
        names = os.listdir(os.path.join(root, "Mixtures", split))
        assert len(names) == 1 and re.fullmatch(r"\d{3} - [^-]+ - [^-]+", names[0]), names
        assert os.listdir(os.path.join(root, "Sources", split)) == names
        assert os.path.isfile(os.path.join(root, "Mixtures", split, names[0], "mixture.wav"))
        stems = sorted(os.listdir(os.path.join(root, "Sources", split, names[0])))
        assert stems == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def test_medleydb_layout(database):
    root = database[1]["MedleyDB"]
    songs = medleydb_songs(root)
    assert len(songs) == 2
    for folder, _ in songs:
        name = os.path.basename(folder)
        assert re.fullmatch(r"[A-Za-z0-9]+_[A-Za-z0-9]+", name)
        assert os.path.isfile(os.path.join(folder, f"{name}_MIX.wav"))
        stems = sorted(os.listdir(os.path.join(folder, f"{name}_STEMS")))
        assert stems == [f"{name}_STEM_{i:02d}.wav" for i in range(1, len(stems) + 1)] and len(stems) >= 4


def test_ccmixter_and_ikala_layout(database):
    roots = database[1]
    song = only(os.path.join(roots["CCMixter"], "*_-_*"))
    assert sorted(os.listdir(song)) == ["mix.wav", "source-01.wav", "source-02.wav"]
    assert sorted(os.listdir(os.path.join(roots["iKala"], "Wavfile"))) == ["10161_chorus.wav", "10164_verse.wav"]


def test_every_file_is_44k_stereo_float_or_16_bit(database):
    files = [p for p in all_files(database[0]).values() if p.endswith(".wav")]
    assert len(files) == 2 * 5 + 3 + 2 + 2 * 1 + sum(
        len(os.listdir(os.path.join(folder, os.path.basename(folder) + "_STEMS")))
        for folder, _ in medleydb_songs(database[1]["MedleyDB"])
    )
    for path in files:
        info = soundfile.info(path)
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 2), path
        assert info.subtype == ("PCM_16" if "iKala" in path else "FLOAT"), path
        assert 3.0 <= info.duration <= 5.0 or "iKala" in path


def test_dsd100_mixture_is_sum_of_stems_within_float32_rounding(database):
    for mixture_path in glob.glob(os.path.join(database[1]["DSD100"], "Mixtures", "*", "*", "mixture.wav")):
        sources = os.path.dirname(mixture_path).replace(os.sep + "Mixtures" + os.sep, os.sep + "Sources" + os.sep)
        mixture = read(mixture_path)
        stems = [read(os.path.join(sources, f"{s}.wav")) for s in ("bass", "drums", "other", "vocals")]
        np.testing.assert_allclose(mixture, sum(stems), atol=1e-6)
        assert 0.3 < np.abs(mixture).max() <= 1.0
        assert np.abs(stems[3]).max() > 0.05  # the vocals are not silent


def test_medleydb_mix_and_ccmixter_mix_are_sums_of_stems(database):
    for folder, metadata in medleydb_songs(database[1]["MedleyDB"]):
        stem_dir = os.path.join(folder, metadata["stem_dir"])
        stems = [read(os.path.join(stem_dir, stem["filename"])) for stem in metadata["stems"].values()]
        mix = read(os.path.join(folder, metadata["mix_filename"]))
        np.testing.assert_allclose(mix, sum(stems), atol=1e-6)
        assert np.abs(mix).max() <= 1.0
    song = only(os.path.join(database[1]["CCMixter"], "*"))
    mix = read(os.path.join(song, "mix.wav"))
    np.testing.assert_allclose(
        mix, read(os.path.join(song, "source-01.wav")) + read(os.path.join(song, "source-02.wav")), atol=1e-6
    )


def test_medleydb_metadata_lists_every_stem_and_marks_the_instrumental_song(database):
    songs = medleydb_songs(database[1]["MedleyDB"])
    for folder, metadata in songs:
        name = os.path.basename(folder)
        assert {"artist", "title", "mix_filename", "stem_dir", "has_bleed", "instrumental", "stems"} <= set(metadata)
        assert metadata["mix_filename"] == f"{name}_MIX.wav" and metadata["stem_dir"] == f"{name}_STEMS"
        listed = sorted(stem["filename"] for stem in metadata["stems"].values())
        assert listed == sorted(os.listdir(os.path.join(folder, metadata["stem_dir"])))
        assert list(metadata["stems"]) == [f"S{i:02d}" for i in range(1, len(listed) + 1)]
        assert all({"component", "filename", "instrument"} <= set(s) for s in metadata["stems"].values())
    instruments = [{s["instrument"] for s in metadata["stems"].values()} for _, metadata in songs]
    # The first song sings (with backing vocals), the last one is instrumental.
    assert songs[0][1]["instrumental"] is False and {"vocalists"} < instruments[0] & SINGER_LABELS
    assert songs[-1][1]["instrumental"] is True and not instruments[-1] & SINGER_LABELS
    assert {"electric bass", "drum set"} <= instruments[-1]


def test_vocals_are_sung_in_a_singing_range_with_pauses(database):
    for path in glob.glob(os.path.join(database[1]["DSD100"], "Sources", "*", "*", "vocals.wav")):
        vocals = read(path).mean(axis=1)
        estimates = voiced_frame_f0s(vocals)
        assert len(estimates) >= 5
        f0s = np.array([f0 for f0, periodicity in estimates if periodicity > 0.5])
        assert len(f0s) >= 0.6 * len(estimates), "the voiced frames should be periodic (harmonic)"
        assert 80.0 <= np.median(f0s) <= 1000.0
        rms = frame_rms(vocals)
        quiet = rms < 1e-3 * rms.max()
        longest_pause = max(len(run) for run in "".join("1" if q else "0" for q in quiet).split("0"))
        assert longest_pause * 0.05 >= 0.3, "expected a rest of at least 0.3 s in the voice"


def test_ikala_has_accompaniment_left_and_voice_right(database):
    for path in glob.glob(os.path.join(database[1]["iKala"], "Wavfile", "*.wav")):
        audio = read(path)
        accompaniment, voice = audio[:, 0], audio[:, 1]
        assert not np.allclose(accompaniment, voice)
        assert abs(np.corrcoef(accompaniment, voice)[0, 1]) < 0.5
        estimates = voiced_frame_f0s(voice)
        f0s = [f0 for f0, periodicity in estimates if periodicity > 0.5]
        assert len(f0s) >= 0.6 * len(estimates) and 80.0 <= np.median(f0s) <= 1000.0
        # The voice rests (near silence) while the accompaniment keeps playing.
        voice_rms, accompaniment_rms = frame_rms(voice), frame_rms(accompaniment)
        resting = voice_rms < 1e-3 * voice_rms.max()
        assert resting.any() and np.median(accompaniment_rms[resting]) > 1e-2 * accompaniment_rms.max()


def test_same_seed_gives_identical_files_and_another_seed_differs(database, tmp_path):
    target, _ = database
    again = DemoDatabase.generate_demo_database(str(tmp_path / "same"), seed=0, **TINY)
    original, repeated = all_files(target), all_files(os.path.dirname(again["DSD100"]))
    assert sorted(original) == sorted(repeated)
    for relative in original:
        if relative.endswith(".wav"):
            # Float WAVs carry a PEAK chunk with a write timestamp (libsndfile), so compare
            # the stored samples bit for bit rather than the file bytes.
            first, second = (soundfile.read(p, dtype="float32")[0] for p in (original[relative], repeated[relative]))
            assert np.array_equal(first, second), relative
        else:
            with open(original[relative], "rb") as a, open(repeated[relative], "rb") as b:
                assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest(), relative

    other = DemoDatabase.generate_demo_database(str(tmp_path / "other"), seed=1, **dict(TINY, medleydb_songs=1))
    first = read(only(os.path.join(database[1]["iKala"], "Wavfile", "10161_*.wav")))
    second = read(only(os.path.join(other["iKala"], "Wavfile", "10161_*.wav")))
    assert first.shape != second.shape or not np.allclose(first, second)


def test_second_call_with_same_parameters_rewrites_nothing(database):
    target, roots = database
    before = {p: os.stat(p).st_mtime_ns for p in all_files(target).values()}
    assert DemoDatabase.generate_demo_database(target, seed=0, **TINY) == roots
    assert {p: os.stat(p).st_mtime_ns for p in all_files(target).values()} == before
    with open(os.path.join(target, DemoDatabase.MARKER_NAME), encoding="utf-8") as handle:
        marker = json.load(handle)
    assert marker["complete"] is True and marker["format_version"] == DemoDatabase.FORMAT_VERSION
    assert marker["parameters"]["seed"] == 0 and marker["parameters"]["ccmixter_songs"] == 1


def test_changed_parameters_regenerate_without_stale_songs(tmp_path):
    small = dict(TINY, song_seconds=3.0, ikala_clip_seconds=3.0, medleydb_songs=1)
    roots = DemoDatabase.generate_demo_database(str(tmp_path), seed=3, **dict(small, ccmixter_songs=2))
    assert len(os.listdir(roots["CCMixter"])) == 2
    DemoDatabase.generate_demo_database(str(tmp_path), seed=3, **small)
    assert len(os.listdir(roots["CCMixter"])) == 1


def test_interrupted_generation_is_redone(tmp_path, monkeypatch):
    small = dict(TINY, song_seconds=3.0, ikala_clip_seconds=3.0, medleydb_songs=1)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(DemoDatabase, "write_ikala_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        DemoDatabase.generate_demo_database(str(tmp_path), seed=0, **small)
    with open(tmp_path / DemoDatabase.MARKER_NAME, encoding="utf-8") as handle:
        assert json.load(handle)["complete"] is False
    monkeypatch.undo()
    roots = DemoDatabase.generate_demo_database(str(tmp_path), seed=0, **small)
    assert len(os.listdir(os.path.join(roots["iKala"], "Wavfile"))) == 2
    assert not [p for p in all_files(str(tmp_path)) if p.endswith(".tmp")]


def test_refuses_to_overwrite_folders_it_did_not_make(tmp_path):
    (tmp_path / "DSD100").mkdir()
    (tmp_path / "DSD100" / "real_song.wav").write_bytes(b"")
    with pytest.raises(FileExistsError, match="DSD100"):
        DemoDatabase.generate_demo_database(str(tmp_path), seed=0, **TINY)
    assert (tmp_path / "DSD100" / "real_song.wav").exists()


@pytest.mark.parametrize(
    "setting, value",
    [("seed", -1), ("ccmixter_songs", 0), ("song_seconds", 2.5), ("sample_rate", 8000), ("ikala_clips", 1.5)],
)
def test_invalid_settings_are_named(tmp_path, setting, value):
    kwargs = dict(TINY, seed=0)
    kwargs[setting] = value
    with pytest.raises(ValueError, match=setting):
        DemoDatabase.generate_demo_database(str(tmp_path), **kwargs)
    assert not os.listdir(tmp_path)


def test_command_line_prints_the_roots(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_generate(target_dir, seed=0, **kwargs):
        calls.append((target_dir, seed))
        return {name: os.path.join(os.path.abspath(target_dir), name) for name in DemoDatabase.DATABASE_NAMES}

    monkeypatch.setattr(DemoDatabase, "generate_demo_database", fake_generate)
    assert DemoDatabase.main([str(tmp_path), "--seed", "7"]) == 0
    assert calls == [(str(tmp_path), 7)]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{name}: {tmp_path / name}" for name in DemoDatabase.DATABASE_NAMES]


def test_the_paired_database_and_the_unpaired_ones_come_from_different_families():
    # The paper's setting: what the paired songs teach is not all the other databases hold.
    paired = DemoSongs.FAMILIES["DSD100"]
    assert paired.lead is None and paired.arpeggio_probability == 0.0 and set(paired.singers) == {"male singer"}
    for name in ("MedleyDB", "CCMixter", "iKala"):
        family = DemoSongs.FAMILIES[name]
        assert family.lead is not None and family.lead_probability > 0
        assert set(family.chords) - set(paired.chords) or family.arpeggio_probability > 0
        lowest_centre = min(low for low, _ in family.singers.values())
        assert lowest_centre > max(high for high, _ in paired.singers.values())  # higher registers


def test_paired_singers_sing_lower_than_the_medleydb_singers(database):
    def median_f0(voice):
        f0s = [f0 for f0, periodicity in voiced_frame_f0s(voice) if periodicity > 0.5]
        return np.median(f0s)

    dsd = [
        median_f0(read(path).mean(axis=1))
        for path in glob.glob(os.path.join(database[1]["DSD100"], "Sources", "*", "*", "vocals.wav"))
    ]
    medleydb_voices = []
    for folder, metadata in medleydb_songs(database[1]["MedleyDB"]):
        stems = [s for s in metadata["stems"].values() if s["instrument"] in SINGER_LABELS - {"vocalists"}]
        medleydb_voices += [read(os.path.join(folder, metadata["stem_dir"], s["filename"])).mean(axis=1) for s in stems]
    assert dsd and medleydb_voices
    assert max(dsd) < 210.0 < min(median_f0(voice) for voice in medleydb_voices)
