"""Results.py: the result files' columns, aggregates and the printed table."""

import csv
import json
import math
import os

import Results
from tiny_model import fake_row


def test_result_files_have_the_documented_columns(tmp_path):
    results = {name: [fake_row(name, database, f"song{i}", source, sdr)
                      for i, (database, sdr) in enumerate([("DSD100", 3.0), ("DSD100", math.nan), ("iKala", 7.5),
                                                           ("iKala", math.inf)])
                      for source in ("accompaniment", "voice")]
               for name in ("supervised", "semi-supervised")}

    paths = Results.write_results(results, str(tmp_path / "out"))

    assert [os.path.basename(path) for path in paths] == ["results.json", "per_song.csv", "summary.csv",
                                                          "sdr_boxplot.png"]
    with open(paths[1], newline="") as handle:
        per_song = list(csv.reader(handle))
    assert tuple(per_song[0]) == Results.PER_SONG_COLUMNS and len(per_song) == 1 + 16
    with open(paths[2], newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert tuple(summary[0]) == Results.SUMMARY_COLUMNS
    dsd_sdr = [row for row in summary if row["model"] == "supervised" and row["database"] == "DSD100"
               and row["source"] == "voice" and row["metric"] == "SDR"][0]
    assert (float(dsd_sdr["mean"]), dsd_sdr["num_defined"], dsd_sdr["num_undefined"]) == (3.0, "1", "1")

    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    with open(paths[0]) as handle:
        content = json.loads(handle.read(), parse_constant=reject)
    assert set(content) == {"columns", "per_song", "summary", "undefined_counts"}
    assert set(Results.PER_SONG_COLUMNS) <= set(content["columns"])
    assert content["undefined_counts"]["semi-supervised"]["all"]["voice"]["SDR"] == 1
    assert {row["SDR"] for row in content["per_song"]} == {3.0, None, 7.5, "inf"}
    with open(paths[3], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".tmp")]

    table = Results.format_results_table(results)
    assert "supervised" in table and "semi-supervised" in table and "iKala" in table
    assert "SNR" in table and "NSNR" in table and "SI_SDR" in table
