"""Results.py: the result files' columns, aggregates, the printed table and museval's JSON."""

import csv
import json
import math
import os

import numpy as np
import pytest

import Evaluate
from evaluation import Metrics, Results

from conftest import write_wav
from tiny_model import SR, fake_row


def test_result_files_have_the_documented_columns(tmp_path):
    results = {
        name: [
            fake_row(name, database, f"song{i}", source, sdr)
            for i, (database, sdr) in enumerate(
                [("DSD100", 3.0), ("DSD100", math.nan), ("iKala", 7.5), ("iKala", math.inf)]
            )
            for source in ("accompaniment", "voice")
        ]
        for name in ("supervised", "semi-supervised")
    }

    paths = Results.write_results(results, str(tmp_path / "out"))

    assert [os.path.basename(path) for path in paths] == [
        "results.json",
        "per_song.csv",
        "summary.csv",
        "sdr_boxplot.png",
    ]
    with open(paths[1], newline="") as handle:
        per_song = list(csv.reader(handle))
    # The rows hold only v3 metrics: the v4 columns are left out, not filled with NaN.
    assert tuple(per_song[0]) == Results.per_song_columns(Metrics.METRICS) and len(per_song) == 1 + 16
    assert not {"SDR_v4", "frames_v4"} & set(per_song[0])
    with open(paths[2], newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert tuple(summary[0]) == Results.SUMMARY_COLUMNS
    assert {row["metric"] for row in summary} == set(Metrics.METRICS)
    dsd_sdr = [
        row
        for row in summary
        if row["model"] == "supervised"
        and row["database"] == "DSD100"
        and row["source"] == "voice"
        and row["metric"] == "SDR"
    ][0]
    assert (float(dsd_sdr["mean"]), dsd_sdr["num_defined"], dsd_sdr["num_undefined"]) == (3.0, "1", "1")

    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    with open(paths[0]) as handle:
        content = json.loads(handle.read(), parse_constant=reject)
    assert set(content) == {"columns", "per_song", "summary", "undefined_counts"}
    assert set(Results.per_song_columns(Metrics.METRICS)) <= set(content["columns"])
    assert "SDR_v4" not in content["columns"] and "SDR_v4" not in content["per_song"][0]
    assert content["undefined_counts"]["semi-supervised"]["all"]["voice"]["SDR"] == 1
    assert {row["SDR"] for row in content["per_song"]} == {3.0, None, 7.5, "inf"}
    with open(paths[3], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".tmp")]
    assert not os.path.exists(Results.museval_dir(str(tmp_path / "out")))

    table = Results.format_results_table(results)
    assert "supervised" in table and "semi-supervised" in table and "iKala" in table
    assert "SNR" in table and "NSNR" in table and "SI_SDR" in table
    assert "_v4" not in table


# ---- BSS Eval v4 columns and museval's per-track JSON ----


def stationary_sources(seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(4) / 4, mode="same") * 0.2
    chord = 0.3 * np.sin(2 * np.pi * (220 + 10 * seed) * t) + 0.2 * np.sin(2 * np.pi * 330 * t + 1.0)
    return np.stack([noise, chord]).astype(np.float32)


def evaluated_rows(folder, model, songs, bss_eval=("v3", "v4")):
    """Per-song rows as Evaluate makes them, for songs ``[(database, song, references [2, samples],
    noise level)]``: the estimates are the references plus white noise."""
    rows = []
    for index, (database, song, references, noise) in enumerate(songs):
        paths = tuple(
            write_wav(os.path.join(folder, database, song, f"{name}.wav"), audio, SR)
            for name, audio in zip(("accompaniment", "voice"), references)
        )
        estimates = references + noise * np.random.default_rng(index).standard_normal(references.shape)
        job = Evaluate.SongJob(
            index=index,
            model=model,
            database=database,
            song=song,
            source_names=("accompaniment", "voice"),
            source_paths=tuple(None if not np.any(ref) else path for ref, path in zip(references, paths)),
            mixture=references.sum(axis=0),
            sample_rate=SR,
            bss_eval=tuple(bss_eval),
            estimates={"accompaniment": estimates[0].astype(np.float32), "voice": estimates[1].astype(np.float32)},
        )
        rows += Evaluate.evaluate_song(job)
    return rows


def three_songs():
    """A normal song, one whose voice starts after 2 s, and one without voice (database B)."""
    late_voice, no_voice = stationary_sources(5.0, 2), stationary_sources(4.0, 3)
    late_voice[1, : 2 * SR] = 0.0
    no_voice[1] = 0.0
    return [
        ("A", "one", stationary_sources(6.0, 1), 0.02),
        ("A", "late voice", late_voice, 0.05),
        ("B", "no voice", no_voice, 0.02),
    ]


@pytest.fixture(scope="module")
def v4_results(tmp_path_factory):
    """``{model: rows}`` of two models on :func:`three_songs`, and the folder their results went to."""
    folder = tmp_path_factory.mktemp("v4")
    songs = three_songs()
    results = {
        "supervised": evaluated_rows(str(folder / "audio"), "supervised", songs),
        "semi-supervised": evaluated_rows(
            str(folder / "audio"), "semi-supervised", [song[:3] + (song[3] / 2,) for song in songs]
        ),
    }
    Results.write_results(results, str(folder / "out"))
    return results, folder / "out"


def test_v4_columns_and_frame_counts_are_in_every_file_and_the_table(v4_results):
    results, out = v4_results
    with open(out / "per_song.csv", newline="") as handle:
        per_song = list(csv.DictReader(handle))
    assert tuple(per_song[0]) == Results.PER_SONG_COLUMNS  # both versions: every column
    rows = {(row["model"], row["song"], row["source"]): row for row in per_song}
    late = rows[("supervised", "late voice", "voice")]
    # 5 frames; the 2 without voice are undefined for both sources (museval's rule), left out.
    assert (late["frames_v4"], late["undefined_frames_v4"]) == ("5", "2")
    assert rows[("supervised", "late voice", "accompaniment")]["undefined_frames_v4"] == "2"
    silent = rows[("supervised", "no voice", "voice")]
    assert silent["SDR_v4"] == "" and silent["undefined_frames_v4"] == silent["frames_v4"] == "4"
    assert "SDR_v4" in silent["undefined_metrics"] and silent["undefined_reason"] == "silent reference"
    assert float(rows[("supervised", "one", "voice")]["SDR_v4"]) > 10

    with open(out / "summary.csv", newline="") as handle:
        summary = {(row["model"], row["database"], row["source"], row["metric"]): row for row in csv.DictReader(handle)}
    voice = summary[("supervised", "all", "voice", "SDR_v4")]
    assert (voice["num_defined"], voice["num_undefined"]) == ("2", "1")
    defined = [row["SDR_v4"] for row in results["supervised"] if row["source"] == "voice"][:2]
    assert float(voice["median"]) == pytest.approx(np.median(defined), rel=1e-5)
    assert float(voice["mean"]) == pytest.approx(np.mean(defined), rel=1e-5)

    with open(out / "results.json") as handle:
        content = json.load(handle)
    assert {"SDR_v4", "ISR_v4", "frames_v4", "undefined_frames_v4"} <= set(content["columns"])
    assert "8192 Hz" in content["columns"]["SDR_v4"] and "44.1 kHz" in content["columns"]["SDR_v4"]
    assert content["undefined_counts"]["supervised"]["all"]["voice"]["SDR_v4"] == 1
    assert "framewise_v4" not in content["per_song"][0]

    table = Results.format_results_table(results)
    assert "SDR_v4" in table and "ISR_v4" in table and "SI_SDR" in table
    # Of 2 sources x (6 + 5 + 4) frames: 2 + 2 (late voice) and 4 (the silent voice's) undefined.
    assert "  supervised: 8 of 30 1-s frames" in table


def test_museval_json_is_valid_in_museval_layout_and_museval_aggregates_it_to_our_medians(v4_results):
    import museval
    import simplejson
    from jsonschema import validate

    results, out = v4_results
    folder = out / "museval" / "supervised"
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*.json"))
    assert files == ["test/A/late voice.json", "test/A/one.json", "test/B/no voice.json"]
    with open(os.path.join(museval.__path__[0], "musdb.schema.json")) as handle:
        schema = simplejson.load(handle)
    with open(folder / "test" / "A" / "one.json") as handle:
        track = simplejson.load(handle)
    validate(track, schema)
    assert [target["name"] for target in track["targets"]] == ["accompaniment", "vocals"]  # SiSEC's names
    assert [frame["time"] for frame in track["targets"][0]["frames"]] == [0, 1, 2, 3, 4, 5]
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]

    store = museval.EvalStore()  # museval's own loader and aggregation (median over frames, then tracks)
    store.add_eval_dir(str(folder))
    scores = store.agg_frames_tracks_scores()
    summary = {
        (row["source"], row["metric"]): row["median"]
        for row in Results.summarise(results)
        if row["model"] == "supervised" and row["database"] == "all"
    }
    for source, target in (("accompaniment", "accompaniment"), ("voice", "vocals")):
        for metric in Metrics.MUSEVAL_METRICS:
            ours = summary[(source, metric + "_v4")]
            # museval stores values rounded to 1e-5 dB.
            assert float(scores[(target, metric)]) == pytest.approx(ours, abs=1e-4), (source, metric)

    methods = museval.MethodStore()
    for model in ("supervised", "semi-supervised"):
        methods.add_eval_dir(str(out / "museval" / model))
    by_method = methods.agg_frames_tracks_scores()
    assert set(by_method.index.get_level_values("method")) == {"supervised", "semi-supervised"}
    assert float(by_method[("supervised", "vocals", "SDR")]) == pytest.approx(summary[("voice", "SDR_v4")], abs=1e-4)


def test_v4_only_rows_leave_the_v3_columns_out(tmp_path):
    results = {"m": evaluated_rows(str(tmp_path / "audio"), "m", three_songs()[:1], bss_eval=["v4"])}

    paths = Results.write_results(results, str(tmp_path / "out"))

    with open(paths[1], newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == Results.per_song_columns(Metrics.METRICS_V4)
    assert "SDR" not in header and "SI_SDR" not in header and "frames_v4" in header
    with open(paths[2], newline="") as handle:
        assert {row["metric"] for row in csv.DictReader(handle)} == set(Metrics.METRICS_V4)
    with open(paths[0]) as handle:
        content = json.load(handle)
    assert "SDR" not in content["columns"] and "SDR" not in content["per_song"][0]
    assert "NSDR" not in Results.format_results_table(results)
    assert os.path.getsize(paths[3]) > 0  # the box plot shows SDR_v4
    assert (tmp_path / "out" / "museval" / "m" / "test" / "A" / "one.json").is_file()


def _full_disk_for(monkeypatch, name):
    """Make ``os.fsync`` fail with ENOSPC for the temporary file of ``name`` (a simulated full disk)."""
    import errno

    fsync = os.fsync

    def fail(fd):
        if f".{name}." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", fail)


def test_a_result_file_that_cannot_be_written_is_named_and_the_rest_is_kept(tmp_path, monkeypatch, caplog):
    from common import Utils

    results = {
        "supervised": [
            fake_row("supervised", "DSD100", f"song{i}", source, 3.0 + i)
            for i in range(2)
            for source in ("accompaniment", "voice")
        ]
    }
    out = tmp_path / "out"
    _full_disk_for(monkeypatch, "per_song.csv")

    with pytest.raises(
        Utils.OutputError,
        match=r"^Cannot write .*out/per_song\.csv: No space left on device "
        r"\(1 of 5 result writes failed; kept: results\.json, summary\.csv, "
        r"sdr_boxplot\.png;",
    ):
        Results.write_results(results, str(out))

    assert sorted(os.listdir(out)) == ["results.json", "sdr_boxplot.png", "summary.csv"]
    assert Results.format_results_table(results) in caplog.text  # the computed results are not lost
