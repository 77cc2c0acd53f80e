"""DatasetLayouts.py: discovery of the public folder layouts, and errors for folders that do not match."""

import os

import pytest

from databases import DatasetLayouts, Sources
from Datasets import DatasetConfigError

from conftest import write_wav
from fake_databases import MAKERS, SR, build, make_dsd100, make_medleydb, noise


def test_discover_dsd100_in_sorted_order_with_splits(tmp_path):
    description = DatasetLayouts.discover_database("DSD100", make_dsd100(tmp_path / "DSD100"))
    assert [(track.artist, track.title, track.split) for track in description.tracks] == [
        ("Alpha", "First", "Training"),
        ("Beta", "Second", "Training"),
        ("Gamma", "Third", "Test"),
        ("Delta", "Fourth", "Test"),
    ]
    first = description.tracks[0]
    assert [(item.name, item.relative_path) for item in first.instruments] == [
        ("Mix", "Mixtures/Dev/001 - Alpha - First/mixture.wav"),
        ("Voice", "Sources/Dev/001 - Alpha - First/vocals.wav"),
        ("Bass", "Sources/Dev/001 - Alpha - First/bass.wav"),
        ("Drums", "Sources/Dev/001 - Alpha - First/drums.wav"),
        ("Other", "Sources/Dev/001 - Alpha - First/other.wav"),
    ]
    assert {(item.sample_rate, item.channels, item.length, item.audio_format) for item in first.instruments} == {
        (SR, 2, 1.0, "wav")
    }


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "MUSDB18HQ",
            [
                ("A - One", "Training", ["Mix", "Voice", "Bass", "Drums", "Other"]),
                ("B - Two", "Training", ["Mix", "Voice", "Bass", "Drums", "Other"]),
                ("C - Three", "Test", ["Mix", "Voice", "Bass", "Drums", "Other"]),
            ],
        ),
        (
            "MedleyDB",
            [
                ("Artist1 - Sing", None, ["Mix", "Voice", "Bass", "Voice"]),
                ("Artist2 - Instrumental", None, ["Mix", "Drums", "Piano"]),
                ("Artist3 - Choir", None, ["Mix", "Voice", "Guitar"]),
            ],
        ),
        (
            "CCMixter",
            [
                ("Abe - First Song", None, ["Mix", "Instrumental", "Voice"]),
                ("Max - Middle", None, ["Mix", "Instrumental", "Voice"]),
                ("Zed - Last Song", None, ["Mix", "Instrumental", "Voice"]),
            ],
        ),
        ("iKala", [("10161_verse", None, ["Mix"]), ("10170_verse", None, ["Mix"]), ("10171_chorus", None, ["Mix"])]),
    ],
)
def test_discover_other_layouts(tmp_path, name, expected):
    description = DatasetLayouts.discover_database(name, MAKERS[name](tmp_path / name))
    assert description.name == name and description.folder == str(tmp_path / name)
    assert [
        (track.song_name, track.split, [item.name for item in track.instruments]) for track in description.tracks
    ] == expected
    assert all(
        item.channels == 2 and item.sample_rate == SR for track in description.tracks for item in track.instruments
    )


def test_medleydb_stem_paths_and_multiple_voices(tmp_path):
    description = DatasetLayouts.discover_database("MedleyDB", make_medleydb(tmp_path / "MedleyDB"))
    choir = description.tracks[2]
    assert choir.instruments[1].relative_path == "Audio/Artist3_Choir/Artist3_Choir_STEMS/Artist3_Choir_STEM_01.wav"
    assert choir.instruments[1].multiple_voices and not choir.instruments[2].multiple_voices
    assert Sources.read_medleydb_labels().vocal >= {"male singer", "female singer", "vocalists", "choir"}


def test_corrupt_audio_file_is_named_during_discovery(setup):
    broken = os.path.join(setup["roots"]["iKala"], "Wavfile", "10170_verse.wav")
    with open(broken, "wb") as handle:
        handle.write(b"RIFF garbage")
    with pytest.raises(ValueError, match="10170_verse.wav"):
        build(setup)


def test_ikala_clip_must_be_stereo(tmp_path):
    write_wav(tmp_path / "iKala" / "Wavfile" / "1.wav", noise("mono", channels=1), SR)
    with pytest.raises(DatasetConfigError, match=r"1\.wav has 1 channel"):
        DatasetLayouts.discover_database("iKala", str(tmp_path / "iKala"))


def test_root_without_the_expected_layout(setup, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetConfigError, match="Found no CCMixter songs.*mix,source-01,source-02"):
        build(setup, dataset_roots=dict(setup["roots"], CCMixter=str(tmp_path / "empty")))


def test_medleydb_speakers_are_accompaniment_and_singers_are_voice(tmp_path):
    songs = {"Poet_Reading": ["male speaker", "female singer", "piano", "female speaker"]}
    description = DatasetLayouts.discover_database("MedleyDB", make_medleydb(tmp_path / "MedleyDB", songs=songs))
    names = [instrument.name for instrument in description.tracks[0].instruments[1:]]
    assert names == ["Other", "Voice", "Piano", "Other"]
