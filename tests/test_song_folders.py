"""Paired songs without Python: MUSDB18-HQ folders with only mixture and vocals, and the generic
SongFolders database (two or three of mixture / vocals / accompaniment per song folder)."""

import os

import numpy as np
import pytest
import soundfile

import Datasets
from databases.DatasetLayouts import discover_database
from databases.DatasetXML import DatasetConfigError

from conftest import write_wav
from fake_databases import SR, build, files_under, noise, read


def make_mixture_and_vocals(root, songs):
    """``<root>/<folder>/<song>/{mixture,vocals}.wav`` for ``songs`` = [(folder, song)]; returns
    song -> (mixture, vocals) arrays."""
    audio = {}
    for folder, song in songs:
        vocals, rest = noise(song + "vocals"), noise(song + "rest")
        write_wav(root / folder / song / "vocals.wav", vocals, SR)
        write_wav(root / folder / song / "mixture.wav", vocals + rest, SR)
        audio[song] = (vocals + rest, vocals)
    return audio


def test_musdb18hq_with_only_mixture_and_vocals(setup, tmp_path):
    root = tmp_path / "MUSDB18HQ"
    audio = make_mixture_and_vocals(root, [("train", "A - One"), ("train", "B - Two"), ("test", "C - Three")])
    description = discover_database("MUSDB18HQ", str(root))
    assert [[item.name for item in track.instruments] for track in description.tracks] == [["Mix", "Voice"]] * 3
    dataset = build(
        setup,
        dataset_roots=dict(setup["roots"], MUSDB18HQ=str(root)),
        supervised_database="MUSDB18HQ",
        supervised_valid_songs=0,
    )
    assert [triple[0].song for triple in dataset["train_sup"]] == ["A - One", "B - Two"]
    mixture, accompaniment, voice = dataset["test"][0]
    assert mixture.song == "C - Three"
    np.testing.assert_allclose(read(accompaniment), audio["C - Three"][0] - audio["C - Three"][1], atol=1e-6)
    assert accompaniment.path.startswith(setup["cache"]) and voice.path.endswith("vocals.wav")


def test_a_musdb18hq_song_without_vocals_is_still_refused(tmp_path):
    root = tmp_path / "MUSDB18HQ"
    make_mixture_and_vocals(root, [("train", "A - One")])
    os.remove(root / "train" / "A - One" / "vocals.wav")
    with pytest.raises(FileNotFoundError, match="Expected file .*A - One/vocals.wav is missing"):
        discover_database("MUSDB18HQ", str(root))


def make_song_folders(root):
    """Four songs in every accepted combination of files; returns song -> (mixture, accompaniment,
    voice) as the dataset must give them (float32 [samples, 2])."""
    expected = {}
    layout = (
        ("train", "Ann - Mixture And Voice", {"mixture.wav": "m", "vocals.flac": "v"}),
        ("train", "Bob - All Three", {"Mix.wav": "m", "Voice.WAV": "v", "instrumental.wav": "a"}),
        ("test", "Cat - Accompaniment And Voice", {"accompaniment.wav": "a", "vocals.wav": "v"}),
        ("test", "Dan - Mixture And Accompaniment", {"mixture.wav": "m", "accompaniment.wav": "a"}),
    )
    for split, song, files in layout:
        voice, accompaniment = noise(song + "v"), noise(song + "a")
        signals = {"m": voice + accompaniment, "a": accompaniment, "v": voice}
        folder = root / split / ("nested" if song.startswith("Bob") else "") / song
        for name, role in files.items():
            write_wav(folder / name, signals[role], SR, subtype="PCM_24" if name.endswith(".flac") else "FLOAT")
        (folder / "cover.jpg").write_bytes(b"not audio")
        write_wav(folder / "bass.wav", noise(song + "bass"), SR)  # not one of the accepted names: ignored
        expected[song] = (signals["m"], signals["a"], signals["v"])
    return expected


def test_song_folders_as_the_paired_database(setup, tmp_path):
    root = tmp_path / "songs"
    expected = make_song_folders(root)
    before = files_under(root)
    dataset = build(
        setup,
        dataset_roots=dict(setup["roots"], SongFolders=str(root)),
        supervised_database="SongFolders",
        supervised_valid_songs=1,
    )
    assert [triple[0].song for triple in dataset["train_sup"]] == ["Ann - Mixture And Voice", "Bob - All Three"]
    assert [triple[0].song for triple in dataset["valid"][:1]] == ["Cat - Accompaniment And Voice"]
    assert dataset["test"][0][0].song == "Dan - Mixture And Accompaniment"
    songs = dataset["train_sup"] + dataset["valid"][:1] + dataset["test"][:1]
    for triple in songs:
        for sample, reference in zip(triple, expected[triple[0].song]):
            np.testing.assert_allclose(read(sample), reference, atol=1e-6)
    # Given files are used as they are, the missing one is derived into the cache.
    bob = dataset["train_sup"][1]
    assert [os.path.basename(sample.path) for sample in bob] == ["Mix.wav", "instrumental.wav", "Voice.WAV"]
    ann = dataset["train_sup"][0]
    assert ann[0].path.endswith("mixture.wav") and ann[1].path.startswith(os.path.join(setup["cache"], "SongFolders"))
    assert files_under(root) == before  # nothing is written into the songs' folders


def test_song_folders_without_splits_as_an_unsupervised_database(setup, tmp_path):
    root = tmp_path / "songs"
    for index in range(3):
        write_wav(root / f"Song {index}" / "mix.wav", noise(f"{index}m"), SR)
        write_wav(root / f"Song {index}" / "voice.wav", noise(f"{index}v"), SR)
    dataset = build(
        setup, dataset_roots=dict(setup["roots"], SongFolders=str(root)), unsupervised_databases=["SongFolders"]
    )
    assert [sample.song for sample in dataset["train_unsup"][0]] == ["Song 0"]
    assert [triple[0].song for triple in dataset["test"] if triple[0].database == "SongFolders"] == ["Song 2"]


def test_song_folders_with_splits_can_be_written_to_an_xml_from_the_command_line(tmp_path, capsys):
    root = tmp_path / "songs"
    make_song_folders(root)
    Datasets.main(["SongFolders", str(root), "--xml", str(tmp_path / "SongFolders.xml")])
    assert capsys.readouterr().out.startswith("SongFolders: 4 tracks (2 Training, 2 Test)")


@pytest.mark.parametrize(
    "files, message",
    [
        (["vocals.wav"], "Song folder .*Lonely holds only vocals.wav: a song folder needs two or three of"),
        (
            ["mixture.wav", "mixture.flac", "vocals.wav"],
            "Song folder .*Lonely holds 2 files for its Mix: mixture.flac, mixture.wav",
        ),
    ],
)
def test_song_folder_errors_name_the_folder(tmp_path, files, message):
    for name in files:
        path = tmp_path / "songs" / "train" / "Lonely" / name
        os.makedirs(path.parent, exist_ok=True)
        soundfile.write(str(path), noise(name), SR)
    with pytest.raises(DatasetConfigError, match=message):
        discover_database("SongFolders", str(tmp_path / "songs"))
