"""Paired comparison of two models' BSS Eval results: per-song differences, their mean and a
bootstrap interval.

The experiment's question is whether the semi-supervised model separates better than the
supervised one. Both separate the same test songs, so the comparison is paired: for each
song (and each seed, when a benchmark repeats the experiment) the metric of the model minus
that of the baseline. The interval resamples songs and seeds independently (a crossed
bootstrap), so it reflects both how much songs differ and how much training runs differ.

Failures (:func:`gain_table`) are scored, never dropped. A model *fails* on a song and source
when its metric there is undefined (NaN: its estimate is silent, or non-finite so that no metric
could be computed) or ``-inf``, while the reference is not silent. A failure is scored as the
lowest finite value of that metric among both models' rows of the same database and source
(all songs, all seeds): as bad as the worst real estimate of the comparison, so a dead output
can never beat a real one, and the score needs no invented constant. A ``+inf`` (an exactly
perfect estimate) is scored as the highest finite value, likewise. Every failure is counted per
model and shown beside the gain. Only a silent *reference* leaves a song out: the metric is
then undefined for every model, and no model is at fault (rows that do not say why a value is
undefined are taken as a silent reference when both models' values are undefined).
"""

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

ALL = "all"
SILENT_REFERENCE = "silent reference"  # Metrics.py's undefined_reason of a silent true source


def paired_differences(baseline_rows: Sequence[dict], rows: Sequence[dict], metric: str = "SDR") -> Dict[tuple, dict]:
    """Per-song differences ``rows - baseline_rows`` of ``metric`` (dB).

    Args:
        baseline_rows, rows: per-song rows (Results.PER_SONG_COLUMNS) of the two models on
            the same songs.
        metric: the metric column, e.g. ``"SDR"``.

    Returns:
        ``{(database, source): {song: difference}}``; a song is left out where either model's
        value is undefined (NaN) or infinite. These are the raw differences; :func:`gain_table`
        scores failures instead of leaving them out (:func:`scored_differences`).

    Raises:
        ValueError: the two models were evaluated on different songs.
    """
    baseline = {(row["database"], row["source"], row["song"]): row[metric] for row in baseline_rows}
    other = {(row["database"], row["source"], row["song"]): row[metric] for row in rows}
    if set(baseline) != set(other):
        missing = sorted(set(baseline) ^ set(other))[:3]
        raise ValueError(
            f"The two models were evaluated on different songs (e.g. {missing}); "
            "a paired comparison needs the same songs for both."
        )
    differences = {}
    for (database, source, song), value in other.items():
        reference = baseline[(database, source, song)]
        if math.isfinite(value) and math.isfinite(reference):
            differences.setdefault((database, source), {})[song] = float(value - reference)
    return differences


def difference_matrix(differences_by_seed: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Stack per-seed ``{song: difference}`` dicts into an array [seeds, songs] (NaN where a
    seed lacks a song), songs in sorted order."""
    songs = sorted({song for differences in differences_by_seed for song in differences})
    return np.array(
        [[differences.get(song, np.nan) for song in songs] for differences in differences_by_seed], dtype=np.float64
    ).reshape(len(differences_by_seed), len(songs))


def bootstrap_interval(matrix: np.ndarray, confidence: float = 0.95, resamples: int = 10000, seed: int = 0) -> tuple:
    """Mean of ``matrix`` [seeds, songs] (NaN ignored) and its percentile bootstrap interval.

    Each resample draws seeds and songs independently with replacement and takes the mean of
    the selected sub-matrix. With one seed this is the ordinary bootstrap over songs.

    Returns:
        ``(mean, low, high)`` in the matrix's unit; all NaN if it holds no finite value.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    defined = ~np.isnan(matrix)
    if not defined.any():
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    num_seeds, num_songs = matrix.shape
    seed_picks = rng.integers(num_seeds, size=(resamples, num_seeds))
    song_picks = rng.integers(num_songs, size=(resamples, num_songs))
    values, counts = np.where(defined, matrix, 0.0), defined.astype(np.float64)
    # Sum over the picked grid = (seed multiplicities) @ matrix @ (song multiplicities).
    seed_weights = (seed_picks[:, :, None] == np.arange(num_seeds)).sum(axis=1, dtype=np.float64)
    song_weights = (song_picks[:, :, None] == np.arange(num_songs)).sum(axis=1, dtype=np.float64)
    sums = np.einsum("rs,sn,rn->r", seed_weights, values, song_weights)
    totals = np.einsum("rs,sn,rn->r", seed_weights, counts, song_weights)
    means = sums[totals > 0] / totals[totals > 0]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(values.sum() / counts.sum()), float(low), float(high)


def _value(row: dict, metric: str) -> float:
    """The row's metric as a float: NaN when missing, empty or ``None`` (undefined); ``"inf"`` strings
    (results.json) become infinities."""
    value = row.get(metric)
    if value is None or value == "":
        return math.nan
    return float(value)


def reference_is_silent(row: dict) -> Optional[bool]:
    """Whether the row says its reference is silent; ``None`` if it does not say why (no
    ``undefined_reason``: a list in Evaluate's rows, ``;``-separated in per_song.csv)."""
    reasons = row.get("undefined_reason")
    if reasons is None:
        return None
    if isinstance(reasons, str):
        reasons = reasons.split(";")
    return SILENT_REFERENCE in [reason.strip() for reason in reasons]


def is_failure(value: float) -> bool:
    """A value that scores as a failure if the reference is not silent: undefined (NaN) or ``-inf``."""
    return math.isnan(value) or value == -math.inf


def score_range(rows_by_model: Sequence[Sequence[dict]], metric: str) -> Dict[tuple, Tuple[float, float]]:
    """``{(database, source): (lowest, highest finite value)}`` over all the given rows: the scores of a
    failure and of a ``+inf`` (see the module docstring)."""
    ranges = {}
    for rows in rows_by_model:
        for row in rows:
            value = _value(row, metric)
            if math.isfinite(value):
                key = (row["database"], row["source"])
                low, high = ranges.get(key, (value, value))
                ranges[key] = (min(low, value), max(high, value))
    return ranges


def scored_differences(
    baseline_rows: Sequence[dict], rows: Sequence[dict], metric: str, ranges: Mapping[tuple, Tuple[float, float]]
) -> Tuple[Dict[tuple, dict], Dict[tuple, list]]:
    """Per-song differences ``rows - baseline_rows`` with failures scored (module docstring).

    Args:
        baseline_rows, rows: per-song rows of the two models on the same songs (one seed).
        metric: the metric column.
        ranges: :func:`score_range` of every row of the comparison.

    Returns:
        ``(differences, failures)``: ``{(database, source): {song: difference}}`` (dB) and
        ``{(database, source): [baseline failures, model failures]}`` (song counts).

    Raises:
        ValueError: the two models were evaluated on different songs.
    """
    baseline = {(row["database"], row["source"], row["song"]): row for row in baseline_rows}
    other = {(row["database"], row["source"], row["song"]): row for row in rows}
    if set(baseline) != set(other):
        missing = sorted(set(baseline) ^ set(other))[:3]
        raise ValueError(
            f"The two models were evaluated on different songs (e.g. {missing}); "
            "a paired comparison needs the same songs for both."
        )
    differences, failures = {}, {}
    for (database, source, song), row in other.items():
        pair = (baseline[(database, source, song)], row)
        values = [_value(member, metric) for member in pair]
        said = [reference_is_silent(member) for member in pair]
        if any(said) or (all(reason is None for reason in said) and all(math.isnan(value) for value in values)):
            continue  # a silent reference: no model is at fault
        failed = [is_failure(value) for value in values]
        counts = failures.setdefault((database, source), [0, 0])
        counts[0], counts[1] = counts[0] + failed[0], counts[1] + failed[1]
        if (database, source) not in ranges:
            continue  # nothing finite to score against: only the failures are counted
        low, high = ranges[(database, source)]
        scores = [low if fail else (high if value == math.inf else value) for fail, value in zip(failed, values)]
        differences.setdefault((database, source), {})[song] = float(scores[1] - scores[0])
    return differences, failures


def gain_table(
    baseline_rows_by_seed: Sequence[Sequence[dict]],
    rows_by_seed: Sequence[Sequence[dict]],
    metric: str = "SDR",
    groups: Mapping[str, Sequence[str]] = None,
    confidence: float = 0.95,
) -> List[dict]:
    """Mean paired gain of ``metric`` per database and source, pooled over seeds, failures scored.

    Args:
        baseline_rows_by_seed, rows_by_seed: per-song rows of the baseline and of the compared
            model, one list per seed (same songs, same seed order).
        metric: metric column.
        groups: optional extra rows, ``{name: [database, ...]}`` pooling several databases
            (e.g. the unsupervised ones); ``"all"`` (every database) is always included.
        confidence: level of the bootstrap interval.

    Returns:
        Rows ``{"database", "source", "mean", "low", "high", "songs", "seeds",
        "baseline_failures", "failures"}`` (dB), where ``songs`` counts distinct songs with a
        scored difference and the failures count (song, seed) cells where the baseline / the
        compared model failed (module docstring: scored as the worst value, not left out).
    """
    if len(baseline_rows_by_seed) != len(rows_by_seed) or not rows_by_seed:
        raise ValueError("gain_table needs one list of rows per seed for each model, as many for both.")
    ranges = score_range(list(baseline_rows_by_seed) + list(rows_by_seed), metric)
    scored = [scored_differences(base, rows, metric, ranges) for base, rows in zip(baseline_rows_by_seed, rows_by_seed)]
    per_seed = [differences for differences, _ in scored]
    keys = [key for _, failures in scored for key in failures]
    databases = sorted({database for database, _ in keys})
    sources = list(dict.fromkeys(source for _, source in keys))
    pools = {database: [database] for database in databases}
    pools.update(groups or {})
    pools[ALL] = databases
    table = []
    for name, members in pools.items():
        for source in sources:
            matrix = difference_matrix(
                [
                    {
                        (database, song): value
                        for database in members
                        for song, value in differences.get((database, source), {}).items()
                    }
                    for differences in per_seed
                ]
            )
            counted = [
                failures[(database, source)]
                for _, failures in scored
                for database in members
                if (database, source) in failures
            ]
            if not counted:
                continue
            mean, low, high = bootstrap_interval(matrix, confidence) if matrix.size else (math.nan,) * 3
            table.append(
                {
                    "database": name,
                    "source": source,
                    "mean": mean,
                    "low": low,
                    "high": high,
                    "songs": int(np.sum(~np.isnan(matrix).all(axis=0))) if matrix.size else 0,
                    "seeds": len(per_seed),
                    "baseline_failures": sum(count[0] for count in counted),
                    "failures": sum(count[1] for count in counted),
                }
            )
    return table


def format_gain_lines(
    gains: Sequence[dict],
    metric: str = "SDR",
    database: str = ALL,
    model: str = "semi-supervised",
    baseline: str = "supervised",
) -> str:
    """A heading and one line per source of ``database`` (rows of :func:`gain_table`), e.g.
    ``  voice: SDR +0.62 dB [+0.18, +1.05] over 13 songs``."""
    songs = "every test song" if database == ALL else f"the {database} test songs"
    lines = [
        f"{metric} gain of the {model} over the {baseline} model on {songs}, paired by song "
        "(mean, 95% bootstrap interval):"
    ]
    for row in gains:
        if row["database"] == database:
            seeds = f", {row['seeds']} seeds" if row["seeds"] > 1 else ""
            failed = ""
            if row.get("failures") or row.get("baseline_failures"):
                failed = (
                    f"; failures (silent or non-finite estimate, scored as the worst value): {model} "
                    f"{row['failures']}, {baseline} {row['baseline_failures']}"
                )
            lines.append(
                f"  {row['source']}: {metric} {row['mean']:+.2f} dB [{row['low']:+.2f}, {row['high']:+.2f}] "
                f"over {row['songs']} songs{seeds}{failed}"
            )
    return "\n".join(lines)


def gain_metric(bss_eval: Sequence[str]) -> str:
    """The metric of the printed paired gain: the paper's SDR (v3), or SDR_v4 when v3 is off."""
    return "SDR" if "v3" in bss_eval else "SDR_v4"
