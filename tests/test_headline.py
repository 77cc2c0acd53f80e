"""Headline.py: the headline table (Markdown, LaTeX, terminal), the gain files and the printed text."""

import json
import math
import os
import re

import pytest

from evaluation import Comparison, Headline, Results

from tiny_model import fake_row

DATABASES = ("CCMixter", "DSD100", "MedleyDB", "iKala")
SOURCES = ("accompaniment", "voice")
MODELS = {"supervised": 0.0, "semi-supervised": 1.25}  # semi-supervised: 1.25 dB above on every song


def paper_results(songs=5):
    """The paper's shape: 4 databases x 2 sources x 2 models. Song i of database d scores
    SDR = i + d/10 (+ the model's offset), SIR = SDR + 1, SAR = SDR + 2 (fake_row); MedleyDB's
    song0 has no voice (every metric of that row undefined)."""
    results = {}
    for model, offset in MODELS.items():
        rows = []
        for index, database in enumerate(DATABASES):
            for song in range(songs):
                for source in SOURCES:
                    sdr = song + index / 10 + offset
                    if database == "MedleyDB" and song == 0 and source == "voice":
                        sdr = math.nan
                    rows.append(fake_row(model, database, f"song{song}", source, sdr))
        results[model] = rows
    return results


def markdown_rows(text):
    """The Markdown table's data rows as lists of cells (header and alignment row left out)."""
    table = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table[2:]]


def latex_rows(text):
    """The tabular's data rows (between the header's \\midrule and \\bottomrule) as lists of cells,
    each database and source label carried down to the rows that leave it blank."""
    lines = text.splitlines()
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    rows, carried = [], ["", ""]
    for line in body:
        if line == r"\midrule":
            continue
        assert line.endswith(r" \\"), line
        cells = [cell.strip() for cell in line[: -len(r" \\")].split(" & ")]
        carried = [cells[0] or carried[0], cells[1] or (carried[1] if not cells[0] else "")]
        rows.append(carried + cells[2:])
    return rows


def test_markdown_table_has_both_models_values_and_song_counts(tmp_path):
    output = Headline.write_headline(paper_results(), str(tmp_path))
    with open(tmp_path / "headline.md", encoding="utf-8") as handle:
        text = handle.read()
    assert str(tmp_path / "headline.md") in output.paths
    assert text.startswith("BSS Eval v3") and "defined/total" in text
    header = [line for line in text.splitlines() if line.startswith("|")][0]
    assert [cell.strip() for cell in header.strip("|").split(" | ")] == [
        "database",
        "source",
        "metric",
        "supervised mean",
        "supervised median",
        "supervised songs",
        "semi-supervised mean",
        "semi-supervised median",
        "semi-supervised songs",
    ]
    rows = markdown_rows(text)
    assert len(rows) == (1 + len(DATABASES)) * len(SOURCES) * 3
    assert [row[:3] for row in rows[:6]] == [
        ["all", source, metric] for source in SOURCES for metric in ("SDR", "SIR", "SAR")
    ]
    by_key = {tuple(row[:3]): row[3:] for row in rows}
    # DSD100 (index 1): SDR of songs 0..4 is 0.1 ... 4.1, mean = median = 2.1; semi-supervised +1.25.
    assert by_key[("DSD100", "accompaniment", "SDR")] == ["2.10", "2.10", "5/5", "3.35", "3.35", "5/5"]
    assert by_key[("DSD100", "voice", "SAR")] == ["4.10", "4.10", "5/5", "5.35", "5.35", "5/5"]
    # MedleyDB's voice: song0 undefined, so 4 of 5 songs, SDR 1.2 ... 4.2.
    assert by_key[("MedleyDB", "voice", "SDR")] == ["2.70", "2.70", "4/5", "3.95", "3.95", "4/5"]
    assert by_key[("all", "voice", "SIR")][2::3] == ["19/20", "19/20"]
    assert by_key[("all", "accompaniment", "SDR")][2::3] == ["20/20", "20/20"]
    assert not any(metric in text for metric in ("NSDR", "SI\\_SDR", "SNR"))  # the headline only


def test_latex_table_is_a_booktabs_tabular_with_the_same_numbers(tmp_path):
    Headline.write_headline(paper_results(), str(tmp_path))
    with open(tmp_path / "headline.tex", encoding="utf-8") as handle:
        text = handle.read()
    lines = text.splitlines()
    assert all(line.startswith("%") for line in lines[: lines.index(r"\begin{tabular}{lllrrrrrr}")])
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"] and r"\toprule" in lines
    assert r"\multicolumn{3}{c}{supervised} & \multicolumn{3}{c}{semi-supervised} \\" in text
    assert r"\cmidrule(lr){4-6} \cmidrule(lr){7-9}" in lines
    assert "Database & Source & Metric & Mean & Median & Songs & Mean & Median & Songs \\\\" in lines
    assert lines.count(r"\midrule") == 1 + len(DATABASES)  # below the header and between databases
    rows = latex_rows(text)
    assert len(rows) == (1 + len(DATABASES)) * len(SOURCES) * 3
    by_key = {tuple(row[:3]): row[3:] for row in rows}
    assert by_key[("DSD100", "accompaniment", "SDR")] == ["2.10", "2.10", "5/5", "3.35", "3.35", "5/5"]
    assert by_key[("MedleyDB", "voice", "SDR")] == ["2.70", "2.70", "4/5", "3.95", "3.95", "4/5"]
    assert by_key[("iKala", "voice", "SIR")][:2] == ["3.30", "3.30"]


def test_latex_and_markdown_escape_special_characters_and_write_minus_signs(tmp_path):
    results = {
        "sup_model": [
            fake_row("sup_model", "my_db & co", "s0", "lead_voice", -3.5),
            fake_row("sup_model", "my_db & co", "s1", "lead_voice", -1.5),
        ],
        "semi 50%": [
            fake_row("semi 50%", "my_db & co", "s0", "lead_voice", math.inf),
            fake_row("semi 50%", "my_db & co", "s1", "lead_voice", math.nan),
        ],
    }
    Headline.write_headline(results, str(tmp_path))
    latex = (tmp_path / "headline.tex").read_text(encoding="utf-8")
    table = latex[latex.index(r"\begin{tabular}") :]
    assert r"\multicolumn{3}{c}{sup\_model}" in table and r"\multicolumn{3}{c}{semi 50\%}" in table
    assert r"my\_db \& co & lead\_voice & SDR & $-2.50$ & $-2.50$ & 2/2 & $\infty$ & $\infty$ & 1/2 \\" in table
    for special in ("_", "%"):
        assert table.replace("\\" + special, "").count(special) == 0, special
    rows = [line for line in table.splitlines() if line.endswith(r" \\")]
    assert len(rows) == 2 + 6  # model names, column names, SDR, SIR, SAR of "all" and of my_db & co
    assert [re.sub(r"\\&", "", line).count("&") for line in rows] == [4] + [8] * 7  # 3 + 2 groups; 9 columns
    assert Headline.escape_latex(r"a_b&c%d$e#f{g}h~i^j\k") == (
        r"a\_b\&c\%d\$e\#f\{g\}h\textasciitilde{}i"
        r"\textasciicircum{}j\textbackslash{}k"
    )
    markdown = (tmp_path / "headline.md").read_text(encoding="utf-8")
    assert r"| my\_db & co | lead\_voice | SDR | -2.50 | -2.50 | 2/2 | inf | inf | 1/2 |" in markdown
    assert Headline.escape_markdown("a|b_c*d") == r"a\|b\_c\*d"


def test_gain_files_hold_the_gain_table_and_the_printed_lines(tmp_path):
    results = paper_results()
    gains = Comparison.gain_table([results["supervised"]], [results["semi-supervised"]], "SDR")
    output = Headline.write_headline(results, str(tmp_path), gains, "SDR")

    with open(tmp_path / "gain.json", encoding="utf-8") as handle:
        document = json.load(handle)
    assert {str(tmp_path / name) for name in ("gain.json", "gain.txt")} <= set(output.paths)
    assert (document["metric"], document["unit"], document["model"], document["baseline"], document["confidence"]) == (
        "SDR",
        "dB",
        "semi-supervised",
        "supervised",
        0.95,
    )
    assert len(document["rows"]) == (len(DATABASES) + 1) * len(SOURCES)
    assert all(
        set(row) == {"database", "source", "metric", "mean", "interval", "songs", "seeds"} for row in document["rows"]
    )
    rows = {(row["database"], row["source"]): row for row in document["rows"]}
    voice = rows[("all", "voice")]
    assert voice["metric"] == "SDR" and voice["mean"] == pytest.approx(1.25)
    assert voice["interval"] == pytest.approx([1.25, 1.25]) and (voice["songs"], voice["seeds"]) == (19, 1)
    assert rows[("MedleyDB", "voice")]["songs"] == 4 and rows[("DSD100", "accompaniment")]["songs"] == 5
    printed = Comparison.format_gain_lines(gains, "SDR")
    assert (tmp_path / "gain.txt").read_text(encoding="utf-8") == printed + "\n"
    assert printed in output.text and "voice: SDR +1.25 dB [+1.25, +1.25] over 19 songs" in output.text


def test_an_undefined_gain_is_null_in_the_json():
    gains = [
        {
            "database": "all",
            "source": "voice",
            "mean": math.nan,
            "low": math.nan,
            "high": math.nan,
            "songs": 0,
            "seeds": 2,
        }
    ]
    (row,) = Headline.gain_document(gains, "SDR_v4", "b", "a")["rows"]
    assert row == {
        "database": "all",
        "source": "voice",
        "metric": "SDR_v4",
        "mean": None,
        "interval": [None, None],
        "songs": 0,
        "seeds": 2,
    }


def test_the_terminal_shows_a_short_table_and_says_where_the_full_one_is(tmp_path):
    results = paper_results()
    gains = Comparison.gain_table([results["supervised"]], [results["semi-supervised"]], "SDR")
    Results.write_results(results, str(tmp_path))
    output = Headline.write_headline(results, str(tmp_path), gains, "SDR")

    short = Headline.format_short_table(results)
    full = Results.format_results_table(results)
    assert len(short.splitlines()) <= 40 < len(full.splitlines())
    assert len(output.text.splitlines()) <= 48
    assert output.text.startswith(short)
    lines = short.splitlines()
    header = next(line for line in lines if line.startswith("database"))
    assert header.split() == ["database", "source", "metric"] + ["mean", "median", "songs"] * 2
    assert lines[lines.index(header) - 1].split() == ["supervised", "semi-supervised"]
    medley_voice = next(line for line in lines if line.startswith("MedleyDB"))
    assert medley_voice.split() == ["MedleyDB", "accompaniment", "SDR", "2.20", "2.20", "5/5", "3.45", "3.45", "5/5"]
    assert "          voice          SDR        2.70    2.70    4/5     3.95    3.95    4/5" in lines
    where = output.text.splitlines()[-1]
    assert str(tmp_path / "full_table.txt") in where
    for name in ("headline.md", "headline.tex", "gain.json", "gain.txt", "summary.csv", "per_song.csv"):
        assert name in where
    assert (tmp_path / "full_table.txt").read_text(encoding="utf-8") == full + "\n"
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_with_v3_off_the_headline_shows_the_v4_metrics_and_one_model_has_no_gain_files(tmp_path):
    def v4_row(song, sdr):
        return {
            "model": "m",
            "database": "DSD100",
            "song": song,
            "source": "voice",
            "SDR_v4": sdr,
            "SIR_v4": sdr + 4,
            "SAR_v4": sdr + 2,
            "ISR_v4": sdr + 8,
            "frames_v4": 10,
            "undefined_frames_v4": 1,
        }

    results = {"my_model": [v4_row("a", 1.0), v4_row("b", 3.0)]}
    output = Headline.write_headline(results, str(tmp_path))

    assert Headline.headline_version(results) == "v4"
    assert sorted(os.path.basename(path) for path in output.paths) == ["full_table.txt", "headline.md", "headline.tex"]
    assert not (tmp_path / "gain.json").exists() and "gain" not in output.text.split("\n\n")[-2]
    markdown = (tmp_path / "headline.md").read_text(encoding="utf-8")
    assert markdown.startswith("BSS Eval v4") and "| DSD100 | voice | SIR | 6.00 | 6.00 | 2/2 |" in markdown
    assert "ISR" not in markdown and r"\_v4" not in markdown
    short = Headline.format_short_table(results)
    assert "SDR_v4" in short and "2 of 20 1-s frames" in short
