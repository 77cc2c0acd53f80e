"""The tables of ``compare`` (experiment/SweepCompare.py): terminal text, Markdown, LaTeX and CSV.

Each table row is one comparison: database, source, model against its baseline, the paired
gain in dB with its interval on the valid and test partitions, songs, seeds and failures.
"""

import csv
import math
from typing import Optional, Sequence

from common import Utils


def _interval(row: Optional[dict]) -> str:
    if row is None:
        return "-"
    if math.isnan(row["mean"]):
        return "n/a"
    return f"{row['mean']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"


def _lines(table: Sequence[dict]):
    """``(comparison, database, source, valid row, test row)`` in table order."""
    keyed = {(row["comparison"], row["database"], row["source"], row["partition"]): row for row in table}
    order = list(dict.fromkeys((row["comparison"], row["database"], row["source"]) for row in table))
    return [(key[0], key[1], key[2], keyed.get(key + ("valid",)), keyed.get(key + ("test",))) for key in order]


def _counts(valid: Optional[dict], test: Optional[dict], key: str) -> str:
    """``<valid> / <test>`` songs or seeds of a line (``-`` where a partition has no row)."""
    return " / ".join("-" if row is None else str(row[key]) for row in (valid, test))


def _failures(row: Optional[dict]) -> str:
    return "-" if row is None else f"{row['failures']} / {row['baseline_failures']}"


def format_terminal(table: Sequence[dict], chosen: dict, phases: Sequence[dict], metric: str) -> str:
    """The comparison as plain text: gains, the chosen variants, updates and best epochs."""
    lines = [
        f"{metric} gain in dB, paired by song and seed: mean [95% crossed bootstrap interval over songs and seeds]."
        " Variants are chosen on validation; test columns are reported, never used to choose.",
        "Failures (silent or non-finite estimates, scored as the worst value): model / baseline, test songs.",
    ]
    header = (
        f"{'database':<14} {'source':<14} {'valid':>24} {'test':>24} {'songs v/t':>10} {'seeds v/t':>10} "
        f"{'failures':>9}"
    )
    current = None
    for comparison, database, source, valid, test in _lines(table):
        if comparison != current:
            lines += ["", comparison, header]
            current = comparison
        lines.append(
            f"{database:<14} {source:<14} {_interval(valid):>24} {_interval(test):>24} "
            f"{_counts(valid, test, 'songs'):>10} {_counts(valid, test, 'seeds'):>10} {_failures(test):>9}"
        )
    if chosen:
        lines += ["", "Chosen on validation (mean validation " + metric + " over the seeds that every variant has):"]
        lines += [f"  {model}: {variant} ({mean:+.2f} dB)" for model, (variant, mean) in chosen.items()]
    lines += [
        "",
        "Separator updates and best epoch per phase:",
        f"{'variant':<24} {'seed':>6} {'model':<16} {'updates':>8} {'epochs':>7} {'best epoch':>11}  stop",
    ]
    for row in phases:
        lines.append(
            f"{str(row['variant']):<24} {str(row['seed']):>6} {row['model']:<16} {str(row['updates']):>8} "
            f"{str(row['epochs']):>7} {str(row['best_epoch']):>11}  {row['stop_reason']}"
        )
    return "\n".join(lines)


def format_markdown(table: Sequence[dict], chosen: dict, phases: Sequence[dict], metric: str) -> str:
    """The comparison as Markdown tables."""
    lines = [
        f"| comparison | database | source | valid {metric} gain (dB) | test {metric} gain (dB) "
        "| songs (valid / test) | seeds (valid / test) | test failures (model / baseline) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for comparison, database, source, valid, test in _lines(table):
        lines.append(
            f"| {comparison} | {database} | {source} | {_interval(valid)} | {_interval(test)} | "
            f"{_counts(valid, test, 'songs')} | {_counts(valid, test, 'seeds')} | {_failures(test)} |"
        )
    if chosen:
        lines += ["", "| model | chosen variant | mean validation " + metric + " (dB) |", "|---|---|---|"]
        lines += [f"| {model} | {variant} | {mean:+.2f} |" for model, (variant, mean) in chosen.items()]
    lines += ["", "| variant | seed | model | updates | epochs | best epoch | stop |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {row['variant']} | {row['seed']} | {row['model']} | {row['updates']} | {row['epochs']} | "
        f"{row['best_epoch']} | {row['stop_reason']} |"
        for row in phases
    ]
    return "\n".join(lines) + "\n"


def _latex(text) -> str:
    for character, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = str(text).replace(character, escaped)
    return text


def format_latex(table: Sequence[dict], metric: str) -> str:
    """The gains as a LaTeX ``tabular`` (booktabs rules)."""
    lines = [
        r"\begin{tabular}{lllllrrr}",
        r"\toprule",
        f"comparison & database & source & valid {_latex(metric)} gain (dB) & test {_latex(metric)} gain (dB) "
        r"& songs (valid / test) & seeds (valid / test) & failures \\",
        r"\midrule",
    ]
    for comparison, database, source, valid, test in _lines(table):
        lines.append(
            " & ".join(
                _latex(cell)
                for cell in (
                    comparison,
                    database,
                    source,
                    _interval(valid),
                    _interval(test),
                    _counts(valid, test, "songs"),
                    _counts(valid, test, "seeds"),
                    _failures(test),
                )
            )
            + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_csv(path: str, columns: Sequence[str], rows: Sequence[dict]) -> None:
    """Rows as CSV (atomic); NaN as an empty cell."""
    with Utils.atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [
                    "" if isinstance(row.get(column), float) and math.isnan(row[column]) else row.get(column, "")
                    for column in columns
                ]
            )
