"""The results to paste into a paper: the headline table and the paired gain, as files and as
the short text the experiment prints.

Written beside Results.py's files, in ``<results_dir>/<experiment_id>/``:

- ``headline.md`` and ``headline.tex``: per database (``all`` = every test song first, then the
  databases in alphabetical order), source and metric, the mean and median over songs (dB) of
  each model side by side, with the songs counted per model as ``defined/total`` (a metric is
  undefined for a song with a silent reference, see Metrics.py). The metrics are BSS Eval v3's
  SDR, SIR and SAR (the paper's); with v3 switched off, v4's. The LaTeX file is a booktabs
  ``tabular`` to ``\\input`` inside a ``table`` (needs ``\\usepackage{booktabs}``).
- ``gain.json`` and ``gain.txt``: the paired gain of one model over the other
  (Comparison.gain_table: per database and source, mean difference per song and its crossed
  bootstrap interval); the text file holds the lines the experiment prints.
- ``full_table.txt``: the long table of every metric (Results.format_results_table), which the
  terminal leaves out.
"""

import math
import os
import textwrap
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from common import Utils
from evaluation import Comparison, Results
from evaluation.Metrics import METRICS_V4

HEADLINE_METRICS = {"v3": ("SDR", "SIR", "SAR"), "v4": ("SDR_v4", "SIR_v4", "SAR_v4")}
VERSION_NOTES = {
    "v3": "BSS Eval v3 (mir_eval, the paper's, over the whole song)",
    "v4": "BSS Eval v4 (museval, SiSEC 2018's convention): per song the median over its 1-s frames; " + Results.V4_NOTE,
}
FILE_NAMES = {
    "markdown": "headline.md",
    "latex": "headline.tex",
    "gain_json": "gain.json",
    "gain_text": "gain.txt",
    "full_table": "full_table.txt",
}
_MARKDOWN_SPECIAL = "\\`*_|<>[]#"
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


class HeadlineOutput(NamedTuple):
    """What :func:`write_headline` made: the text to print and the paths of the written files."""

    text: str
    paths: List[str]


def headline_version(results_by_model: Mapping[str, Sequence[dict]]) -> Optional[str]:
    """The BSS Eval version of the headline table: ``"v3"`` if the rows have it, else ``"v4"``,
    else None (no metric of either)."""
    metrics = Results.present_metrics(results_by_model)
    for version, names in HEADLINE_METRICS.items():
        if any(name in metrics for name in names):
            return version
    return None


def headline_rows(results_by_model: Mapping[str, Sequence[dict]]) -> List[dict]:
    """The headline table as data, one row per database, source and metric.

    Args:
        results_by_model: ``{model name: per-song rows}`` (Results.PER_SONG_COLUMNS).

    Returns:
        Rows ``{"database", "source", "metric", "cells": {model: {"mean", "median", "defined",
        "total"}}}`` in table order (``all`` first, then the databases sorted; sources in order of
        appearance; SDR, SIR, SAR of :func:`headline_version`). ``mean`` / ``median`` are dB over
        the ``defined`` songs (None if none), ``total`` counts the model's songs of that
        database and source; a model without such songs has no cell.
    """
    version = headline_version(results_by_model)
    if version is None:
        return []
    metrics = [name for name in HEADLINE_METRICS[version] if name in Results.present_metrics(results_by_model)]
    cells: Dict[Tuple[str, str, str], Dict[str, dict]] = {}
    for row in Results.summarise(results_by_model):
        if row["metric"] in metrics:
            cells.setdefault((row["database"], row["source"], row["metric"]), {})[row["model"]] = {
                "mean": row["mean"],
                "median": row["median"],
                "defined": row["num_defined"],
                "total": row["num_defined"] + row["num_undefined"],
            }
    databases = list(dict.fromkeys(database for database, _, _ in cells))  # summarise's order: all, then sorted
    sources = list(dict.fromkeys(source for _, source, _ in cells))
    keys = sorted(cells, key=lambda key: (databases.index(key[0]), sources.index(key[1]), metrics.index(key[2])))
    return [
        {"database": database, "source": source, "metric": metric, "cells": cells[(database, source, metric)]}
        for database, source, metric in keys
    ]


def _title(version: str) -> str:
    """What the headline table's numbers are, in two sentences."""
    return (
        f"{VERSION_NOTES[version]}. Mean and median in dB over the songs where the metric is defined; "
        "songs = defined/total (a silent reference leaves a metric undefined)."
    )


def _metric_label(metric: str) -> str:
    """``SDR_v4`` -> ``SDR``: the table's title names the version."""
    return metric[: -len("_v4")] if metric in METRICS_V4 else metric


def _number(value: Optional[float], style: str) -> str:
    """A dB value with two decimals; ``-`` (LaTeX ``--``) when undefined, infinities spelt out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--" if style == "latex" else "-"
    if math.isinf(value):
        if style == "latex":
            return r"$\infty$" if value > 0 else r"$-\infty$"
        return "inf" if value > 0 else "-inf"
    text = f"{value:.2f}"
    if style == "latex" and text.startswith("-"):
        return f"${text}$"  # a minus sign, not a hyphen
    return text


def _songs(cell: dict) -> str:
    return f"{cell['defined']}/{cell['total']}"


def escape_latex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``_`` -> ``\\_``, ``&`` -> ``\\&``, ...)."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


def escape_markdown(text: str) -> str:
    """``text`` with Markdown's active characters (``|``, ``_``, ``*``, ...) backslash-escaped."""
    return "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in str(text))


def _models(rows: Sequence[dict]) -> List[str]:
    return list(dict.fromkeys(model for row in rows for model in row["cells"]))


def format_markdown(results_by_model: Mapping[str, Sequence[dict]]) -> str:
    """The headline table as Markdown: a sentence on what it holds, then a pipe table with the
    columns database, source, metric and, per model, mean, median and songs (empty string if no
    row has SDR/SIR/SAR)."""
    rows = headline_rows(results_by_model)
    if not rows:
        return ""
    models = _models(rows)
    header = ["database", "source", "metric"] + [
        f"{model} {column}" for model in models for column in ("mean", "median", "songs")
    ]
    lines = [
        escape_markdown(_title(headline_version(results_by_model))),
        "",
        "| " + " | ".join(escape_markdown(name) for name in header) + " |",
        "| " + " | ".join(["---"] * 3 + ["---:"] * 3 * len(models)) + " |",
    ]
    for row in rows:
        values = [row["database"], row["source"], _metric_label(row["metric"])]
        for model in models:
            cell = row["cells"].get(model)
            values += (
                [_number(cell["mean"], "text"), _number(cell["median"], "text"), _songs(cell)] if cell else ["", "", ""]
            )
        lines.append("| " + " | ".join(escape_markdown(value) for value in values) + " |")
    return "\n".join(lines) + "\n"


def format_latex(results_by_model: Mapping[str, Sequence[dict]]) -> str:
    """The headline table as a booktabs ``tabular`` (``\\usepackage{booktabs}``), for ``\\input``
    inside the user's ``table``: a header with one column group per model (mean, median,
    songs), a ``\\midrule`` between databases, a database or source named on its first row only;
    comment lines above it say what the numbers are. Empty string if no row has SDR/SIR/SAR."""
    rows = headline_rows(results_by_model)
    if not rows:
        return ""
    models = _models(rows)
    lines = [f"% {line}" for line in textwrap.wrap(_title(headline_version(results_by_model)), 96)]
    lines += [
        "% Written by evaluation/Headline.py; needs \\usepackage{booktabs}.",
        r"\begin{tabular}{lll" + "rrr" * len(models) + "}",
        r"\toprule",
        " & & & " + " & ".join(rf"\multicolumn{{3}}{{c}}{{{escape_latex(model)}}}" for model in models) + r" \\",
        " ".join(rf"\cmidrule(lr){{{4 + 3 * index}-{6 + 3 * index}}}" for index in range(len(models))),
        "Database & Source & Metric & " + " & ".join(["Mean & Median & Songs"] * len(models)) + r" \\",
        r"\midrule",
    ]
    previous = (None, None)
    for row in rows:
        if previous[0] is not None and row["database"] != previous[0]:
            lines.append(r"\midrule")
        database = escape_latex(row["database"]) if row["database"] != previous[0] else ""
        source = escape_latex(row["source"]) if (row["database"], row["source"]) != previous else ""
        previous = (row["database"], row["source"])
        values = [database, source, escape_latex(_metric_label(row["metric"]))]
        for model in models:
            cell = row["cells"].get(model)
            values += (
                [_number(cell["mean"], "latex"), _number(cell["median"], "latex"), _songs(cell)]
                if cell
                else ["", "", ""]
            )
        lines.append(" & ".join(values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def format_short_table(results_by_model: Mapping[str, Sequence[dict]]) -> str:
    """The headline table as plain text for the terminal: one line per database, source and
    metric (``5 x 2 x 3 = 30`` for the paper's four databases; metrics named by their column,
    ``SDR_v4`` for v4), models side by side, a blank line between databases; with v4 (v3 off)
    the lines on undefined 1-s frames follow. Empty string if no row has SDR/SIR/SAR."""
    rows = headline_rows(results_by_model)
    if not rows:
        return ""
    models = _models(rows)
    labels = [(row["database"], row["source"], row["metric"]) for row in rows]  # SDR_v4 as in the gain lines
    widths = [
        max([len(header)] + [len(str(label[index])) for label in labels])
        for index, header in enumerate(("database", "source", "metric"))
    ]
    songs_width = max([len("songs")] + [len(_songs(cell)) for row in rows for cell in row["cells"].values()])
    cell_width = 7 + 1 + 7 + 2 + songs_width
    group_widths = [max(cell_width, len(model)) for model in models]

    def labels_text(values):
        return "  ".join(f"{value:<{width}}" for value, width in zip(values, widths))

    lines = textwrap.wrap(_title(headline_version(results_by_model)), 100)
    lines.append(
        labels_text(("", "", "")) + "".join(f"  {model:>{width}}" for model, width in zip(models, group_widths))
    )
    lines.append(
        labels_text(("database", "source", "metric"))
        + "".join(
            f"  {'mean':>{width - 8 - 2 - songs_width}} {'median':>7}  {'songs':>{songs_width}}"
            for width in group_widths
        )
    )
    previous = (None, None)
    for row, label in zip(rows, labels):
        if previous[0] is not None and row["database"] != previous[0]:
            lines.append("")
        shown = (
            label[0] if row["database"] != previous[0] else "",
            label[1] if (row["database"], row["source"]) != previous else "",
            label[2],
        )
        previous = (row["database"], row["source"])
        line = labels_text(shown)
        for model, width in zip(models, group_widths):
            cell = row["cells"].get(model)
            line += (
                f"  {_number(cell['mean'], 'text'):>{width - 8 - 2 - songs_width}} "
                f"{_number(cell['median'], 'text'):>7}  {_songs(cell):>{songs_width}}"
                if cell
                else f"  {'-':>{width}}"
            )
        lines.append(line.rstrip())
    if headline_version(results_by_model) == "v4":
        lines += [""] + Results.v4_frame_lines(results_by_model)
    return "\n".join(lines)


def gain_document(gains: Sequence[dict], metric: str, model: str, baseline: str, confidence: float = 0.95) -> dict:
    """``gain.json``'s content: what was compared and one entry per row of Comparison.gain_table.

    Returns:
        ``{"metric", "unit", "model", "baseline", "confidence", "method", "rows": [{"database",
        "source", "metric", "mean", "interval": [low, high], "songs", "seeds"}]}``; dB, and
        ``null`` where a value is undefined (no song with a defined difference).
    """
    return {
        "metric": metric,
        "unit": "dB",
        "model": model,
        "baseline": baseline,
        "confidence": confidence,
        "method": f"{metric} of the {model} model minus that of the {baseline} model per test song (and "
        "seed), averaged; percentile bootstrap interval resampling songs and seeds independently; "
        "'all' pools every database",
        "rows": [
            {
                "database": row["database"],
                "source": row["source"],
                "metric": metric,
                "mean": Results.json_value(row["mean"]),
                "interval": [Results.json_value(row["low"]), Results.json_value(row["high"])],
                "songs": int(row["songs"]),
                "seeds": int(row["seeds"]),
            }
            for row in gains
        ],
    }


def write_headline(
    results_by_model: Mapping[str, Sequence[dict]],
    out_dir: str,
    gains: Optional[Sequence[dict]] = None,
    gain_metric: str = "SDR",
    model: str = "semi-supervised",
    baseline: str = "supervised",
    confidence: float = 0.95,
) -> HeadlineOutput:
    """Write the headline table, the long table and (given ``gains``) the gain files into
    ``out_dir``, atomically, and return the text to print.

    Args:
        results_by_model: ``{model name: per-song rows}``, as for Results.write_results.
        out_dir: folder of the files (Results.write_results's).
        gains: rows of Comparison.gain_table of ``model`` over ``baseline`` (None: no gain, e.g.
            when one model is evaluated).
        gain_metric: the metric of ``gains`` (Comparison.gain_metric).
        model, baseline: the compared models' names, as in the printed gain lines.
        confidence: the level of the gains' bootstrap interval.

    Returns:
        The text: the short table (:func:`format_short_table`), the gain lines over every test
        song, and a last line naming the long table's file and the folder's files; and the paths
        written (:data:`FILE_NAMES`, the gain files only with ``gains``).
    """
    paths = {key: os.path.join(out_dir, name) for key, name in FILE_NAMES.items()}
    written = []
    contents = {
        "markdown": format_markdown(results_by_model),
        "latex": format_latex(results_by_model),
        "full_table": Results.format_results_table(results_by_model) + "\n",
    }
    parts = [format_short_table(results_by_model)]
    if gains is not None:
        gain_lines = Comparison.format_gain_lines(gains, gain_metric, model=model, baseline=baseline)
        contents["gain_text"] = gain_lines + "\n"
        parts.append(gain_lines)
        Utils.atomic_write_json(paths["gain_json"], gain_document(gains, gain_metric, model, baseline, confidence))
        written.append(paths["gain_json"])
    for key, text in contents.items():
        if text.strip():
            with Utils.atomic_write(paths[key], "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(paths[key])
    files = sorted(
        name for name in os.listdir(out_dir) if not name.startswith(".") and os.path.isfile(os.path.join(out_dir, name))
    )
    folders = sorted(name + "/" for name in os.listdir(out_dir) if os.path.isdir(os.path.join(out_dir, name)))
    parts.append(
        f"The full table of every metric is in {paths['full_table']}; the files in {out_dir}: "
        + ", ".join(files + folders)
        + "."
    )
    return HeadlineOutput("\n\n".join(part for part in parts if part), written)
