"""DerivedAudio.py: accompaniments, stem sums and channel splits computed once into the cache, one
folder per set of source files (copies of a database never share one)."""

import glob
import logging
import os
import re
import shutil
import stat

import numpy as np
import pytest
import soundfile

import Datasets
import Input
from databases import DerivedAudio
from pipeline import AudioCache

from conftest import write_wav
from fake_databases import SR, build, files_under, noise, paired_triples, read


def test_derived_audio_adds_up_and_lives_in_the_cache(setup):
    dataset = build(setup)
    assert [len(dataset[key]) for key in ("train_sup", "valid", "test")] == [2, 4, 4]
    assert [len(samples) for samples in dataset["train_unsup"]] == [3, 3, 3]
    for mixture, accompaniment, voice in paired_triples(dataset):
        assert mixture.database and mixture.song == accompaniment.song == voice.song
        np.testing.assert_allclose(read(accompaniment) + read(voice), read(mixture), rtol=0, atol=1e-6)
    data_root = os.path.dirname(setup["roots"]["DSD100"])
    derived = [
        sample for triple in paired_triples(dataset) for sample in triple if not sample.path.startswith(data_root)
    ]
    assert derived and all(sample.path.startswith(setup["cache"]) for sample in derived)


def test_derived_audio_refuses_a_source_with_non_finite_samples(setup):
    mixture = os.path.join(setup["roots"]["DSD100"], "Mixtures", "Dev", "001 - Alpha - First", "mixture.wav")
    audio, rate = soundfile.read(mixture, dtype="float32")
    audio[rate // 2, 1] = np.nan
    soundfile.write(mixture, audio, rate, subtype="FLOAT")
    with pytest.raises(Input.NonFiniteAudioError, match=re.escape(mixture) + r".*\(at 0\.500 s\) is nan"):
        build(setup)


def test_each_database_derives_the_right_signals(setup):
    dataset = build(setup)
    by_song = {triple[0].song: triple for triple in paired_triples(dataset)}
    # DSD100: original mixture and vocals, accompaniment = mixture - vocals in the cache.
    mixture, accompaniment, voice = by_song["Alpha - First"]
    assert mixture.path.endswith("Mixtures/Dev/001 - Alpha - First/mixture.wav")
    assert voice.path.endswith("Sources/Dev/001 - Alpha - First/vocals.wav")
    assert accompaniment.path.startswith(setup["cache"]) and accompaniment.channels == 2
    # MedleyDB: voice = sum of singer stems; a song without singers has a silent voice.
    _, _, voice = by_song["Artist1 - Sing"]
    np.testing.assert_allclose(
        read(voice), noise("Artist1_Singfemale singer") + noise("Artist1_Singmale singer"), atol=1e-6
    )
    _, accompaniment, voice = by_song["Artist2 - Instrumental"]
    assert not read(voice).any() and read(accompaniment).any()
    # iKala: mono accompaniment = left, voice = right.
    mixture, accompaniment, voice = by_song["10161_verse"]
    stereo = noise("10161_verse")
    assert (mixture.channels, accompaniment.channels, voice.channels) == (1, 1, 1)
    np.testing.assert_array_equal(read(accompaniment)[:, 0], stereo[:, 0])
    np.testing.assert_array_equal(read(voice)[:, 0], stereo[:, 1])
    # CCMixter: the original files.
    assert [sample.path.rsplit("/", 1)[1] for sample in by_song["Abe - First Song"]] == [
        "mix.wav",
        "source-01.wav",
        "source-02.wav",
    ]


def test_stems_of_different_lengths_warn_and_use_the_common_length(setup, caplog):
    vocals = os.path.join(setup["roots"]["DSD100"], "Sources", "Dev", "001 - Alpha - First", "vocals.wav")
    write_wav(vocals, noise("short", seconds=0.75), SR)
    with caplog.at_level(logging.WARNING, logger="Datasets"):
        dataset = build(setup)
    warning = next(record.getMessage() for record in caplog.records if "different lengths" in record.getMessage())
    assert vocals in warning and "mixture.wav" in warning
    mixture, accompaniment, voice = next(triple for triple in dataset["train_sup"] if triple[0].song == "Alpha - First")
    assert mixture.duration == accompaniment.duration == voice.duration == 0.75
    assert mixture.path.startswith(setup["cache"])
    np.testing.assert_allclose(read(accompaniment) + read(voice), read(mixture), atol=1e-6)


def test_stems_of_different_sample_rates_are_resampled_to_the_mixture_rate(setup, caplog):
    vocals = os.path.join(setup["roots"]["DSD100"], "Sources", "Test", "003 - Gamma - Third", "vocals.wav")
    write_wav(vocals, noise("fast", sample_rate=11025), 11025)
    with caplog.at_level(logging.WARNING, logger="Datasets"):
        dataset = build(setup)
    assert any(
        "resampling to 8000 Hz" in record.getMessage() and vocals in record.getMessage() for record in caplog.records
    )
    triple = next(triple for triple in dataset["valid"] + dataset["test"] if triple[0].song == "Gamma - Third")
    assert {(sample.sample_rate, sample.duration) for sample in triple} == {(SR, 1.0)}
    np.testing.assert_allclose(read(triple[1]) + read(triple[2]), read(triple[0]), atol=1e-6)


def test_cached_audio_is_reused_until_an_input_changes(setup):
    database = Datasets.prepare_database("DSD100", setup["xmls"]["DSD100"], setup["roots"]["DSD100"], setup["cache"])
    first = DerivedAudio.load_database_songs(database, setup["cache"])[0].triple
    written = os.stat(first[1].path).st_mtime_ns
    again = DerivedAudio.load_database_songs(database, setup["cache"])[0].triple
    assert again == first and os.stat(again[1].path).st_mtime_ns == written
    status = os.stat(first[2].path)
    os.utime(first[2].path, ns=(status.st_atime_ns, status.st_mtime_ns + 5_000_000_000))
    changed = DerivedAudio.load_database_songs(database, setup["cache"])[0].triple
    assert changed[1].path != first[1].path
    assert not os.path.exists(first[1].path)  # the stale accompaniment is removed
    np.testing.assert_allclose(read(changed[1]) + read(changed[2]), read(changed[0]), atol=1e-6)


def test_read_only_dataset_folder_is_never_written(setup):
    data_root = os.path.dirname(setup["roots"]["DSD100"])
    before = files_under(data_root)
    modes = {}
    for path, _, names in os.walk(data_root):
        for entry in [path] + [os.path.join(path, name) for name in names]:
            modes[entry] = stat.S_IMODE(os.stat(entry).st_mode)
            os.chmod(entry, modes[entry] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        dataset = build(setup)
    finally:
        for entry, mode in modes.items():
            os.chmod(entry, mode)
    assert files_under(data_root) == before
    assert len(dataset["train_sup"]) == 2


@pytest.fixture
def second_copy(setup, tmp_path, template_data):
    """Another copy of the tiny databases, with its own XMLs and dataset.pkl but ``setup``'s cache;
    every file of the copy holds half the original's audio, so that its derived audio differs."""
    shutil.copytree(template_data, tmp_path / "copy")
    roots = {name: str(tmp_path / "copy" / name) for name in setup["roots"]}
    for path in glob.glob(str(tmp_path / "copy" / "**" / "*.wav"), recursive=True):
        audio, rate = soundfile.read(path, dtype="float32")
        write_wav(path, 0.5 * audio, rate)
    xmls = {name: str(tmp_path / "copy-xml" / os.path.basename(path)) for name, path in setup["xmls"].items()}
    os.makedirs(tmp_path / "copy-xml")
    for name, path in setup["xmls"].items():
        shutil.copy(path, xmls[name])
    return dict(setup, roots=roots, xmls=xmls, pkl=str(tmp_path / "copy.pkl"))


def test_two_copies_of_a_database_keep_their_own_derived_audio_in_one_cache(setup, second_copy, monkeypatch, caplog):
    first, second = build(setup), build(second_copy)
    samples = [sample for dataset in (first, second) for triple in paired_triples(dataset) for sample in triple]
    assert all(os.path.isfile(sample.path) for sample in samples)
    for original, copy in zip(paired_triples(first), paired_triples(second)):
        assert original[0].song == copy[0].song
        for original_sample, copied_sample in zip(original, copy):
            np.testing.assert_allclose(read(copied_sample), 0.5 * read(original_sample), atol=1e-6)
        np.testing.assert_allclose(read(copy[1]) + read(copy[2]), read(copy[0]), atol=1e-6)
    # The next run on the first copy finds its dataset.pkl and every file it lists.
    monkeypatch.setattr(Datasets, "load_database_songs", lambda *args: pytest.fail("dataset.pkl was rebuilt"))
    with caplog.at_level(logging.INFO):
        assert build(setup) == first and build(second_copy) == second
    assert not any("no longer exist" in record.getMessage() for record in caplog.records)
    # The model-rate copies of both datasets (keyed by their sources' paths) live side by side too.
    converted = [
        AudioCache.model_rate_dataset(dataset, setup["cache"], 4000, True, num_workers=0) for dataset in (first, second)
    ]
    for original, copy in zip(paired_triples(converted[0]), paired_triples(converted[1])):
        for original_sample, copied_sample in zip(original, copy):
            assert original_sample.path != copied_sample.path
            np.testing.assert_allclose(read(copied_sample), 0.5 * read(original_sample), atol=1e-5)


def test_one_database_reached_through_a_link_shares_its_derived_audio(setup, tmp_path):
    direct = DerivedAudio.load_database_songs(
        Datasets.prepare_database("DSD100", setup["xmls"]["DSD100"], setup["roots"]["DSD100"], setup["cache"]),
        setup["cache"],
    )
    os.symlink(setup["roots"]["DSD100"], tmp_path / "linked")
    linked = DerivedAudio.load_database_songs(
        Datasets.prepare_database("DSD100", str(tmp_path / "linked.xml"), str(tmp_path / "linked"), setup["cache"]),
        setup["cache"],
    )
    assert [song.triple[1].path for song in linked] == [song.triple[1].path for song in direct]
    assert all(os.path.isfile(sample.path) for song in direct + linked for sample in song.triple)
