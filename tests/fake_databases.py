"""Tiny databases in the public layouts (DSD100, MUSDB18-HQ, MUSDB18, MedleyDB, CCMixter, iKala), made
by the tests, and helpers to build a dataset from them; the fixtures are in conftest.py."""

import os
import re
import shlex
import subprocess
import sys
import zlib

import numpy as np
import soundfile
import stempeg
import yaml

import Datasets

from conftest import write_wav

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SR = 8000


SMALL_PARTITION = {"supervised_valid_songs": 1}


def noise(key, seconds=1.0, channels=2, sample_rate=SR):
    """Deterministic quiet noise [samples, channels], different for every ``key``."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return (0.1 * rng.standard_normal((int(round(seconds * sample_rate)), channels))).astype(np.float32)


def make_dsd100(
    root, dev=("002 - Beta - Second", "001 - Alpha - First"), test=("004 - Delta - Fourth", "003 - Gamma - Third")
):
    for folder, songs in (("Dev", dev), ("Test", test)):
        for song in songs:
            sources = {stem: noise(song + stem) for stem in ("vocals", "bass", "drums", "other")}
            for stem, audio in sources.items():
                write_wav(root / "Sources" / folder / song / f"{stem}.wav", audio, SR)
            write_wav(root / "Mixtures" / folder / song / "mixture.wav", sum(sources.values()), SR)
    return str(root)


def make_musdb18hq(root, train=("B - Two", "A - One"), test=("C - Three",)):
    for folder, songs in (("train", train), ("test", test)):
        for song in songs:
            sources = {stem: noise(song + stem) for stem in ("vocals", "bass", "drums", "other")}
            for stem, audio in sources.items():
                write_wav(root / folder / song / f"{stem}.wav", audio, SR)
            write_wav(root / folder / song / "mixture.wav", sum(sources.values()), SR)
    return str(root)


MUSDB18_SR = 44100


def musdb18_stems(song, seconds=1.0):
    """float32 [5, samples, 2] at MUSDB18_SR: mixture, drums, bass, other, vocals of ``song``.

    Each source is three quiet sines (different for every song and source; tonal, so that
    AAC codes it well), the right channel 0.8 times the left; mixture = their sum.
    """
    rng = np.random.default_rng(zlib.crc32(song.encode()))
    time = np.arange(int(round(seconds * MUSDB18_SR))) / MUSDB18_SR
    sources = []
    for _ in range(4):
        tone = sum(
            0.05 * np.sin(2 * np.pi * rng.uniform(100, 2000) * time + rng.uniform(0, 2 * np.pi)) for _ in range(3)
        )
        sources.append(np.stack([tone, 0.8 * tone], axis=1))
    return np.stack([sum(sources)] + sources).astype(np.float32)


def write_stem_file(path, stems):
    """Write ``stems`` [streams, samples, channels] as one AAC stream each into an MP4 at ``path``."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    stempeg.write_stems(str(path), stems, sample_rate=MUSDB18_SR, writer=stempeg.StreamsWriter(codec="aac"))
    return str(path)


def make_musdb18(root, train=("B - Two", "A - One"), test=("C - Three",), seconds=1.0):
    """MUSDB18 layout: ``<root>/{train,test}/<song>.stem.mp4`` with the streams of musdb18_stems."""
    for folder, songs in (("train", train), ("test", test)):
        for song in songs:
            write_stem_file(root / folder / f"{song}.stem.mp4", musdb18_stems(song, seconds))
    return str(root)


MEDLEYDB_SONGS = {
    "Artist1_Sing": ["female singer", "electric bass", "male singer"],
    "Artist2_Instrumental": ["drum set", "piano"],
    "Artist3_Choir": ["choir", "acoustic guitar"],
}


def make_medleydb(root, songs=None):
    for name, labels in (songs or MEDLEYDB_SONGS).items():
        folder = root / "Audio" / name
        stems = {}
        for index, label in enumerate(labels, start=1):
            filename = f"{name}_STEM_{index:02d}.wav"
            stems[f"S{index:02d}"] = {"filename": filename, "instrument": label, "component": ""}
            write_wav(folder / f"{name}_STEMS" / filename, noise(name + label), SR)
        write_wav(folder / f"{name}_MIX.wav", noise(name + "mix"), SR)
        (folder / f"{name}_METADATA.yaml").write_text(
            yaml.safe_dump({"artist": name.split("_")[0], "title": name.split("_")[1], "stems": stems})
        )
    return str(root)


def make_ccmixter(root, names=("Zed_-_Last_Song", "Abe_-_First_Song", "Max_-_Middle")):
    for name in names:
        instrumental, voice = noise(name + "inst"), noise(name + "voice")
        write_wav(root / name / "source-01.wav", instrumental, SR)
        write_wav(root / name / "source-02.wav", voice, SR)
        write_wav(root / name / "mix.wav", instrumental + voice, SR)
    return str(root)


def make_ikala(root, ids=("10171_chorus", "10161_verse", "10170_verse")):
    for clip in ids:
        write_wav(root / "Wavfile" / f"{clip}.wav", noise(clip), SR)
    return str(root)


MAKERS = {
    "DSD100": make_dsd100,
    "MUSDB18HQ": make_musdb18hq,
    "MUSDB18": make_musdb18,
    "MedleyDB": make_medleydb,
    "CCMixter": make_ccmixter,
    "iKala": make_ikala,
}


PAPER_DATABASES = ("DSD100", "MedleyDB", "CCMixter", "iKala")


def build(setup, **kwargs):
    arguments = dict(
        xml_paths=setup["xmls"],
        dataset_roots=setup["roots"],
        cache_dir=setup["cache"],
        pkl_path=setup["pkl"],
        **SMALL_PARTITION,
    )
    arguments.update(kwargs)
    return Datasets.get_dataset(**arguments)


def read(sample):
    audio, rate = soundfile.read(sample.path, dtype="float32", always_2d=True)
    assert rate == sample.sample_rate and audio.shape[1] == sample.channels
    return audio


def paired_triples(dataset):
    triples = [triple for key in ("train_sup", "valid", "test") for triple in dataset[key]]
    return triples + list(zip(*dataset["train_unsup"]))


def files_under(folder):
    return sorted(
        (os.path.join(path, name), os.stat(os.path.join(path, name)).st_mtime_ns)
        for path, _, names in os.walk(folder)
        for name in names
    )


def docs_command(section):
    """The first ``python Training.py`` command of the bash blocks of ``section`` (a heading of
    docs/datasets.md), continuation lines joined, as the arguments after ``Training.py``."""
    with open(os.path.join(REPO, "docs", "datasets.md"), encoding="utf-8") as handle:
        text = handle.read()
    start = text.index(section + "\n")
    end = text.find("\n## ", start + len(section))
    for block in re.findall(r"```bash\n(.*?)```", text[start : end if end >= 0 else None], re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            arguments = shlex.split(line, comments=True)
            if arguments[:2] == ["python", "Training.py"]:
                return arguments[2:]
    raise AssertionError(f"no python Training.py command in {section}")


def run_training(arguments, cwd):
    """``python Training.py ARGUMENTS`` in ``cwd``, as a user runs it: the finished process."""
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "Training.py")] + list(arguments),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
    )


def table_rows(output):
    """``{(partition, database): songs}`` of the table the datasets command prints."""
    return {
        (cells[0], cells[1]): int(cells[2])
        for cells in map(str.split, output.splitlines())
        if len(cells) == 4 and cells[2].isdigit()
    }
