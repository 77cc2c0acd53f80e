"""Aggregates over songs, the printed table, and the result files of an evaluation.

- ``per_song.csv``: one row per model, song and source with the columns of
  :func:`per_song_columns` (:data:`PER_SONG_COLUMNS` when both BSS Eval versions ran):
  ``model``, ``database``, ``song``, ``source``, the metrics (dB, empty when undefined; BSS Eval
  v3 ``SDR`` ... ``SI_SDR`` and/or v4 ``SDR_v4`` ... ``ISR_v4``, see Metrics.py), with v4 the
  frame counts ``frames_v4`` and ``undefined_frames_v4``, then ``undefined`` (True if any metric of
  the row is undefined), ``undefined_metrics`` (names separated by ``;``), ``undefined_reason``
  (why, ``;``-separated) and ``seconds`` (song duration).
- ``summary.csv``: one row per model, database (``all`` = every test song), source and metric
  with :data:`SUMMARY_COLUMNS`: ``mean``, ``median`` (dB over the songs where the metric is
  defined; empty if none), ``num_defined``, ``num_undefined``. For the v4 metrics the per-song
  value is already the median over the song's 1-s frames, so ``median`` is museval's (and
  SiSEC 2018's) median over frames, then over tracks.
- ``results.json``: ``{"columns": {...descriptions}, "per_song": [...], "summary": [...],
  "undefined_counts": {model: {database: {source: {metric: count}}}}}``; undefined values are
  ``null``, infinite ones the strings ``"inf"`` / ``"-inf"``.
- ``sdr_boxplot.png``: SDR per database and source, one box per model side by side (SDR_v4
  when v3 was not computed).
- ``museval/<model>/<subset>/<database>/<song>.json`` (with v4): museval's own per-track JSON
  (``museval.TrackStore`` schema: every 1-s frame's SDR, SIR, SAR, ISR per target), in the
  layout museval's ``EvalStore().add_eval_dir`` and ``MethodStore().add_eval_dir`` read
  (``<folder>/test/**/*.json``; the method is named after the model folder, the track after
  the file). Targets are named the SiSEC way (:data:`SISEC_TARGET_NAMES`).

Which versions ran is read from the rows: a metric no row has is left out of every file and
of the printed table.
"""

import csv
import logging
import math
import os
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from common import Utils
from evaluation.Metrics import (
    ALL_METRICS,
    FRAMEWISE_V4,
    METRICS_V4,
    MUSEVAL_METRICS,
    V4_FRAME_COUNTS,
    V4_WINDOW_SECONDS,
    museval_module,
)

LOGGER = logging.getLogger(__name__)

_ROW_KEYS = ("model", "database", "song", "source")
_ROW_FLAGS = ("undefined", "undefined_metrics", "undefined_reason", "seconds")
PER_SONG_COLUMNS = _ROW_KEYS + ALL_METRICS + V4_FRAME_COUNTS + _ROW_FLAGS  # with both BSS Eval versions
# FRAMEWISE_V4 (Metrics): a per-song row key, not a column: museval's values per 1-s frame
MUSEVAL_FOLDER = "museval"
# Our source names -> SiSEC 2018's target names (MUSDB18's vocals/accompaniment task); others are kept.
SISEC_TARGET_NAMES = {"voice": "vocals", "accompaniment": "accompaniment"}
V4_NOTE = (
    "at the model's rate (8192 Hz) and mono, while SiSEC 2018 evaluated 44.1 kHz stereo: "
    "comparable with its results in method, not directly in value"
)
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
    "SDR_v4": "signal to distortion ratio, dB (BSS Eval v4, museval, the SiSEC 2018 convention: bss_eval_images, "
    "1-s windows and hops, median over the song's defined frames); " + V4_NOTE,
    "SIR_v4": "signal to interference ratio, dB (BSS Eval v4, as SDR_v4)",
    "SAR_v4": "signal to artefacts ratio, dB (BSS Eval v4, as SDR_v4)",
    "ISR_v4": "source image to spatial distortion ratio, dB (BSS Eval v4, as SDR_v4)",
    "frames_v4": "the song's 1-s BSS Eval v4 frames (a trailing part shorter than 1 s is not evaluated)",
    "undefined_frames_v4": "v4 frames left out of at least one of the row's v4 medians (museval gives NaN for a "
    "frame with an all-zero reference or estimate, or +-inf); all frames if the row's "
    "v4 metrics are undefined",
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
    metrics = present_metrics(results_by_model)
    for model, rows in results_by_model.items():
        for database in _databases(rows):
            for source in _sources(rows):
                selected = [
                    row for row in rows if row["source"] == source and database in (ALL_DATABASES, row["database"])
                ]
                for metric in metrics:
                    values = np.array([row[metric] for row in selected if metric in row], dtype=np.float64)
                    if not values.size:
                        continue
                    defined = values[~np.isnan(values)]
                    summary.append(
                        {
                            "model": model,
                            "database": database,
                            "source": source,
                            "metric": metric,
                            "mean": float(np.mean(defined)) if defined.size else None,
                            "median": _median(defined) if defined.size else None,
                            "num_defined": int(defined.size),
                            "num_undefined": int(values.size - defined.size),
                        }
                    )
    return summary


def present_metrics(results_by_model: Mapping[str, Sequence[dict]]) -> Tuple[str, ...]:
    """The metric columns that some row has (the BSS Eval versions that ran), in Metrics.ALL_METRICS order."""
    keys = {key for rows in results_by_model.values() for row in rows for key in row}
    return tuple(metric for metric in ALL_METRICS if metric in keys)


def per_song_columns(metrics: Sequence[str]) -> Tuple[str, ...]:
    """The per-song columns for these metric columns: :data:`PER_SONG_COLUMNS` without the metrics
    (and, without v4, the frame counts) of a BSS Eval version that did not run."""
    with_v4 = any(metric in METRICS_V4 for metric in metrics)
    return tuple(
        column
        for column in PER_SONG_COLUMNS
        if column in metrics or column not in ALL_METRICS + V4_FRAME_COUNTS or (with_v4 and column in V4_FRAME_COUNTS)
    )


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


def format_results_table(
    results_by_model: Mapping[str, Sequence[dict]], metrics: Optional[Sequence[str]] = None
) -> str:
    """A plain-text table: database, source and metric rows; per model mean, median, n, undefined.

    Args:
        results_by_model: ``{model name: per-song rows}`` (see :func:`summarise`).
        metrics: metric names to show, in this order; by default every metric the rows have
            (the paper's v3 metrics, then BSS Eval v4's).

    Returns:
        The table as one string (no trailing newline), models side by side; with v4, a last
        line per model counts the undefined 1-s frames.
    """
    metrics = present_metrics(results_by_model) if metrics is None else tuple(metrics)
    summary = summarise(results_by_model)
    models = list(results_by_model)
    cells = {(row["model"], row["database"], row["source"], row["metric"]): row for row in summary}
    databases = [ALL_DATABASES] + sorted({row["database"] for row in summary} - {ALL_DATABASES})
    sources = _sources(summary)
    keys = sorted(
        {(row["database"], row["source"], row["metric"]) for row in summary if row["metric"] in metrics},
        key=lambda key: (databases.index(key[0]), sources.index(key[1]), list(metrics).index(key[2])),
    )
    label_widths = [
        max([len(header)] + [len(str(key[i])) for key in keys])
        for i, header in enumerate(("database", "source", "metric"))
    ]
    cell_width = 30
    lines = [
        "BSS Eval results in dB: mean and median over songs; n = songs with a defined value, "
        "undef = songs where it is undefined (e.g. a silent reference), left out.",
        _join_labels(("", "", ""), label_widths) + "".join(f"  {model:>{cell_width}}" for model in models),
        _join_labels(("database", "source", "metric"), label_widths)
        + "".join(f"  {'mean':>8} {'median':>8} {'n':>5} {'undef':>6}" for _ in models),
    ]
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
    if any(metric in METRICS_V4 for metric in metrics):
        lines += [""] + v4_frame_lines(results_by_model)
    return "\n".join(lines)


def v4_frame_lines(results_by_model: Mapping[str, Sequence[dict]]) -> List[str]:
    """How the v4 values were made, and per model the undefined 1-s frames (left out of the medians)."""
    lines = [f"BSS Eval v4 (museval, SiSEC 2018): per song the median over its defined 1-s frames; {V4_NOTE}."]
    for model, rows in results_by_model.items():
        counted = [row for row in rows if "frames_v4" in row]
        if counted:
            frames = sum(int(row["frames_v4"]) for row in counted)
            undefined = sum(int(row["undefined_frames_v4"]) for row in counted)
            lines.append(
                f"  {model}: {undefined} of {frames} 1-s frames (of all songs and sources) undefined, "
                "left out of the medians"
            )
    return lines


def _join_labels(labels, widths):
    return "  ".join(f"{label:<{width}}" for label, width in zip(labels, widths))


def _format_cell(row):
    def number(value):
        return f"{'-':>8}" if value is None else f"{value:8.2f}"

    return f"{number(row['mean'])} {number(row['median'])} {row['num_defined']:5d} {row['num_undefined']:6d}"


def write_results(
    results_by_model: Mapping[str, Sequence[dict]], out_dir: str, museval_subset: str = "test"
) -> List[str]:
    """Write ``results.json``, ``per_song.csv``, ``summary.csv``, ``sdr_boxplot.png`` and, for rows
    with BSS Eval v4, museval's per-track JSON (:func:`write_museval_json`).

    Columns and layouts are described in the module docstring; every file is written
    atomically. The dict keys of ``results_by_model`` become the ``model`` column.

    Args:
        results_by_model: ``{model name: per-song rows}``.
        out_dir: folder of the files.
        museval_subset: subfolder of the museval JSON, the partition evaluated (museval's
            loaders read only ``test``).

    Returns:
        The paths of the four result files (the museval JSON files are under
        ``<out_dir>/museval``, see :func:`museval_dir`).

    Raises:
        Utils.OutputError: a file could not be written (a full disk, a read-only folder): the
            message names the first such file and the cause. Every other file is still written
            and kept, and the results table is logged first, so computed results are never lost.
    """
    per_song = [dict(row, model=model) for model, rows in results_by_model.items() for row in rows]
    summary = summarise(results_by_model)
    columns = per_song_columns(present_metrics(results_by_model))
    paths = [os.path.join(out_dir, name) for name in ("results.json", "per_song.csv", "summary.csv", "sdr_boxplot.png")]
    museval_paths = []
    writers = [
        lambda: Utils.atomic_write_json(
            paths[0],
            {
                "columns": {
                    name: text
                    for name, text in COLUMN_DESCRIPTIONS.items()
                    if name in columns or name in SUMMARY_COLUMNS
                },
                "per_song": [{key: json_value(row.get(key, math.nan)) for key in columns} for row in per_song],
                "summary": [{key: json_value(row[key]) for key in SUMMARY_COLUMNS} for row in summary],
                "undefined_counts": _undefined_counts(summary),
            },
        ),
        lambda: _write_csv(paths[1], columns, per_song),
        lambda: _write_csv(paths[2], SUMMARY_COLUMNS, summary),
        lambda: _write_sdr_boxplot(paths[3], results_by_model),
        lambda: museval_paths.extend(write_museval_json(results_by_model, out_dir, museval_subset)),
    ]
    failures = []
    for write in writers:
        try:
            write()
        except OSError as error:
            failures.append(Utils.output_error(out_dir, error))
    if failures:
        kept = [path for path in paths if os.path.isfile(path)]
        LOGGER.error(
            "Not every result file could be written (%s); the results:\n%s",
            failures[0],
            format_results_table(results_by_model),
        )
        raise Utils.OutputError(
            f"{failures[0]} ({len(failures)} of {len(writers)} result writes failed; "
            f"kept: {', '.join(os.path.basename(path) for path in kept) or 'none'}; the "
            "results table is logged above)"
        ) from failures[0]
    LOGGER.info(
        "Wrote results to %s%s",
        out_dir,
        f" (museval JSON of {len(museval_paths)} tracks in {museval_dir(out_dir)})" if museval_paths else "",
    )
    return paths


def museval_dir(out_dir: str) -> str:
    """The folder holding one museval method folder per model: ``<out_dir>/museval``."""
    return os.path.join(out_dir, MUSEVAL_FOLDER)


def sisec_target_name(source: str) -> str:
    """SiSEC 2018's name of one of our sources (``voice`` -> ``vocals``); other names are kept."""
    return SISEC_TARGET_NAMES.get(source, source)


def write_museval_json(results_by_model: Mapping[str, Sequence[dict]], out_dir: str, subset: str = "test") -> List[str]:
    """museval's per-track JSON of every song with BSS Eval v4 frames, written atomically.

    Layout: ``<out_dir>/museval/<model>/<subset>/<database>/<song>.json``, one
    ``museval.TrackStore(win=1, hop=1)`` per song with a target per source (named by
    :func:`sisec_target_name`) holding every 1-s frame's SDR, SIR, SAR and ISR; undefined frames
    (and every frame of an undefined metric) are NaN, which museval's aggregation leaves out.
    museval's ``EvalStore().add_eval_dir(<out_dir>/museval/<model>)`` (or ``MethodStore``, which
    names the method after the folder) reads ``test/**/*.json`` and names each track after its
    file; a song name found in two databases of a model gets the file ``<database> - <song>.json``.

    Returns:
        The written JSON paths (none if no row has v4 frames).
    """
    paths = []
    for model, rows in results_by_model.items():
        tracks = {}
        for row in rows:
            if FRAMEWISE_V4 in row:
                tracks.setdefault((row["database"], row["song"]), []).append(row)
        if not tracks:
            continue
        museval = museval_module()
        for (database, song), stem in _track_stems(model, tracks).items():
            store = museval.TrackStore(win=V4_WINDOW_SECONDS, hop=V4_WINDOW_SECONDS, track_name=stem)
            for row in tracks[(database, song)]:
                store.add_target(
                    sisec_target_name(row["source"]),
                    values={
                        name: [_frame_value(value) for value in row[FRAMEWISE_V4][name]] for name in MUSEVAL_METRICS
                    },
                )
            store.validate()
            path = os.path.join(
                museval_dir(out_dir), _file_name(model), subset, _file_name(database), _file_name(stem) + ".json"
            )
            with Utils.atomic_write(path, "w", encoding="utf-8") as handle:
                handle.write(store.json)
            paths.append(path)
    return paths


def _track_stems(model, tracks):
    """``(database, song) -> track name``: the song, or ``<database> - <song>`` where the song's
    name is in several databases (museval identifies a track by its file name)."""
    databases_of = {}
    for database, song in tracks:
        databases_of.setdefault(song, []).append(database)
    stems = {}
    for database, song in tracks:
        stems[(database, song)] = song if len(databases_of[song]) == 1 else f"{database} - {song}"
    clashes = sorted(song for song, databases in databases_of.items() if len(databases) > 1)
    if clashes:
        LOGGER.warning(
            "Model %s: songs named alike in several databases (%s) get museval track names '<database> - <song>'",
            model,
            ", ".join(clashes[:3]),
        )
    return stems


def _frame_value(value):
    """A framewise value for museval's TrackStore: NaN for undefined (``None`` in JSON-loaded rows)."""
    return math.nan if value is None else float(value)


def _file_name(name):
    """``name`` usable as one file or folder name (path separators replaced)."""
    for separator in {"/", "\\", os.sep}:
        name = str(name).replace(separator, "_")
    return name if name not in ("", ".", "..") else "_"


def json_value(value: object) -> object:
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
        counts.setdefault(row["model"], {}).setdefault(row["database"], {}).setdefault(row["source"], {})[
            row["metric"]
        ] = row["num_undefined"]
    return counts


def _write_csv(path, columns, rows):
    with Utils.atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(column)) for column in columns])


def _csv_value(value):
    """Undefined (NaN / None) -> empty cell; floats with 6 significant digits."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return value


def _write_sdr_boxplot(path, results_by_model):
    """Box plot of finite SDR values (SDR_v4 without v3): one panel per source, databases on x,
    a box per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = present_metrics(results_by_model)
    metric = "SDR" if "SDR" in metrics or "SDR_v4" not in metrics else "SDR_v4"
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
                values = [
                    row[metric]
                    for row in results_by_model[model]
                    if row["source"] == source
                    and database in (ALL_DATABASES, row["database"])
                    and math.isfinite(row.get(metric, math.nan))
                ]
                if values:
                    data.append(values)
                    positions.append(group + (index - (len(models) - 1) / 2) * width)
            if data:
                boxes = axes.boxplot(
                    data,
                    positions=positions,
                    widths=width * 0.9,
                    patch_artist=True,
                    manage_ticks=False,
                    medianprops={"color": "black"},
                )
                colour = f"C{index}"
                for box in boxes["boxes"]:
                    box.set_facecolor(colour)
                    box.set_alpha(0.6)
                axes.plot([], [], color=colour, linewidth=8, alpha=0.6, label=model)
        axes.set_xticks(range(len(databases)))
        axes.set_xticklabels(databases)
        axes.set_xlim(-0.6, len(databases) - 0.4)
        axes.set_ylabel(f"{metric} (dB)")
        axes.set_title(f"{metric} of {source}" if source else metric)
        axes.grid(axis="y", alpha=0.3)
        if models:
            axes.legend(loc="best")
    figure.tight_layout()
    with Utils.atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
