"""A small procedural multitrack database in the folder layouts of DSD100, MedleyDB, CCMixter and iKala.

The demo lets the whole experiment run anywhere without downloads, through exactly the code
path of the paper experiment (44.1 kHz stereo files, resampling, down-mixing, stem sums,
channel splits). Every song is composed (DemoSongs.py) and synthesised (DemoSynthesis.py) with numpy and
scipy from a seed; this module writes the songs into the four layouts.

The demo is the paper's setting in miniature: a small paired set (DSD100 layout, 2 x 4 songs)
of one family of singers and instruments, and larger sets in the MedleyDB (12 songs),
CCMixter (9) and iKala (12 clips) layouts, each drawn from a family of its own (other
voices and registers, lead instruments, pads, mixing levels; see ``DemoSongs.FAMILIES``).
Their thirds used as unpaired training data come from the same domains as their test songs,
and the paired training songs do not.

Voice and accompaniment instruments are panned differently, so the two channels differ and
the down-mix matters. All audio is 44.1 kHz (``sample_rate``) stereo: 32-bit float WAV wherever
files must add up exactly, 16-bit PCM for iKala (as in the real distribution).

Generation is idempotent: a marker file ``demo_database.json`` in the target folder records the
parameters and is marked complete only after the last audio file has been written (atomically);
a later call with the same parameters returns at once.

Command line: ``python -m databases.DemoDatabase TARGET_DIR [--seed N]`` prints the four database roots.
"""

import argparse
import functools
import json
import logging
import os
import shutil
import sys
from typing import Dict, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from common import Utils
from databases.DemoSongs import (
    DATABASE_NAMES,
    FAMILIES,
    Stem,
    draw_song_plan,
    mix,
    peak_normalise,
    render_song,
    song_names,
    song_rng,
    song_seconds,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # bump whenever the generated audio or layout changes
MARKER_NAME = "demo_database.json"
IKALA_FIRST_ID = 10161


def _plan(rng, database, seconds, sample_rate):
    """A song plan in the tempo range of ``database``'s family."""
    return draw_song_plan(rng, seconds, sample_rate, FAMILIES[database].tempo_bpm)


def write_dsd100_song(
    root: str,
    split: str,
    number: int,
    artist: str,
    title: str,
    rng: np.random.Generator,
    seconds: float,
    sample_rate: int,
) -> None:
    """Write one DSD100 song (float WAV, mixture = bass + drums + other + vocals).

    Files: ``<root>/Mixtures/<split>/<NNN - Artist - Title>/mixture.wav`` and
    ``<root>/Sources/<split>/<same>/{bass,drums,other,vocals}.wav``, stereo at ``sample_rate`` Hz;
    ``split`` is ``"Dev"`` or ``"Test"``, the song lasts ``seconds`` +-25 %.
    """
    name = f"{number:03d} - {artist} - {title}"
    stems = render_song(_plan(rng, "DSD100", song_seconds(rng, seconds), sample_rate), rng, FAMILIES["DSD100"])
    groups = {"bass": ["bass"], "drums": ["drums"], "other": ["chords", "arpeggio"], "vocals": ["vocals"]}
    tracks = [sum(s.audio for s in stems if s.name in members) for members in groups.values()]
    tracks = peak_normalise(tracks, float(rng.uniform(0.6, 0.95)))
    for source, audio in zip(groups, tracks):
        Utils.atomic_write_audio(os.path.join(root, "Sources", split, name, source + ".wav"), audio, sample_rate)
    Utils.atomic_write_audio(os.path.join(root, "Mixtures", split, name, "mixture.wav"), mix(tracks), sample_rate)


def write_medleydb_song(
    root: str,
    index: int,
    artist: str,
    title: str,
    rng: np.random.Generator,
    seconds: float,
    sample_rate: int,
    instrumental: bool,
) -> None:
    """Write one MedleyDB multitrack: ``<root>/Audio/<Name>/<Name>_MIX.wav`` (= sum of stems),
    ``<Name>_STEMS/<Name>_STEM_NN.wav`` (float WAV, stereo at ``sample_rate`` Hz) and
    ``<Name>_METADATA.yaml``; the song lasts ``seconds`` +-25 %.

    Vocal songs have a lead singer ("female singer"/"male singer"); song 0 also has backing
    vocals ("vocalists"). Instrumental songs carry a guitar melody instead and no singer.
    """
    name = artist.replace(" ", "") + "_" + title.replace(" ", "")
    stems = render_song(
        _plan(rng, "MedleyDB", song_seconds(rng, seconds), sample_rate),
        rng,
        FAMILIES["MedleyDB"],
        backing_vocals=index == 0 and not instrumental,
        instrumental=instrumental,
    )
    tracks = peak_normalise([s.audio for s in stems], float(rng.uniform(0.6, 0.95)))
    folder = os.path.join(root, "Audio", name)
    stem_files = [f"{name}_STEM_{i:02d}.wav" for i in range(1, len(stems) + 1)]
    for filename, audio in zip(stem_files, tracks):
        Utils.atomic_write_audio(os.path.join(folder, f"{name}_STEMS", filename), audio, sample_rate)
    Utils.atomic_write_audio(os.path.join(folder, f"{name}_MIX.wav"), mix(tracks), sample_rate)
    metadata = medleydb_metadata(name, artist, title, stems, stem_files, instrumental)
    with Utils.atomic_write(os.path.join(folder, f"{name}_METADATA.yaml"), "w", encoding="utf-8") as handle:
        handle.write(metadata)


def medleydb_metadata(
    name: str, artist: str, title: str, stems: Sequence[Stem], stem_files: Sequence[str], instrumental: bool
) -> str:
    """Text of a ``<Name>_METADATA.yaml`` in the style of MedleyDB v1.

    As in the real files, ``has_bleed``/``instrumental`` are unquoted ``yes``/``no`` (which
    YAML 1.1 loaders such as PyYAML read as booleans) and ``component`` is ``melody``,
    ``bass`` or ``''``.
    """
    lines = [
        "album: Demo Sessions",
        f"artist: {artist}",
        f"composer: {artist}",
        "excerpt: no",
        "genre: Pop",
        "has_bleed: no",
        f"instrumental: {'yes' if instrumental else 'no'}",
        f"mix_filename: {name}_MIX.wav",
        "origin: DemoDatabase.py",
        "producer: DemoDatabase.py",
        f"stem_dir: {name}_STEMS",
        "stems:",
    ]
    for i, (stem, filename) in enumerate(zip(stems, stem_files), start=1):
        component = "melody" if stem.name in ("vocals", "lead") else "bass" if stem.name == "bass" else "''"
        lines += [
            f"  S{i:02d}:",
            f"    component: {component}",
            f"    filename: {filename}",
            f"    instrument: {stem.instrument}",
        ]
    lines += [f"title: {title}", "version: '1.2'", "website: none"]
    return "\n".join(lines) + "\n"


def write_ccmixter_song(
    root: str, artist: str, title: str, rng: np.random.Generator, seconds: float, sample_rate: int
) -> None:
    """Write one CCMixter song: ``<root>/<Artist_-_Title>/mix.wav`` = ``source-01.wav``
    (instrumental) + ``source-02.wav`` (voice), float WAV stereo at ``sample_rate`` Hz, ``seconds``
    +-25 % long."""
    name = artist.replace(" ", "_") + "_-_" + title.replace(" ", "_")
    stems = render_song(_plan(rng, "CCMixter", song_seconds(rng, seconds), sample_rate), rng, FAMILIES["CCMixter"])
    accompaniment = sum(s.audio for s in stems if not s.is_voice)
    voice = sum(s.audio for s in stems if s.is_voice)
    accompaniment, voice = peak_normalise([accompaniment, voice], float(rng.uniform(0.6, 0.95)))
    folder = os.path.join(root, name)
    Utils.atomic_write_audio(os.path.join(folder, "source-01.wav"), accompaniment, sample_rate)
    Utils.atomic_write_audio(os.path.join(folder, "source-02.wav"), voice, sample_rate)
    Utils.atomic_write_audio(os.path.join(folder, "mix.wav"), mix([accompaniment, voice]), sample_rate)


def ikala_clip_name(index: int) -> str:
    """File name of iKala clip ``index``, e.g. ``10161_chorus.wav`` (ids ascend with the index)."""
    return f"{IKALA_FIRST_ID + 3 * index}_{'chorus' if index % 2 == 0 else 'verse'}.wav"


def write_ikala_clip(root: str, index: int, rng: np.random.Generator, seconds: float, sample_rate: int) -> None:
    """Write one iKala clip ``<root>/Wavfile/<id>_<section>.wav``: 16-bit PCM stereo with the
    accompaniment (mono down-mix) on the left channel and the voice on the right, ``seconds`` long
    at ``sample_rate`` Hz."""
    stems = render_song(_plan(rng, "iKala", seconds, sample_rate), rng, FAMILIES["iKala"])
    accompaniment = sum(s.audio for s in stems if not s.is_voice).mean(axis=1)
    voice = sum(s.audio for s in stems if s.is_voice).mean(axis=1)
    channels = peak_normalise([accompaniment, voice], float(rng.uniform(0.6, 0.95)))
    Utils.atomic_write_audio(
        os.path.join(root, "Wavfile", ikala_clip_name(index)), np.stack(channels, axis=1), sample_rate, subtype="PCM_16"
    )


def generate_demo_database(
    target_dir: Union[str, os.PathLike[str]],
    seed: int = 0,
    *,
    dsd_songs_per_split: int = 4,
    medleydb_songs: int = 12,
    ccmixter_songs: int = 9,
    ikala_clips: int = 12,
    song_seconds: float = 16.0,
    ikala_clip_seconds: float = 10.0,
    sample_rate: int = 44100,
) -> Dict[str, str]:
    """Generate the demo database into ``target_dir`` (once) and return its four roots.

    Layouts (all audio stereo at ``sample_rate`` Hz):

    - ``DSD100/``: ``Mixtures/{Dev,Test}/<NNN - Artist - Title>/mixture.wav`` and
      ``Sources/{Dev,Test}/<same>/{bass,drums,other,vocals}.wav`` (float WAV, mixture = sum).
    - ``MedleyDB/``: ``Audio/<Name>/<Name>_MIX.wav``, ``<Name>_STEMS/<Name>_STEM_NN.wav``,
      ``<Name>_METADATA.yaml`` (float WAV, MIX = sum of stems); the last song is instrumental.
    - ``CCMixter/``: ``<Artist_-_Title>/{mix,source-01,source-02}.wav`` (float WAV,
      mix = instrumental source-01 + voice source-02).
    - ``iKala/``: ``Wavfile/<id>_{chorus,verse}.wav`` (16-bit PCM, left = accompaniment,
      right = voice).

    Args:
        target_dir: folder to generate into; created if missing. It must not already hold
            database folders that this function did not create.
        seed: non-negative integer; the same seed and parameters give identical files.
        dsd_songs_per_split: DSD100 songs in each of Dev and Test.
        medleydb_songs, ccmixter_songs, ikala_clips: number of songs/clips.
        song_seconds: mean song length in seconds (each song varies by +-25 %).
        ikala_clip_seconds: length of each iKala clip in seconds.
        sample_rate: Hz of every file.

    Returns:
        ``{"DSD100": root, "MedleyDB": root, "CCMixter": root, "iKala": root}``, absolute
        paths ``<target_dir>/<name>``.

    Raises:
        ValueError: a count, length, seed or sample rate is out of range.
        FileExistsError: ``target_dir`` holds one of the database folders but no marker of
            this generator (it would be overwritten).
    """
    parameters = _validated_parameters(
        seed,
        dsd_songs_per_split,
        medleydb_songs,
        ccmixter_songs,
        ikala_clips,
        song_seconds,
        ikala_clip_seconds,
        sample_rate,
    )
    target_dir = os.path.abspath(target_dir)
    roots = {name: os.path.join(target_dir, name) for name in DATABASE_NAMES}
    marker_path = os.path.join(target_dir, MARKER_NAME)
    marker = _read_marker(marker_path)
    if marker == _marker(parameters, complete=True):
        logger.debug("Demo database in %s is up to date", target_dir)
        return roots
    if marker is None:
        _refuse_foreign_folders(roots, marker_path)
    logger.info("Generating the demo database into %s (seed %d)", target_dir, seed)
    Utils.atomic_write_json(marker_path, _marker(parameters, complete=False))
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
    _write_all_songs(roots, parameters)
    Utils.atomic_write_json(marker_path, _marker(parameters, complete=True))
    return roots


def _validated_parameters(
    seed,
    dsd_songs_per_split,
    medleydb_songs,
    ccmixter_songs,
    ikala_clips,
    song_seconds,
    ikala_clip_seconds,
    sample_rate,
):
    """The generation parameters as a JSON-ready dict; ValueError naming any bad one."""
    counts = {
        "dsd_songs_per_split": dsd_songs_per_split,
        "medleydb_songs": medleydb_songs,
        "ccmixter_songs": ccmixter_songs,
        "ikala_clips": ikala_clips,
    }
    for key, value in {"seed": seed, **counts, "sample_rate": sample_rate}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"Demo database setting {key}={value!r} must be an integer")
    if seed < 0:
        raise ValueError(f"Demo database seed={seed} must be a non-negative integer")
    for key, value in counts.items():
        if value < 1:
            raise ValueError(
                f"Demo database setting {key}={value} must be at least 1 so that every "
                f"partition of the experiment gets songs"
            )
    for key, value in {"song_seconds": song_seconds, "ikala_clip_seconds": ikala_clip_seconds}.items():
        if not 3.0 <= float(value) <= 600.0:
            raise ValueError(
                f"Demo database setting {key}={value} must be between 3 and 600 seconds "
                f"(shorter songs leave no room for a sung phrase)"
            )
    if not 16000 <= sample_rate <= 192000:
        raise ValueError(f"Demo database sample_rate={sample_rate} must be between 16000 and 192000 Hz")
    return {
        "seed": int(seed),
        **{k: int(v) for k, v in counts.items()},
        "song_seconds": float(song_seconds),
        "ikala_clip_seconds": float(ikala_clip_seconds),
        "sample_rate": int(sample_rate),
    }


def _marker(parameters, complete):
    return {"format_version": FORMAT_VERSION, "parameters": parameters, "complete": complete}


def _read_marker(path):
    """The marker dict, or None if missing; an unreadable marker counts as an incomplete run."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"complete": False}


def _refuse_foreign_folders(roots, marker_path):
    """Raise if a database folder exists (non-empty) without this generator's marker."""
    for root in roots.values():
        if os.path.isdir(root) and os.listdir(root):
            raise FileExistsError(
                f"{root} exists but {marker_path} does not, so it was not made by the demo generator and "
                f"would be overwritten; pass an empty or new target folder instead"
            )


def _write_all_songs(roots, parameters):
    """Render and write every song of the four databases (progress bar on a terminal)."""
    seed, sample_rate, seconds = parameters["seed"], parameters["sample_rate"], parameters["song_seconds"]
    jobs = []
    per_split = parameters["dsd_songs_per_split"]
    for number, (artist, title) in enumerate(song_names(seed, "DSD100", 2 * per_split), start=1):
        split = "Dev" if number <= per_split else "Test"
        jobs.append(
            functools.partial(
                write_dsd100_song,
                roots["DSD100"],
                split,
                number,
                artist,
                title,
                song_rng(seed, "DSD100", number),
                seconds,
                sample_rate,
            )
        )
    count = parameters["medleydb_songs"]
    for index, (artist, title) in enumerate(song_names(seed, "MedleyDB", count)):
        jobs.append(
            functools.partial(
                write_medleydb_song,
                roots["MedleyDB"],
                index,
                artist,
                title,
                song_rng(seed, "MedleyDB", index),
                seconds,
                sample_rate,
                instrumental=index == count - 1,
            )
        )
    for index, (artist, title) in enumerate(song_names(seed, "CCMixter", parameters["ccmixter_songs"])):
        jobs.append(
            functools.partial(
                write_ccmixter_song,
                roots["CCMixter"],
                artist,
                title,
                song_rng(seed, "CCMixter", index),
                seconds,
                sample_rate,
            )
        )
    for index in range(parameters["ikala_clips"]):
        jobs.append(
            functools.partial(
                write_ikala_clip,
                roots["iKala"],
                index,
                song_rng(seed, "iKala", index),
                parameters["ikala_clip_seconds"],
                sample_rate,
            )
        )
    for job in tqdm(jobs, desc="demo database", unit="song", disable=None, leave=False):
        job()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: generate the demo database into TARGET_DIR and print the four roots."""
    parser = argparse.ArgumentParser(
        description="Generate the procedural demo multitrack database (DSD100, MedleyDB, CCMixter and iKala layouts)."
    )
    parser.add_argument("target_dir", metavar="TARGET_DIR", help="folder to generate into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--song-seconds", type=float, default=16.0, help="mean song length (default 16)")
    args = parser.parse_args(argv)
    Utils.setup_logging()
    try:
        roots = generate_demo_database(args.target_dir, seed=args.seed, song_seconds=args.song_seconds)
    except (ValueError, FileExistsError) as error:
        parser.exit(2, f"error: {error}\n")
    for name, root in roots.items():
        print(f"{name}: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
