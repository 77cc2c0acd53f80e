"""Unpaired data as plain folders (setting unpaired_folders, databases/PlainFolders.py): any
format, rate and channel count, nested folders, added to train_unsup unpaired; with or instead
of the databases' thirds; fingerprinted in dataset.pkl; the shared-song rule; clear errors."""

import logging
import os
import shutil
import sys

import pytest
import soundfile

import Datasets
from databases import DatasetDicts, DerivedAudio, PlainFolders
from databases.DatasetXML import DatasetConfigError
from experiment import TrainingData
from pipeline import AudioCache

from conftest import write_wav
from fake_databases import SR, build, docs_command, noise, run_training, table_rows


def write_audio(path, audio, sample_rate, **kwargs):
    """Write ``audio`` [samples, channels] in the format of ``path``'s extension."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    soundfile.write(str(path), audio, sample_rate, **kwargs)
    return str(path)


def make_folders(root):
    """Mixtures, accompaniments and voices in mixed formats, rates and channels, nested.

    Returns:
        dict list name -> (folder, {relative path: (sample rate, channels)}) of the audio files
        that must be found (the other files there are not audio or hidden).
    """
    layout = {
        "mixtures": {
            "song a.wav": (44100, 2),
            "live/2019/song b.flac": (22050, 1),
            "live/song c.ogg": (16000, 2),
            "Radio/song d.mp3": (44100, 2),
        },
        "accompaniment": {"karaoke one.flac": (48000, 2)},
        "voice": {"take 1.wav": (8000, 1), "Artist - Title/vocals.WAV": (11025, 2), "sub/take 2.aiff": (32000, 1)},
    }
    folders = {}
    for role, files in layout.items():
        folder = root / role
        for relative, (rate, channels) in files.items():
            extension = os.path.splitext(relative)[1].lower()
            options = {"format": "MP3"} if extension == ".mp3" else {}
            write_audio(folder / relative, noise(role + relative, 1.5, channels, rate), rate, **options)
        (folder / "notes.txt").write_text("not audio")
        write_wav(folder / ".hidden.wav", noise("hidden", 0.5, 1, SR), SR)
        write_wav(folder / ".git" / "ignored.wav", noise("git", 0.5, 1, SR), SR)
        folders[role] = (str(folder), files)
    return folders


def settings_of(folders):
    return {role: [folder] for role, (folder, _) in folders.items()}


def folder_samples(dataset, index):
    return [sample for sample in dataset["train_unsup"][index] if sample.database == PlainFolders.FOLDER_DATABASE]


def test_files_of_any_format_rate_and_channels_in_nested_folders_join_train_unsup(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    without = build(setup)
    dataset = build(setup, pkl_path=str(tmp_path / "with.pkl"), unpaired_folders=settings_of(folders))
    for index, role in enumerate(PlainFolders.UNPAIRED_LISTS):
        folder, files = folders[role]
        added = folder_samples(dataset, index)
        # The databases' thirds come first, unchanged; then every audio file, in sorted path order.
        assert dataset["train_unsup"][index][: len(without["train_unsup"][index])] == without["train_unsup"][index]
        assert len(dataset["train_unsup"][index]) == len(without["train_unsup"][index]) + len(files)
        assert [os.path.relpath(sample.path, folder) for sample in added] == sorted(files)
        for sample in added:
            rate, channels = files[os.path.relpath(sample.path, folder)]
            assert (sample.sample_rate, sample.channels) == (rate, channels)
            assert abs(sample.duration - 1.5) < 0.06  # MP3 frames round the length a little
    assert [sample.song for sample in folder_samples(dataset, 2)] == ["Artist - Title", "take 2", "take 1"]
    for key in ("train_sup", "valid", "test"):
        assert dataset[key] == without[key]
    table = DatasetDicts.dataset_table(dataset)
    assert any(line.split()[:3] == ["train_unsup/voice", "folders", "3"] for line in table.splitlines())
    # Training reads them like any other file: at the model's rate, mono.
    converted = AudioCache.model_rate_dataset(
        {"train_unsup": dataset["train_unsup"]}, setup["cache"], 8192, True, num_workers=0
    )
    for index in range(3):
        for sample in folder_samples(converted, index):
            assert (sample.sample_rate, sample.channels) == (8192, 1) and abs(sample.duration - 1.5) < 0.06


def test_folders_instead_of_the_databases_thirds(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    dataset = build(setup, unsupervised_databases=[], unpaired_folders=settings_of(folders))
    # The paired database alone gives train_sup, valid and test (DSD100: Dev / first Test song / rest).
    assert [triple[0].song for triple in dataset["train_sup"]] == ["Alpha - First", "Beta - Second"]
    assert [triple[0].song for triple in dataset["valid"]] == ["Gamma - Third"]
    assert [triple[0].song for triple in dataset["test"]] == ["Delta - Fourth"]
    assert [len(samples) for samples in dataset["train_unsup"]] == [4, 1, 3]
    assert all(sample.database == "folders" for samples in dataset["train_unsup"] for sample in samples)
    DatasetDicts.check_unpaired_lists(dataset)  # all three lists hold files: the semi-supervised phase can run


def test_a_folder_as_a_string_and_folders_nested_in_each_other_count_each_file_once(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    mixtures = folders["mixtures"][0]
    dataset = build(
        setup,
        unsupervised_databases=[],
        unpaired_folders={"mixtures": [mixtures, os.path.join(mixtures, "live")], "voice": mixtures},
    )
    assert len(dataset["train_unsup"][0]) == 4 and len(dataset["train_unsup"][2]) == 4
    assert dataset["train_unsup"][1] == []


def test_adding_a_file_rebuilds_the_pkl_and_an_unchanged_folder_reuses_it(setup, tmp_path, monkeypatch):
    folders = make_folders(tmp_path / "unpaired")
    first = build(setup, unpaired_folders=settings_of(folders))
    original_loader = DerivedAudio.load_database_songs

    def must_not_load(*args, **kwargs):
        raise AssertionError("dataset.pkl should have been used")

    monkeypatch.setattr(Datasets, "load_database_songs", must_not_load)
    assert build(setup, unpaired_folders=settings_of(folders)) == first
    added = write_wav(os.path.join(folders["voice"][0], "deep", "er", "take 3.wav"), noise("new", 1.0, 1, SR), SR)
    with pytest.raises(AssertionError, match="should have been used"):
        build(setup, unpaired_folders=settings_of(folders))
    monkeypatch.setattr(Datasets, "load_database_songs", original_loader)
    rebuilt = build(setup, unpaired_folders=settings_of(folders))
    before = [sample.path for sample in folder_samples(first, 2)]  # Artist - Title/, sub/, then take 1.wav
    assert [sample.path for sample in folder_samples(rebuilt, 2)] == before[:1] + [added] + before[1:]
    # Replacing a file's content (another size and time) rebuilds too.
    write_wav(added, noise("longer", 2.0, 1, SR), SR)
    monkeypatch.setattr(Datasets, "load_database_songs", must_not_load)
    with pytest.raises(AssertionError, match="should have been used"):
        build(setup, unpaired_folders=settings_of(folders))


def test_a_folder_song_that_is_a_valid_or_test_song_is_left_out_of_training(setup, tmp_path, caplog):
    voice = tmp_path / "voice"
    for relative in ("Gamma - Third.wav", "Delta - Fourth/vocals.wav", "Alpha/First.flac", "Epsilon.wav"):
        write_audio(voice / relative, noise(relative, 1.0, 1, SR), SR)
    caplog.set_level(logging.INFO, logger="databases.PlainFolders")
    dataset = build(setup, unpaired_folders={"voice": [str(voice)]})
    # DSD100's Test songs: "Gamma - Third" is in valid, "Delta - Fourth" in test; "Alpha - First"
    # (as <folder> - <file>) in train_sup.
    assert [os.path.basename(sample.path) for sample in folder_samples(dataset, 2)] == ["Epsilon.wav"]
    assert "3 file(s) of the unpaired_folders folders are songs of train_sup, valid or test" in caplog.text
    assert "'Delta - Fourth (" in caplog.text and "is also in test (DSD100): dropped from train_unsup" in caplog.text


def test_a_folder_that_holds_the_databases_own_test_files_adds_nothing_of_them(setup):
    # DSD100's song folders are "003 - Gamma - Third" (track number, artist, title): the voices of its
    # Test songs, given as an a cappella folder, are the files of valid and test songs.
    sources = os.path.join(setup["roots"]["DSD100"], "Sources", "Test")
    dataset = build(setup, unpaired_folders={"voice": [sources]}, unsupervised_databases=[])
    assert dataset["train_unsup"][2] == []
    dataset = build(
        setup,
        unpaired_folders={"mixtures": [os.path.join(setup["roots"]["DSD100"], "Sources")]},
        unsupervised_databases=[],
    )
    # Of the Dev and Test folders' 16 stems, the 4 vocals are the songs' own files, the other 12 are
    # named after their song ("001 - Alpha - First" without its number): all train_sup, valid or test songs.
    assert dataset["train_unsup"][0] == []


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"voice": ["/no/such/folder"]}, "unpaired_folders.voice: the folder /no/such/folder does not exist"),
        ({"drums": ["{tmp}"]}, r"unpaired_folders.drums names a source the model does not have \(model_config.sources"),
        ({"mixtures": [3]}, "unpaired_folders.mixtures=\\[3\\] must be a folder or a list of folders"),
        (["{tmp}"], "unpaired_folders=.* must be a dict"),
    ],
)
def test_wrong_settings_are_one_clear_error_before_any_work(setup, tmp_path, settings, message):
    settings = eval(repr(settings).replace("{tmp}", str(tmp_path)))
    with pytest.raises(DatasetConfigError, match=message):
        build(setup, unpaired_folders=settings)
    assert not os.path.exists(setup["cache"]) and not os.path.exists(setup["pkl"])


def test_a_source_folder_for_a_source_the_model_does_not_have(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    with pytest.raises(
        DatasetConfigError,
        match=r"unpaired_folders.accompaniment names a source the model does not "
        r"have \(model_config.sources = \['voice'\]\)",
    ):
        build(setup, unpaired_folders=settings_of(folders), sources=("voice",))


def test_a_folder_of_drum_recordings_feeds_the_drums_list(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    drums_folder = folders["voice"][0]
    dataset = build(setup, unpaired_folders={"drums": [drums_folder], "accompaniment": []}, sources=("voice", "drums"))
    mixtures, voices, drums = dataset["train_unsup"]
    from_folder = [sample for sample in drums if sample.database == PlainFolders.FOLDER_DATABASE]
    assert from_folder and all(sample.path.startswith(drums_folder) for sample in from_folder)
    assert not any(sample.database == PlainFolders.FOLDER_DATABASE for sample in mixtures + voices)
    # CCMixter and iKala give no drums: their unpaired thirds add mixtures and voices only.
    assert {sample.database for sample in drums} == {"MedleyDB", PlainFolders.FOLDER_DATABASE}
    assert {"CCMixter", "iKala"} <= {sample.database for sample in voices}
    assert all(len(item) == 3 for key in ("train_sup", "valid", "test") for item in dataset[key])
    assert {item[0].database for item in dataset["test"]} <= {"DSD100", "MedleyDB"}


def test_a_folder_without_audio_files(setup, tmp_path):
    empty = tmp_path / "acapellas"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no audio here")
    write_wav(empty / ".hidden.wav", noise("hidden", 0.5, 1, SR), SR)
    with pytest.raises(DatasetConfigError, match=f"unpaired_folders.voice: the folder {empty} holds no audio files"):
        build(setup, unpaired_folders={"voice": [str(empty)]})
    assert not os.path.exists(setup["cache"]) and not os.path.exists(setup["pkl"])


def test_unreadable_files_are_named(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    broken = os.path.join(folders["voice"][0], "sub", "broken.wav")
    with open(broken, "wb") as handle:
        handle.write(b"RIFF\x00\x00not a wave file at all")
    empty = os.path.join(folders["mixtures"][0], "empty.flac")
    open(empty, "wb").close()
    with pytest.raises(DatasetConfigError) as caught:
        build(setup, unpaired_folders=settings_of(folders))
    message = str(caught.value)
    assert message.startswith("2 file(s) in the unpaired_folders folders cannot be read")
    assert f"{empty} (unpaired_folders.mixtures)" in message and f"{broken} (unpaired_folders.voice)" in message
    # No derived audio was made before the error (the databases' accompaniments come later).
    assert not os.path.exists(os.path.join(setup["cache"], "DSD100"))
    assert not os.path.exists(setup["pkl"])


def test_the_semi_supervised_phase_needs_every_unpaired_list(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    arguments = (
        setup["xmls"],
        setup["roots"],
        setup["cache"],
        setup["pkl"],
        {"unsupervised_databases": [], "supervised_valid_songs": 1},
        None,
        False,
        {},
    )
    with pytest.raises(
        DatasetConfigError,
        match="train_unsup has no mixtures and no accompaniment: .* Add folders "
        "to unpaired_folders.mixtures, unpaired_folders.accompaniment",
    ):
        TrainingData.load_dataset(
            *arguments, {"voice": [folders["voice"][0]]}, ["accompaniment", "voice"], need_unpaired=True
        )
    dataset = TrainingData.load_dataset(*arguments, {"voice": [folders["voice"][0]]}, ["accompaniment", "voice"])
    assert [len(samples) for samples in dataset["train_unsup"]] == [0, 0, 3]


def test_folders_are_added_to_a_custom_dataset(setup, tmp_path, monkeypatch):
    audio = write_wav(tmp_path / "custom" / "a.wav", noise("custom"), SR)
    (tmp_path / "folder_data.py").write_text(
        "from Sample import Sample\n"
        f"S = Sample.from_path({audio!r}, 'mine', 'song')\n"
        "def load():\n"
        "    return {'train_sup': [(S, S, S)], 'train_unsup': [[S], [S], [S]], 'valid': [], 'test': []}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    folders = make_folders(tmp_path / "unpaired")
    try:
        dataset = build(setup, custom_dataset="folder_data:load", unpaired_folders=settings_of(folders))
    finally:
        sys.modules.pop("folder_data", None)
    assert [len(samples) for samples in dataset["train_unsup"]] == [5, 2, 4]
    assert not os.path.exists(setup["pkl"])


def user_command(section, replacements):
    """The section's ``python Training.py`` command with the documented folders replaced."""
    arguments = docs_command(section)
    for old, new in replacements.items():
        arguments = [argument.replace(old, new) for argument in arguments]
    return arguments


def test_the_docs_command_for_unpaired_folders_works_as_written(setup, tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    arguments = user_command(
        "## Your own unpaired folders",
        {
            "/data/DSD100": setup["roots"]["DSD100"],
            "/data/songs": folders["mixtures"][0],
            "/data/instrumentals": folders["accompaniment"][0],
            "/data/acapellas": folders["voice"][0],
        },
    )
    arguments += [f"dataset_xmls.DSD100={setup['xmls']['DSD100']}", "partition_config.supervised_valid_songs=1"]
    assert arguments[0] == "with"
    result = run_training(["datasets"] + arguments, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert rows[("train_unsup/mixture", "folders")] == 4 and rows[("train_unsup/accompaniment", "all")] == 1
    assert rows[("train_unsup/voice", "all")] == 3 and rows[("train_sup", "DSD100")] == 2
    assert rows[("valid", "all")] == 1 and rows[("test", "all")] == 1
    shutil.rmtree(folders["accompaniment"][0])
    failed = run_training(["datasets"] + arguments, tmp_path)
    assert failed.returncode != 0
    assert f"unpaired_folders.accompaniment: the folder {folders['accompaniment'][0]} does not exist" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_docs_command_for_paired_song_folders_works_as_written(tmp_path):
    folders = make_folders(tmp_path / "unpaired")
    songs = tmp_path / "mysongs"
    for split, count in (("train", 2), ("test", 7)):
        for index in range(count):
            write_wav(songs / split / f"Artist - {split} {index}" / "mixture.wav", noise(f"{split}{index}m"), SR)
            write_wav(songs / split / f"Artist - {split} {index}" / "vocals.wav", noise(f"{split}{index}v"), SR)
    arguments = user_command(
        "## Paired song folders",
        {
            "/data/mysongs": str(songs),
            "/data/songs": folders["mixtures"][0],
            "/data/instrumentals": folders["accompaniment"][0],
            "/data/acapellas": folders["voice"][0],
        },
    )
    result = run_training(["datasets"] + arguments, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert rows[("train_sup", "SongFolders")] == 2 and rows[("valid", "SongFolders")] == 5
    assert rows[("test", "SongFolders")] == 2 and rows[("test", "all")] == 2
    assert [rows[(f"train_unsup/{role}", "folders")] for role in ("mixture", "accompaniment", "voice")] == [4, 1, 3]
