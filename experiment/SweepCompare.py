"""``compare``: the paired comparison of the models of a sweep (or of any sacred run folders).

It reads only what runs write: each sacred run folder's ``config.json``, ``run.json`` and
``per_song.csv`` (Results.py), and each phase's ``training_state.json`` (Checkpoints.py).

- A **training run** (command ``main``, completed) gives the test rows of its ``supervised``
  and ``semi-supervised`` models and, per phase, the separator updates it made and its best
  epoch. A **validation run** (``evaluate`` with ``partition=valid``, as a sweep with
  ``evaluate_valid`` makes) gives the validation rows of one phase's best model.
- A run's **variant** is its sweep point's variant plus its grid values other than ``seed``
  (from the sweep folder's ``sweep.json``); for run folders outside a sweep, the settings in
  which the runs differ, seed and paths aside. A **model** is a variant and a phase's model.
- **Comparisons**: each variant's ``models`` (default ``semi-supervised``) against its
  ``baseline`` (default its own ``supervised`` model; ``<variant>/<model>`` names one fixed
  model), paired by song and by seed (the seeds both have), with the crossed bootstrap interval
  and the failure rule of Comparison.py, per database and source, for the validation and the
  test songs. With validation rows, **choosing**: per model kind, the variant with the highest
  mean validation metric over all validation songs (of ``choose_source`` if set; a failure
  counts as the lowest value of its database and source, as in Comparison.py) is chosen, and the
  chosen ``models`` are compared with the chosen baseline; variants listed in ``never_choose``
  are shown but not chosen. Test rows are never used to choose.

Output: a terminal table, and ``compare.md``, ``compare.tex``, ``compare.csv`` (gains) and
``phases.csv`` (updates and best epoch per run and phase) in ``--out`` (default ``<folder>/compare``).
"""

import argparse
import csv
import glob
import json
import logging
import math
import os
from typing import Dict, List, Optional, Sequence

from common import Utils
from evaluation import Comparison
from experiment.SweepTables import format_latex, format_markdown, format_terminal, write_csv

LOGGER = logging.getLogger("SweepCompare")
PHASES = {"sup": "supervised", "semisup": "semi-supervised"}
# Settings that name files or runs, not a recipe: never part of a variant's label.
NOT_A_RECIPE = {
    "seed",
    "experiment_id",
    "resume",
    "results_dir",
    "cache_dir",
    "dataset_pkl",
    "model_path",
    "partition",
    "eval_workers",
    "model_config.model_base_dir",
    "model_config.log_dir",
    "output_dir",
}
CSV_COLUMNS = (
    "comparison",
    "model",
    "baseline",
    "partition",
    "database",
    "source",
    "metric",
    "mean",
    "low",
    "high",
    "songs",
    "seeds",
    "failures",
    "baseline_failures",
)
PHASE_COLUMNS = (
    "variant",
    "seed",
    "experiment_id",
    "model",
    "updates",
    "epochs",
    "best_epoch",
    "best_step",
    "best_valid_loss",
    "stop_reason",
)


class CompareError(ValueError):
    """Folders without runs to compare, or compare settings that cannot be used."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``compare`` command's options."""
    parser.add_argument("paths", nargs="+", help="a sweep file, a sweep folder, or sacred run folders")
    parser.add_argument("--baseline", help="'<model>' (each variant's own) or '<variant>/<model>'")
    parser.add_argument("--models", nargs="+", help="the models compared with the baseline")
    parser.add_argument("--metric", help="metric column (default SDR)")
    parser.add_argument("--choose-source", dest="choose_source", help="source whose validation mean chooses")
    parser.add_argument("--out", help="folder of the output files (default <first folder>/compare)")


def _flatten(config: dict, prefix: str = "") -> Dict[str, object]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _number(text: str) -> float:
    return math.nan if text in ("", None) else float(text)


def read_rows(path: str) -> List[dict]:
    """Per-song rows of a ``per_song.csv``; metric columns as floats (empty = NaN, ``inf`` kept)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    text_columns = {"model", "database", "song", "source", "undefined", "undefined_metrics", "undefined_reason"}
    return [{key: value if key in text_columns else _number(value) for key, value in row.items()} for row in rows]


def sacred_runs(paths: Sequence[str]) -> List[str]:
    """The sacred run folders (``run.json`` and ``config.json``) given or inside the given folders."""
    found = []
    for path in paths:
        if os.path.isfile(os.path.join(path, "run.json")):
            found.append(path)
            continue
        inside = os.path.join(path, "runs") if os.path.isdir(os.path.join(path, "runs")) else path
        runs = [
            folder
            for folder in glob.glob(os.path.join(glob.escape(inside), "*"))
            if os.path.isfile(os.path.join(folder, "run.json")) and os.path.isfile(os.path.join(folder, "config.json"))
        ]
        found += sorted(runs, key=lambda folder: (len(folder), folder))
    return found


def _load_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def phase_summary(state_path: str) -> Optional[dict]:
    """Updates and best epoch of one phase from its ``training_state.json``, or None if missing."""
    if not os.path.isfile(state_path):
        return None
    state = _load_json(state_path)
    history = state.get("history") or []
    best = [
        entry for entry in history if state.get("best_loss") is not None and entry["valid_loss"] == state["best_loss"]
    ]
    return {
        "updates": max([entry["step"] for entry in history], default=0),
        "epochs": state.get("epoch", len(history)),
        "best_epoch": best[0]["epoch"] if best else None,
        "best_step": best[0]["step"] if best else None,
        "best_valid_loss": state.get("best_loss"),
        "stop_reason": state.get("stop_reason", ""),
    }


def load_runs(paths: Sequence[str]) -> dict:
    """Everything ``compare`` needs from run folders: ``{"runs": {experiment_id: run}, "groups": {...}}``.

    Each run: ``{"seed", "variant", "test": {model: rows}, "valid": {model: rows}, "phases": {model: summary}}``.
    """
    folders = sacred_runs(paths)
    if not folders:
        raise CompareError(f"No sacred run folders (with run.json and config.json) in {list(paths)}.")
    training, validation, configs = {}, {}, {}
    for folder in folders:
        run, config = _load_json(os.path.join(folder, "run.json")), _load_json(os.path.join(folder, "config.json"))
        base = os.path.dirname(os.path.dirname(os.path.abspath(folder)))  # where Training.py ran: <base>/runs/<n>
        per_song = os.path.join(folder, "per_song.csv")
        if run.get("status") != "COMPLETED" or not os.path.isfile(per_song):
            continue
        if run.get("command") == "main":
            experiment_id = str(config["experiment_id"])
            model_base = os.path.join(base, config["model_config"]["model_base_dir"])
            rows = read_rows(per_song)
            training[experiment_id] = {
                "seed": config.get("seed"),
                "config": config,
                "test": {
                    model: [row for row in rows if row["model"] == model]
                    for model in dict.fromkeys(row["model"] for row in rows)
                },
                "phases": {
                    name: phase_summary(os.path.join(model_base, f"{experiment_id}_{phase}", "training_state.json"))
                    for phase, name in PHASES.items()
                },
                "valid": {},
            }
            configs[experiment_id] = config
        elif run.get("command") == "evaluate" and config.get("partition") == "valid" and config.get("model_path"):
            phase_folder = os.path.basename(os.path.dirname(os.path.normpath(config["model_path"])))
            for phase, name in PHASES.items():
                if phase_folder.endswith("_" + phase):
                    validation[(phase_folder[: -len(phase) - 1], name)] = read_rows(per_song)
                    break
    for (experiment_id, name), rows in validation.items():
        if experiment_id in training:
            training[experiment_id]["valid"][name] = [dict(row, model=name) for row in rows]
    if not training:
        raise CompareError(f"No completed training runs with per_song.csv in {list(paths)}.")
    labels = variant_labels(paths, configs)
    for experiment_id, run in training.items():
        run["variant"] = labels[experiment_id]
    first = next(iter(configs.values()))
    return {"runs": training, "unsupervised": list(first.get("partition_config", {}).get("unsupervised_databases", []))}


def variant_labels(paths: Sequence[str], configs: Dict[str, dict]) -> Dict[str, str]:
    """``{experiment_id: variant label}`` from the sweep's ``sweep.json`` where there is one, else the
    settings in which the runs differ (seed and paths aside)."""
    labels = {}
    for path in paths:
        description = os.path.join(path, "sweep.json")
        if os.path.isfile(description):
            for point in _load_json(description)["points"]:
                values = [
                    f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point["values"].items() if key != "seed"
                ]
                labels[point["id"]] = " ".join(filter(None, [point["variant"]] + values)) or "runs"
    flat = {experiment_id: _flatten(config) for experiment_id, config in configs.items()}
    keys = sorted({key for values in flat.values() for key in values} - NOT_A_RECIPE)
    differing = [
        key for key in keys if len({json.dumps(values.get(key), sort_keys=True) for values in flat.values()}) > 1
    ]
    for experiment_id, values in flat.items():
        if experiment_id not in labels:
            labels[experiment_id] = (
                " ".join(f"{key.rsplit('.', 1)[-1]}={values.get(key)}" for key in differing) or "runs"
            )
    return labels


def models_by_seed(runs: dict, partition: str) -> Dict[tuple, Dict[object, List[dict]]]:
    """``{(variant, model): {seed: rows}}`` of one partition."""
    table = {}
    for run in runs.values():
        for model, rows in run[partition].items():
            table.setdefault((run["variant"], model), {})[run["seed"]] = rows
    return table


def choose(
    valid: Dict[tuple, dict], model: str, metric: str, source: Optional[str], never: Sequence[str] = ()
) -> Optional[tuple]:
    """The variant of ``model`` with the highest mean validation ``metric``, failures scored as the lowest
    value of their database and source, variants in ``never`` aside; ``(variant, mean)`` or None without
    validation rows.

    Variants are compared on the seeds that all of them have (when they share any): seeds differ by
    more than variants do, so a variant run with more seeds must not win or lose by its extra ones.
    """
    candidates = {variant: seeds for (variant, name), seeds in valid.items() if name == model and variant not in never}
    shared = set.intersection(*(set(seeds) for seeds in candidates.values())) if candidates else set()
    if shared:
        candidates = {
            variant: {seed: rows for seed, rows in seeds.items() if seed in shared}
            for variant, seeds in candidates.items()
        }
    every_row = [row for seeds in candidates.values() for rows in seeds.values() for row in rows]
    ranges = Comparison.score_range([every_row], metric)
    best = None
    for variant, seeds in candidates.items():
        scores = []
        for row in (row for rows in seeds.values() for row in rows):
            if source and row["source"] != source or (row["database"], row["source"]) not in ranges:
                continue
            value = float(row[metric]) if row.get(metric) is not None else math.nan
            if Comparison.reference_is_silent(row):
                continue
            low, high = ranges[(row["database"], row["source"])]
            scores.append(low if Comparison.is_failure(value) else min(value, high))
        if scores and (best is None or sum(scores) / len(scores) > best[1]):
            best = (variant, sum(scores) / len(scores))
    return best


def comparisons(data: dict, settings: dict) -> List[dict]:
    """Every comparison's gain rows (:data:`CSV_COLUMNS`) and the chosen variants."""
    runs, metric = data["runs"], settings.get("metric") or "SDR"
    baseline, models = settings.get("baseline") or "supervised", settings.get("models") or ["semi-supervised"]
    test, valid = models_by_seed(runs, "test"), models_by_seed(runs, "valid")
    variants = list(dict.fromkeys(run["variant"] for run in runs.values()))
    pairs = []
    for variant in variants:
        reference = tuple(baseline.split("/", 1)) if "/" in baseline else (variant, baseline)
        pairs += [
            ((variant, model), reference, f"{variant}: {model} vs {'/'.join(reference)}")
            for model in models
            if (variant, model) in test and (variant, model) != reference
        ]
    chosen = {}
    base_model = baseline.split("/", 1)[-1]
    for model in [base_model] + list(models):
        choice = choose(valid, model, metric, settings.get("choose_source"), settings.get("never_choose") or ())
        if choice:
            chosen[model] = choice
    if base_model in chosen and len(variants) > 1:
        for model in models:
            if model in chosen:
                pairs.append(
                    (
                        (chosen[model][0], model),
                        (chosen[base_model][0], base_model),
                        f"chosen on validation: {model} of {chosen[model][0]} vs {base_model} of "
                        f"{chosen[base_model][0]}",
                    )
                )
    groups = {"unsupervised": data["unsupervised"]} if data["unsupervised"] else None
    table = []
    for model_key, base_key, name in pairs:
        for partition, source in (("valid", valid), ("test", test)):
            seeds = sorted(set(source.get(model_key, {})) & set(source.get(base_key, {})), key=str)
            if not seeds:
                continue
            gains = Comparison.gain_table(
                [source[base_key][seed] for seed in seeds], [source[model_key][seed] for seed in seeds], metric, groups
            )
            members = set().union(*(({row["database"] for row in source[model_key][seed]}) for seed in seeds))
            table += [
                dict(
                    row,
                    comparison=name,
                    model="/".join(model_key),
                    baseline="/".join(base_key),
                    partition=partition,
                    metric=metric,
                )
                for row in gains
                if row["database"] != "unsupervised" or members & set(data["unsupervised"])
            ]
    return table, chosen


def phase_rows(data: dict) -> List[dict]:
    """One row per training run and phase (:data:`PHASE_COLUMNS`)."""
    rows = []
    for experiment_id, run in sorted(data["runs"].items(), key=lambda item: (item[1]["variant"], str(item[1]["seed"]))):
        for model, summary in run["phases"].items():
            rows.append(
                dict(
                    {column: "" for column in PHASE_COLUMNS},
                    **(summary or {}),
                    variant=run["variant"],
                    seed=run["seed"],
                    experiment_id=experiment_id,
                    model=model,
                )
            )
    return rows


def main(arguments: argparse.Namespace) -> int:
    """Run ``compare``: print the comparison and write its files; returns 0."""
    from experiment.SweepFile import load_sweep

    paths, settings = [], {}
    for path in arguments.paths:
        if os.path.isfile(path):
            sweep = load_sweep(path)
            paths.append(sweep.folder)
            settings.update(sweep.compare)
        elif os.path.isdir(path):
            paths.append(path)
            description = os.path.join(path, "sweep.json")
            if os.path.isfile(description):
                settings.update(_load_json(description).get("compare") or {})
        else:
            raise CompareError(f"{path}: no such sweep file or folder")
    unknown = set(settings) - {"baseline", "models", "metric", "choose_source", "never_choose"}
    if unknown:
        raise CompareError(
            f"compare settings {sorted(unknown)} are unknown; known: baseline, models, metric, "
            "choose_source, never_choose"
        )
    settings.update(
        {
            key: getattr(arguments, key)
            for key in ("baseline", "models", "metric", "choose_source")
            if getattr(arguments, key)
        }
    )
    data = load_runs(paths)
    metric = settings.get("metric") or "SDR"
    table, chosen = comparisons(data, settings)
    phases = phase_rows(data)
    out = arguments.out or os.path.join(paths[0], "compare")
    write_csv(os.path.join(out, "compare.csv"), CSV_COLUMNS, table)
    write_csv(os.path.join(out, "phases.csv"), PHASE_COLUMNS, phases)
    with Utils.atomic_write(os.path.join(out, "compare.md"), "w", encoding="utf-8") as handle:
        handle.write(format_markdown(table, chosen, phases, metric))
    with Utils.atomic_write(os.path.join(out, "compare.tex"), "w", encoding="utf-8") as handle:
        handle.write(format_latex(table, metric))
    print(format_terminal(table, chosen, phases, metric))
    LOGGER.info("Wrote compare.md, compare.tex, compare.csv and phases.csv to %s", out)
    return 0
