"""MUSDB18 (the .stem.mp4 release): discovery, the command line, decoding once into the cache, and
musdb's official validation split (``supervised_validation="musdb_valid"``, also for MUSDB18-HQ).

The tiny stem files are written with stempeg (ffmpeg's AAC encoder), 1 s each; some of their
names come from the installed musdb package's validation list, so the real list is exercised.
"""

import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import stempeg

import Datasets
from databases import DatasetLayouts, DatasetXML, DerivedAudio
from databases.DatasetXML import LabelledSong
from Datasets import DatasetConfigError
from Sample import Sample

from fake_databases import MUSDB18_SR, files_under, make_musdb18, make_musdb18hq, musdb18_stems, read, write_stem_file

OFFICIAL_VALID = DatasetLayouts.musdb_validation_tracks()
VALID = OFFICIAL_VALID[:2]
TRAIN = ("A - One",) + VALID
TEST = ("C - Three",)
STREAM = {name: index for index, name in enumerate(DatasetLayouts.MUSDB18_STREAMS)}
# ffmpeg's AAC encoder (default 128 kbit/s per stereo stream) codes the tonal test stems at
# about 29 dB SNR; a one-sample offset already drops that to about 15 dB and another stream
# (uncorrelated sines) to about 0 dB, so 20 dB checks stream choice and alignment.
AAC_MIN_SNR_DB = 20.0


@pytest.fixture(scope="module")
def musdb18_template(tmp_path_factory):
    return make_musdb18(tmp_path_factory.mktemp("musdb18") / "MUSDB18", train=TRAIN, test=TEST)


@pytest.fixture
def musdb18(tmp_path, musdb18_template):
    """A private copy of the tiny MUSDB18 folder, with cache and dataset.pkl paths."""
    root = str(tmp_path / "MUSDB18")
    shutil.copytree(musdb18_template, root)
    return {"root": root, "cache": str(tmp_path / "cache"), "pkl": str(tmp_path / "dataset.pkl")}


def build_musdb18(musdb18, **kwargs):
    arguments = dict(
        xml_paths={},
        dataset_roots={"MUSDB18": musdb18["root"]},
        cache_dir=musdb18["cache"],
        pkl_path=musdb18["pkl"],
        supervised_database="MUSDB18",
        unsupervised_databases=(),
        supervised_valid_songs=1,
    )
    arguments.update(kwargs)
    return Datasets.get_dataset(**arguments)


def load_songs(musdb18):
    database = Datasets.prepare_database("MUSDB18", None, musdb18["root"], musdb18["cache"])
    return {song.triple[0].song: song for song in DerivedAudio.load_database_songs(database, musdb18["cache"])}


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def song_names(triples):
    return [mixture.song for mixture, _, _ in triples]


def test_discovery_lists_stem_files_with_splits_names_and_stream_metadata(musdb18):
    description = DatasetLayouts.discover_database("MUSDB18", musdb18["root"])
    assert [(track.song_name, track.split) for track in description.tracks] == (
        [(name, "Training") for name in sorted(TRAIN)] + [(name, "Test") for name in TEST]
    )
    actions = description.tracks[1]
    assert (actions.artist, actions.title) == tuple(VALID[0].split(" - ", 1))
    assert [(item.name, item.relative_path, item.audio_format) for item in actions.instruments] == [
        ("Mix", f"train/{VALID[0]}.stem.mp4", "stem.mp4")
    ]
    assert {
        (item.sample_rate, item.channels, item.length) for track in description.tracks for item in track.instruments
    } == {(MUSDB18_SR, 2, 1.0)}


def test_command_line_writes_the_musdb18_xml(musdb18, tmp_path, capsys):
    xml_path = str(tmp_path / "MUSDB18.xml")
    Datasets.main(["MUSDB18", musdb18["root"], "--xml", xml_path])
    assert capsys.readouterr().out.strip().splitlines() == [
        f"MUSDB18: 4 tracks (3 Training, 1 Test), 0.00 hours, sample rates {MUSDB18_SR} Hz -> {xml_path}"
    ]
    assert DatasetXML.read_database_xml(xml_path) == DatasetLayouts.discover_database("MUSDB18", musdb18["root"])


def test_stem_file_with_too_few_streams_is_named(musdb18):
    path = write_stem_file(os.path.join(musdb18["root"], "test", "D - Four.stem.mp4"), musdb18_stems("D")[:4])
    with pytest.raises(DatasetConfigError, match=re.escape(path) + " has 4 audio stream"):
        DatasetLayouts.discover_database("MUSDB18", musdb18["root"])


def test_stems_are_decoded_once_into_the_cache_as_wav(musdb18, monkeypatch):
    songs = load_songs(musdb18)
    assert list(songs) == sorted(TRAIN) + list(TEST)
    for name, song in songs.items():
        mixture, accompaniment, voice = song.triple
        assert all(sample.path.startswith(musdb18["cache"]) and sample.path.endswith(".wav") for sample in song.triple)
        assert {(sample.sample_rate, sample.channels, sample.duration) for sample in song.triple} == {
            (MUSDB18_SR, 2, 1.0)
        }
        np.testing.assert_allclose(read(accompaniment) + read(voice), read(mixture), rtol=0, atol=1e-6)
        encoded = musdb18_stems(name)
        assert snr_db(encoded[STREAM["vocals"]], read(voice)) > AAC_MIN_SNR_DB
        assert snr_db(encoded[STREAM["mixture"]], read(mixture)) > AAC_MIN_SNR_DB
        # Off by one sample the match is much worse: the decoded streams are aligned.
        assert snr_db(encoded[STREAM["vocals"]][1:], read(voice)[:-1]) < AAC_MIN_SNR_DB
        # The accompaniment is the AAC mixture minus the AAC vocals, close to (not exactly) the other stems.
        assert snr_db(encoded[1:4].sum(axis=0), read(accompaniment)) > AAC_MIN_SNR_DB - 6
    written = files_under(musdb18["cache"])

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the stems should have been read from the cache")

    monkeypatch.setattr(stempeg, "read_stems", must_not_decode)
    assert load_songs(musdb18) == songs
    assert files_under(musdb18["cache"]) == written


def test_drums_bass_and_other_are_their_streams_decoded_only_when_asked_for(musdb18):
    before = files_under(musdb18["cache"])
    dataset = build_musdb18(musdb18, sources=("drums", "bass", "other", "voice"))
    for item in dataset["train_sup"] + dataset["valid"] + dataset["test"]:
        encoded = musdb18_stems(item[0].song)
        for stream, sample in zip(("drums", "bass", "other", "vocals"), item[1:]):
            assert snr_db(encoded[STREAM[stream]], read(sample)) > AAC_MIN_SNR_DB
    added = {os.path.basename(path).split("-")[0] for path, _ in files_under(musdb18["cache"])} - {
        os.path.basename(path).split("-")[0] for path, _ in before
    }
    assert {"drums", "bass", "other"} <= added
    # The default sources decode only the mixture and vocals streams.
    other_cache = dict(musdb18, cache=musdb18["cache"] + "-two", pkl=musdb18["pkl"] + "-two")
    build_musdb18(other_cache)
    names = {os.path.basename(path).split("-")[0] for path, _ in files_under(other_cache["cache"])}
    assert names - {"MUSDB18.xml"} == {"mixture", "accompaniment", "voice"}


def test_changed_stem_file_gives_new_cache_files_and_removes_stale_ones(musdb18):
    first = load_songs(musdb18)["C - Three"].triple
    path = os.path.join(musdb18["root"], "test", "C - Three.stem.mp4")
    status = os.stat(path)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 5_000_000_000))
    changed = load_songs(musdb18)["C - Three"].triple
    assert all(new.path != old.path and not os.path.exists(old.path) for new, old in zip(changed, first))
    assert len(os.listdir(os.path.dirname(changed[0].path))) == 3


def decoder_error(path, *args, **kwargs):
    raise Warning("An error occurs with ffprobe")


def short_decode(path, *args, **kwargs):
    return np.zeros((1, MUSDB18_SR // 2, 2), np.float32), MUSDB18_SR


@pytest.mark.parametrize(
    "damage, message",
    [
        ("garbage", "Cannot read the MUSDB18 stem file"),
        (decoder_error, "Cannot decode the mixture stream"),
        (short_decode, r"decodes to 0\.500 s but the file declares 1\.000 s"),
    ],
)
def test_stem_file_that_cannot_be_decoded_is_named(musdb18, monkeypatch, damage, message):
    Datasets.prepare_database("MUSDB18", None, musdb18["root"], musdb18["cache"])  # discovery reads the intact file
    path = os.path.join(musdb18["root"], "test", "C - Three.stem.mp4")
    if damage == "garbage":
        with open(path, "wb") as handle:
            handle.write(b"\0\0\0\x20ftypisom garbage")
    else:
        decode = stempeg.read_stems
        monkeypatch.setattr(
            stempeg,
            "read_stems",
            lambda filename, *args, **kwargs: (damage if filename == path else decode)(filename, *args, **kwargs),
        )
    with pytest.raises(ValueError, match=message) as raised:
        load_songs(musdb18)
    assert path in str(raised.value)


def test_musdb18_as_supervised_database(musdb18, monkeypatch):
    dataset = build_musdb18(musdb18)
    assert song_names(dataset["train_sup"]) == sorted(TRAIN)
    assert song_names(dataset["valid"]) == list(TEST) and dataset["test"] == []
    assert dataset["train_unsup"] == [[], [], []]
    assert {sample.database for triple in dataset["train_sup"] for sample in triple} == {"MUSDB18"}
    assert os.path.isfile(os.path.join(musdb18["cache"], "MUSDB18.xml"))
    monkeypatch.setattr(Datasets, "load_database_songs", lambda *args: pytest.fail("dataset.pkl was not used"))
    assert build_musdb18(musdb18) == dataset


@pytest.mark.parametrize("database", ["MUSDB18", "MUSDB18HQ"])
def test_musdb_valid_takes_musdbs_validation_tracks_out_of_train(musdb18, tmp_path, database):
    roots = {"MUSDB18": musdb18["root"]}
    if database == "MUSDB18HQ":
        roots = {"MUSDB18HQ": make_musdb18hq(tmp_path / "MUSDB18HQ", train=TRAIN, test=TEST)}
    dataset = build_musdb18(
        musdb18, dataset_roots=roots, supervised_database=database, supervised_validation="musdb_valid"
    )
    assert song_names(dataset["valid"]) == list(VALID)
    assert song_names(dataset["train_sup"]) == ["A - One"]
    assert song_names(dataset["test"]) == list(TEST)
    paper_rule = build_musdb18(musdb18, dataset_roots=roots, supervised_database=database)  # a new fingerprint
    assert song_names(paper_rule["valid"]) == list(TEST)


def fake_musdb_songs(training, test=()):
    def triple(name):
        return tuple(
            Sample(f"/fake/{name}/{role}.wav", 44100, 2, 200.0, "MUSDB18", name) for role in DerivedAudio.SOURCE_ORDER
        )

    return [LabelledSong(triple(name), "Training") for name in training] + [
        LabelledSong(triple(name), "Test") for name in test
    ]


def test_musdb_valid_uses_the_whole_official_list_and_logs_missing_tracks(caplog):
    assert len(OFFICIAL_VALID) == 14
    songs = fake_musdb_songs(["Other - Train Song"] + list(OFFICIAL_VALID), ["Test - One", "Test - Two"])
    dataset = Datasets.partition_dataset(
        {"MUSDB18": songs}, "MUSDB18", (), supervised_valid_songs=1, supervised_validation="musdb_valid"
    )
    assert song_names(dataset["valid"]) == list(OFFICIAL_VALID)
    assert song_names(dataset["train_sup"]) == ["Other - Train Song"]
    assert song_names(dataset["test"]) == ["Test - One", "Test - Two"]  # supervised_valid_songs is not used
    with caplog.at_level(logging.WARNING, logger="Datasets"):
        dataset = Datasets.partition_dataset(
            {"MUSDB18": songs[:-3]}, "MUSDB18", (), supervised_validation="musdb_valid"
        )
    assert len(dataset["valid"]) == 13
    assert any(
        "1 of musdb's 14 validation tracks" in record.getMessage() and OFFICIAL_VALID[-1] in record.getMessage()
        for record in caplog.records
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"supervised_validation": "musdb_valid"}, "needs supervised_database MUSDB18 or MUSDB18HQ, not 'DSD100'"),
        ({"supervised_validation": "official"}, "supervised_validation='official' is not supported"),
        ({"supervised_database": "MUSDB18", "supervised_validation": None}, "supervised_validation=None"),
    ],
)
def test_bad_supervised_validation(tmp_path, settings, message):
    with pytest.raises(DatasetConfigError, match=message):
        Datasets.get_dataset({}, {}, str(tmp_path / "cache"), str(tmp_path / "dataset.pkl"), **settings)


def test_musdb_valid_without_any_validation_track_names_the_expected_ones(musdb18, tmp_path):
    roots = {"MUSDB18HQ": make_musdb18hq(tmp_path / "MUSDB18HQ", train=("A - One",), test=TEST)}
    with pytest.raises(DatasetConfigError, match="none of musdb's 14 validation tracks") as raised:
        build_musdb18(
            musdb18, dataset_roots=roots, supervised_database="MUSDB18HQ", supervised_validation="musdb_valid"
        )
    assert all(name in str(raised.value) for name in OFFICIAL_VALID)
    assert "supervised_validation=test_songs" in str(raised.value)


def test_without_ffmpeg_the_project_imports_and_a_stem_file_says_what_to_install(musdb18):
    # stempeg refuses to be imported without ffmpeg; only MUSDB18 files may need it.
    path = os.path.join(musdb18["root"], "test", "C - Three.stem.mp4")
    script = f"import Datasets\nfrom databases import DatasetLayouts\nDatasetLayouts.stem_file_info({path!r})\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env=dict(os.environ, PATH=os.path.dirname(sys.executable)),
    )
    assert result.returncode != 0
    assert "AudioDecoderError: Reading MUSDB18 stem files needs ffmpeg and ffprobe" in result.stderr
    assert "apt-get install ffmpeg" in result.stderr
