"""Benchmark of the ``separate`` command's two modes on the demo's test songs, at their own rate.

The demo database's test partition (as ``python Training.py with demo`` builds it: generated
into ``<cache-dir>/demo``, 44.1 kHz; the DSD100-, MedleyDB- and CCMixter-layout songs have stereo
sources, iKala's channel split gives mono ones) is separated with the model folder given by
``--model``, once per mode (``separate_mode``, Separation.SEPARATE_MODES), through
``SeparateFiles.separate_path`` as the command does:

- ``model``: mono, the model's band only (up to ``expected_sr / 2``), resampled to 44.1 kHz;
- ``fullband``: the input's channels and whole band (the model's estimates as soft masks on the
  input's STFT, FullBand.py).

Each output is compared with the true sources at the songs' rate, **per channel**, with BSS Eval
v3 (``mir_eval.separation.bss_eval_sources``, 512-tap distortion filters as SiSEC uses at
44.1 kHz, no permutation): the mono model-mode output is compared with every channel of the
references. A channel where a true source is silent (mean power at most -120 dBFS, Metrics.py's
rule) has no SDR. The table gives per database and source the mean and median SDR of both
modes over songs and channels, and the mean gain of ``fullband`` over ``model``; also each
mode's share of output energy above 4.2 kHz (the references' share beside it) and the
separation's real-time factor.

Run: ``.venv/bin/python bench/fullband.py --model checkpoints/<experiment_id>_semisup/best``
(``--cache-dir cache`` reuses the demo database of ``python Training.py with demo``; ``--csv``
writes the per-channel rows). The last line is ``fullband: SDR gain <dB> dB over <n> source channels``.
"""

import argparse
import csv
import logging
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import machine  # noqa: E402
import numpy as np  # noqa: E402

import Input  # noqa: E402
from common import Utils  # noqa: E402
from common.Checkpoints import read_model_config  # noqa: E402
from evaluation import Metrics, SeparateFiles  # noqa: E402
from evaluation.ModelFolder import find_checkpoint  # noqa: E402
from experiment import TrainingData  # noqa: E402

MODES = ("model", "fullband")
HIGH_BAND_HZ = 4200.0
# The demo named config's data settings (Training.py): its database and its partition.
DEMO_DATABASE = {"song_seconds": 12.0}
DEMO_PARTITION = {"supervised_valid_songs": 2}


def demo_test_songs(cache_dir):
    """``[(mixture, accompaniment, voice)]`` Samples of the demo's test partition (generated once)."""
    dataset = TrainingData.load_dataset({}, {}, cache_dir, None, DEMO_PARTITION, None, True, DEMO_DATABASE)
    return dataset["test"]


def read_native(sample, sample_rate, channels, length):
    """float32 ``[channels, length]`` of a Sample at ``sample_rate``; zeros for a missing source."""
    if Input.is_silent(sample):
        return np.zeros((channels, length), np.float32)
    audio = np.atleast_2d(Input.read_audio(sample.path, sample_rate, mono_downmix=False))
    audio = Input.fit_length(audio.T, length).T
    return np.ascontiguousarray(np.broadcast_to(audio, (channels, length)) if len(audio) == 1 else audio)


def high_band_share(audio, sample_rate):
    """Share of the energy of ``audio`` ``[channels, samples]`` above :data:`HIGH_BAND_HZ` (NaN if silent)."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, np.float64), axis=-1)) ** 2
    total = spectrum.sum()
    frequencies = np.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    return float(spectrum[..., frequencies > HIGH_BAND_HZ].sum() / total) if total > 0 else float("nan")


def separate_song(model, mixture, work_dir, batch_size):
    """``{mode: ({source: float32 [channels, samples]}, seconds)}`` from the separate command's outputs."""
    import soundfile

    results = {}
    for mode in MODES:
        out_dir = tempfile.mkdtemp(dir=work_dir)
        start = time.perf_counter()
        written = SeparateFiles.separate_path(model, mixture.path, out_dir, batch_size=batch_size, mode=mode)
        seconds = time.perf_counter() - start
        audio = {}
        for path in written:
            source = os.path.splitext(os.path.basename(path))[0].rsplit("_", 1)[1]
            audio[source] = soundfile.read(path, dtype="float32", always_2d=True)[0].T
        results[mode] = (audio, seconds)
    return results


def channel_rows(song, sources, separated, sample_rate):
    """Per channel and source: SDR of each mode (NaN where a true source is silent)."""
    from mir_eval.separation import bss_eval_sources

    mixture = song[0]
    length = next(iter(separated["fullband"][0].values())).shape[1]
    channels = next(iter(separated["fullband"][0].values())).shape[0]
    references = np.stack([read_native(sample, sample_rate, channels, length) for sample in song[1:]])
    rows = []
    for channel in range(channels):
        refs = references[:, channel]
        silent = np.mean(refs.astype(np.float64) ** 2, axis=1) <= Metrics.SILENCE_MEAN_SQUARE
        sdr = {}
        for mode in MODES:
            audio = separated[mode][0]
            estimates = np.stack([audio[source][min(channel, len(audio[source]) - 1)] for source in sources])
            if silent.any():
                sdr[mode] = np.full(len(sources), np.nan)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # mir_eval 0.8 warns about the function's removal in 0.9
                sdr[mode] = bss_eval_sources(refs, estimates, compute_permutation=False)[0]
        for index, source in enumerate(sources):
            rows.append(
                {
                    "database": mixture.database,
                    "song": mixture.song or os.path.basename(mixture.path),
                    "source": source,
                    "channel": channel,
                    **{f"SDR_{mode}": float(sdr[mode][index]) for mode in MODES},
                }
            )
    shares = {"reference": [high_band_share(references[index], sample_rate) for index in range(len(sources))]}
    for mode in MODES:
        shares[mode] = [high_band_share(separated[mode][0][source], sample_rate) for source in sources]
    return rows, shares


def summary_lines(rows, shares, sources, timing):
    """The printed table: per database and source, SDR of both modes over songs and channels."""
    lines = [
        f"{'database':<10} {'source':<14} {'channels':>8} {'SDR model':>18} {'SDR fullband':>18} {'gain':>7}",
        f"{'':<10} {'':<14} {'':>8} {'mean / median':>18} {'mean / median':>18} {'mean':>7}",
    ]
    databases = sorted({row["database"] for row in rows}) + ["all"]
    for database in databases:
        for source in sources:
            chosen = [
                row
                for row in rows
                if row["source"] == source
                and database in ("all", row["database"])
                and np.isfinite(row["SDR_model"])
                and np.isfinite(row["SDR_fullband"])
            ]
            if not chosen:
                continue
            model = np.array([row["SDR_model"] for row in chosen])
            full = np.array([row["SDR_fullband"] for row in chosen])
            lines.append(
                f"{database:<10} {source:<14} {len(chosen):>8} "
                f"{np.mean(model):>8.2f} / {np.median(model):>6.2f} "
                f"{np.mean(full):>8.2f} / {np.median(full):>6.2f} {np.mean(full - model):>+7.2f}"
            )
    lines.append("")
    lines.append(f"Share of energy above {HIGH_BAND_HZ / 1000:.1f} kHz (mean over songs):")
    for index, source in enumerate(sources):
        values = {kind: np.nanmean([song[kind][index] for song in shares]) for kind in ("reference",) + MODES}
        lines.append(
            f"  {source:<14} reference {values['reference']:.2e}   model {values['model']:.2e}   "
            f"fullband {values['fullband']:.2e}"
        )
    audio_seconds = timing.pop("audio")
    lines.append(
        "Real-time factor (audio seconds / wall-clock seconds, model restore included): "
        + ", ".join(f"{mode} {audio_seconds / seconds:.1f}x" for mode, seconds in timing.items())
    )
    return lines


def main(argv=None):
    """Separate the demo's test songs both ways with ``--model`` and print the SDR table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint folder, e.g. checkpoints/<id>_semisup/best")
    parser.add_argument("--cache-dir", default="cache", help="cache_dir of the demo database (as Training.py's)")
    parser.add_argument("--batch-size", type=int, default=32, help="U-Net chunks per session call")
    parser.add_argument("--csv", help="write the per-channel rows to this CSV file")
    args = parser.parse_args(argv)
    Utils.setup_logging(logging.WARNING)
    _, folder = find_checkpoint(args.model)
    sources = list(read_model_config(folder).network.sources)
    songs = demo_test_songs(args.cache_dir)
    print(machine.cpu_description())
    rows, shares, timing = [], [], {"audio": 0.0, **{mode: 0.0 for mode in MODES}}
    with tempfile.TemporaryDirectory() as work_dir:
        for song in songs:
            if len(song) != 1 + len(sources):
                raise ValueError(f"Song {song[0].path} has {len(song) - 1} sources, the model {len(sources)}")
            separated = separate_song(args.model, song[0], work_dir, args.batch_size)
            song_rows, song_shares = channel_rows(song, sources, separated, song[0].sample_rate)
            rows += song_rows
            shares.append(song_shares)
            timing["audio"] += song[0].duration
            for mode in MODES:
                timing[mode] += separated[mode][1]
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(
        f"{len(songs)} test songs of the demo database, SDR (dB, BSS Eval v3 at the songs' rate, per channel)"
        f" of the separate command's outputs; model: {args.model}"
    )
    for line in summary_lines(rows, shares, sources, timing):
        print(line)
    gains = [row["SDR_fullband"] - row["SDR_model"] for row in rows]
    gains = [gain for gain in gains if np.isfinite(gain)]
    print(f"fullband: SDR gain {np.mean(gains):+.2f} dB over {len(gains)} source channels")


if __name__ == "__main__":
    main()
