"""Aggregates over songs, the printed table, and the result files of an evaluation.

- ``per_song.csv``: one row per model, song and source with :data:`PER_SONG_COLUMNS`:
  ``model``, ``database``, ``song``, ``source``, the six metrics above (dB, empty when
  undefined), ``undefined`` (True if any metric of the row is undefined), ``undefined_metrics``
  (names separated by ``;``), ``undefined_reason`` (why, ``;``-separated) and ``seconds``
  (song duration).
- ``summary.csv``: one row per model, database (``all`` = every test song), source and metric
  with :data:`SUMMARY_COLUMNS`: ``mean``, ``median`` (dB over the songs where the metric is
  defined; empty if none), ``num_defined``, ``num_undefined``.
- ``results.json``: ``{"columns": {...descriptions}, "per_song": [...], "summary": [...],
  "undefined_counts": {model: {database: {source: {metric: count}}}}}``; undefined values are
  ``null``, infinite ones the strings ``"inf"`` / ``"-inf"``.
- ``sdr_boxplot.png``: SDR per database and source, one box per model side by side.
"""

import csv
import logging
import math
import os
from typing import List, Mapping, Sequence

import numpy as np

import Utils
from Metrics import METRICS

LOGGER = logging.getLogger(__name__)

PER_SONG_COLUMNS = ("model", "database", "song", "source") + METRICS + (
    "undefined", "undefined_metrics", "undefined_reason", "seconds")
SUMMARY_COLUMNS = ("model", "database", "source", "metric", "mean", "median", "num_defined", "num_undefined")
ALL_DATABASES = "all"
COLUMN_DESCRIPTIONS = {
    "model": "model name (e.g. supervised, semi-supervised)",
    "database": "database of the song; 'all' in summaries means every song",
    "song": "song name",
    "source": "separated source (e.g. accompaniment, voice)",
    "SDR": "signal to distortion ratio, dB (BSS Eval v3, mir_eval bss_eval_sources, no permutation)",
    "SIR": "signal to interference ratio, dB",
    "SAR": "signal to artefacts ratio, dB",
    "NSDR": "SDR minus the SDR of the mixture used as estimate, dB",
    "NSIR": "SIR minus the SIR of the mixture used as estimate, dB",
    "SNR": "scale-optimal SNR 10 log10(|r|^2 / |r - a e|^2), a = <e,r>/<e,e> (the reference's), dB",
    "NSNR": "SNR minus the SNR of the mixture used as estimate, dB",
    "SI_SDR": "scale-invariant SDR 10 log10(|a r|^2 / |a r - e|^2), a = <e,r>/<r,r>, dB",
    "undefined": "True if any metric of the row is undefined (NaN / null / empty)",
    "undefined_metrics": "';'-separated names of the undefined metrics",
    "undefined_reason": "';'-separated reasons (silent reference, silent estimate, ...)",
    "seconds": "song duration in seconds",
    "metric": "metric name (one of the metric columns above)",
    "mean": "mean over songs where the metric is defined, dB (null if none)",
    "median": "median over songs where the metric is defined, dB (null if none)",
    "num_defined": "songs with a defined value",
    "num_undefined": "songs where the metric is undefined (left out of mean and median)",
}


def summarise(results_by_model: Mapping[str, Sequence[dict]]) -> List[dict]:
    """Mean and median per model, database (and ``all``), source and metric.

    Args:
        results_by_model: ``{model name: per-song rows}``, e.g. ``{"supervised": rows,
            "semi-supervised": rows}``; the key becomes the ``model`` column.

    Returns:
        Rows with :data:`SUMMARY_COLUMNS`. ``mean`` / ``median`` are in dB over the songs
        where the metric is defined (``None`` if there are none); undefined values are counted
        in ``num_undefined`` and left out.
    """
    summary = []
    for model, rows in results_by_model.items():
        for database in _databases(rows):
            for source in _sources(rows):
                selected = [row for row in rows if row["source"] == source
                            and database in (ALL_DATABASES, row["database"])]
                if not selected:
                    continue
                for metric in METRICS:
                    values = np.array([row[metric] for row in selected], dtype=np.float64)
                    defined = values[~np.isnan(values)]
                    summary.append({"model": model, "database": database, "source": source, "metric": metric,
                                    "mean": float(np.mean(defined)) if defined.size else None,
                                    "median": _median(defined) if defined.size else None,
                                    "num_defined": int(defined.size),
                                    "num_undefined": int(values.size - defined.size)})
    return summary


def _median(values):
    """Median that keeps infinite values (np.median turns a middle pair with inf into NaN)."""
    ordered = np.sort(values)
    middle = len(ordered) // 2
    return float(ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2)


def _databases(rows):
    """``all`` followed by the rows' databases, sorted."""
    return [ALL_DATABASES] + sorted({row["database"] for row in rows})


def _sources(rows):
    """Source names in order of first appearance."""
    return list(dict.fromkeys(row["source"] for row in rows))


def format_results_table(results_by_model: Mapping[str, Sequence[dict]],
                         metrics: Sequence[str] = METRICS) -> str:
    """A plain-text table: database, source and metric rows; per model mean, median, n, undefined.

    Args:
        results_by_model: ``{model name: per-song rows}`` (see :func:`summarise`).
        metrics: metric names to show, in this order.

    Returns:
        The table as one string (no trailing newline), models side by side.
    """
    summary = summarise(results_by_model)
    models = list(results_by_model)
    cells = {(row["model"], row["database"], row["source"], row["metric"]): row for row in summary}
    databases = [ALL_DATABASES] + sorted({row["database"] for row in summary} - {ALL_DATABASES})
    sources = _sources(summary)
    keys = sorted({(row["database"], row["source"], row["metric"]) for row in summary if row["metric"] in metrics},
                  key=lambda key: (databases.index(key[0]), sources.index(key[1]), list(metrics).index(key[2])))
    label_widths = [max([len(header)] + [len(str(key[i])) for key in keys])
                    for i, header in enumerate(("database", "source", "metric"))]
    cell_width = 30
    lines = ["BSS Eval results in dB: mean and median over songs; n = songs with a defined value, "
             "undef = songs where it is undefined (e.g. a silent reference), left out.",
             _join_labels(("", "", ""), label_widths) + "".join(f"  {model:>{cell_width}}" for model in models),
             _join_labels(("database", "source", "metric"), label_widths)
             + "".join(f"  {'mean':>8} {'median':>8} {'n':>5} {'undef':>6}" for _ in models)]
    previous_database = None
    for database, source, metric in keys:
        if previous_database is not None and database != previous_database:
            lines.append("")
        previous_database = database
        line = _join_labels((database, source, metric), label_widths)
        for model in models:
            row = cells.get((model, database, source, metric))
            line += "  " + (_format_cell(row) if row else f"{'-':>{cell_width}}")
        lines.append(line)
    return "\n".join(lines)


def _join_labels(labels, widths):
    return "  ".join(f"{label:<{width}}" for label, width in zip(labels, widths))


def _format_cell(row):
    def number(value):
        return f"{'-':>8}" if value is None else f"{value:8.2f}"

    return f"{number(row['mean'])} {number(row['median'])} {row['num_defined']:5d} {row['num_undefined']:6d}"


def write_results(results_by_model: Mapping[str, Sequence[dict]], out_dir: str) -> List[str]:
    """Write ``results.json``, ``per_song.csv``, ``summary.csv`` and ``sdr_boxplot.png``.

    Columns and layouts are described in the module docstring; every file is written
    atomically. The dict keys of ``results_by_model`` become the ``model`` column.

    Returns:
        The written file paths.
    """
    per_song = [dict(row, model=model) for model, rows in results_by_model.items() for row in rows]
    summary = summarise(results_by_model)
    paths = [os.path.join(out_dir, name) for name in ("results.json", "per_song.csv", "summary.csv",
                                                       "sdr_boxplot.png")]
    Utils.atomic_write_json(paths[0], {
        "columns": COLUMN_DESCRIPTIONS,
        "per_song": [{key: _json_value(row[key]) for key in PER_SONG_COLUMNS} for row in per_song],
        "summary": [{key: _json_value(row[key]) for key in SUMMARY_COLUMNS} for row in summary],
        "undefined_counts": _undefined_counts(summary)})
    _write_csv(paths[1], PER_SONG_COLUMNS, per_song)
    _write_csv(paths[2], SUMMARY_COLUMNS, summary)
    _write_sdr_boxplot(paths[3], results_by_model)
    LOGGER.info("Wrote results to %s", out_dir)
    return paths


def _json_value(value):
    """JSON has no NaN or infinity: NaN (undefined) -> null, +-inf -> "inf" / "-inf"."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    return value


def _undefined_counts(summary):
    counts = {}
    for row in summary:
        counts.setdefault(row["model"], {}).setdefault(row["database"], {}).setdefault(
            row["source"], {})[row["metric"]] = row["num_undefined"]
    return counts


def _write_csv(path, columns, rows):
    with Utils.atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row[column]) for column in columns])


def _csv_value(value):
    """Undefined (NaN / None) -> empty cell; floats with 6 significant digits."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return value


def _write_sdr_boxplot(path, results_by_model):
    """Box plot of finite SDR values: one panel per source, databases on x, a box per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [row for model_rows in results_by_model.values() for row in model_rows]
    sources = _sources(rows)
    databases = sorted({row["database"] for row in rows})
    if len(databases) > 1:
        databases.append(ALL_DATABASES)
    models = list(results_by_model)
    figure = Figure(figsize=(max(6.0, 1.6 * len(databases) * len(models)), 4.0 * max(len(sources), 1)))
    FigureCanvasAgg(figure)
    width = 0.8 / max(len(models), 1)
    for panel, source in enumerate(sources or [""]):
        axes = figure.add_subplot(max(len(sources), 1), 1, panel + 1)
        for index, model in enumerate(models):
            data, positions = [], []
            for group, database in enumerate(databases):
                values = [row["SDR"] for row in results_by_model[model] if row["source"] == source
                          and database in (ALL_DATABASES, row["database"]) and math.isfinite(row["SDR"])]
                if values:
                    data.append(values)
                    positions.append(group + (index - (len(models) - 1) / 2) * width)
            if data:
                boxes = axes.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                                     manage_ticks=False, medianprops={"color": "black"})
                colour = f"C{index}"
                for box in boxes["boxes"]:
                    box.set_facecolor(colour)
                    box.set_alpha(0.6)
                axes.plot([], [], color=colour, linewidth=8, alpha=0.6, label=model)
        axes.set_xticks(range(len(databases)))
        axes.set_xticklabels(databases)
        axes.set_xlim(-0.6, len(databases) - 0.4)
        axes.set_ylabel("SDR (dB)")
        axes.set_title(f"SDR of {source}" if source else "SDR")
        axes.grid(axis="y", alpha=0.3)
        if models:
            axes.legend(loc="best")
    figure.tight_layout()
    with Utils.atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
