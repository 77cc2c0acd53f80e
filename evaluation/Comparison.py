"""Paired comparison of two models' BSS Eval results: per-song differences, their mean and a
bootstrap interval.

The experiment's question is whether the semi-supervised model separates better than the
supervised one. Both separate the same test songs, so the comparison is paired: for each
song (and each seed, when a benchmark repeats the experiment) the metric of the model minus
that of the baseline. The interval resamples songs and seeds independently (a crossed
bootstrap), so it reflects both how much songs differ and how much training runs differ.
"""

import math
from typing import Dict, List, Mapping, Sequence

import numpy as np

ALL = "all"


def paired_differences(baseline_rows: Sequence[dict], rows: Sequence[dict], metric: str = "SDR") -> Dict[tuple, dict]:
    """Per-song differences ``rows - baseline_rows`` of ``metric`` (dB).

    Args:
        baseline_rows, rows: per-song rows (Results.PER_SONG_COLUMNS) of the two models on
            the same songs.
        metric: the metric column, e.g. ``"SDR"``.

    Returns:
        ``{(database, source): {song: difference}}``; a song is left out where either model's
        value is undefined (NaN) or infinite.

    Raises:
        ValueError: the two models were evaluated on different songs.
    """
    baseline = {(row["database"], row["source"], row["song"]): row[metric] for row in baseline_rows}
    other = {(row["database"], row["source"], row["song"]): row[metric] for row in rows}
    if set(baseline) != set(other):
        missing = sorted(set(baseline) ^ set(other))[:3]
        raise ValueError(f"The two models were evaluated on different songs (e.g. {missing}); "
                         "a paired comparison needs the same songs for both.")
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
    return np.array([[differences.get(song, np.nan) for song in songs] for differences in differences_by_seed],
                    dtype=np.float64).reshape(len(differences_by_seed), len(songs))


def bootstrap_interval(matrix: np.ndarray, confidence: float = 0.95, resamples: int = 10000,
                       seed: int = 0) -> tuple:
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


def gain_table(baseline_rows_by_seed: Sequence[Sequence[dict]], rows_by_seed: Sequence[Sequence[dict]],
               metric: str = "SDR", groups: Mapping[str, Sequence[str]] = None,
               confidence: float = 0.95) -> List[dict]:
    """Mean paired gain of ``metric`` per database and source, pooled over seeds.

    Args:
        baseline_rows_by_seed, rows_by_seed: per-song rows of the baseline and of the compared
            model, one list per seed (same songs, same seed order).
        metric: metric column.
        groups: optional extra rows, ``{name: [database, ...]}`` pooling several databases
            (e.g. the unsupervised ones); ``"all"`` (every database) is always included.
        confidence: level of the bootstrap interval.

    Returns:
        Rows ``{"database", "source", "mean", "low", "high", "songs", "seeds"}`` (dB), where
        ``songs`` counts distinct songs with a defined difference.
    """
    if len(baseline_rows_by_seed) != len(rows_by_seed) or not rows_by_seed:
        raise ValueError("gain_table needs one list of rows per seed for each model, as many for both.")
    per_seed = [paired_differences(base, rows, metric) for base, rows in zip(baseline_rows_by_seed, rows_by_seed)]
    databases = sorted({database for differences in per_seed for database, _ in differences})
    sources = list(dict.fromkeys(source for differences in per_seed for _, source in differences))
    pools = {database: [database] for database in databases}
    pools.update(groups or {})
    pools[ALL] = databases
    table = []
    for name, members in pools.items():
        for source in sources:
            matrix = difference_matrix([
                {(database, song): value for database in members
                 for song, value in differences.get((database, source), {}).items()}
                for differences in per_seed])
            if matrix.size == 0:
                continue
            mean, low, high = bootstrap_interval(matrix, confidence)
            table.append({"database": name, "source": source, "mean": mean, "low": low, "high": high,
                          "songs": int(np.sum(~np.isnan(matrix).all(axis=0))), "seeds": len(per_seed)})
    return table


def format_gain_lines(gains: Sequence[dict], metric: str = "SDR", database: str = ALL,
                      model: str = "semi-supervised", baseline: str = "supervised") -> str:
    """A heading and one line per source of ``database`` (rows of :func:`gain_table`), e.g.
    ``  voice: SDR +0.62 dB [+0.18, +1.05] over 13 songs``."""
    songs = "every test song" if database == ALL else f"the {database} test songs"
    lines = [f"{metric} gain of the {model} over the {baseline} model on {songs}, paired by song "
             "(mean, 95% bootstrap interval):"]
    for row in gains:
        if row["database"] == database:
            seeds = f", {row['seeds']} seeds" if row["seeds"] > 1 else ""
            lines.append(f"  {row['source']}: {metric} {row['mean']:+.2f} dB [{row['low']:+.2f}, {row['high']:+.2f}] "
                         f"over {row['songs']} songs{seeds}")
    return "\n".join(lines)


def gain_metric(bss_eval: Sequence[str]) -> str:
    """The metric of the printed paired gain: the paper's SDR (v3), or SDR_v4 when v3 is off."""
    return "SDR" if "v3" in bss_eval else "SDR_v4"
