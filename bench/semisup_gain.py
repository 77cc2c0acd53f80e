"""Benchmark of the paper's claim on the demo database: does semi-supervised training beat
supervised training, and by how much, across seeds? (Not a test: it trains for tens of minutes.)

For each seed the supervised model is trained once (Training.py's ``demo`` recipe) and the
semi-supervised model once per recipe variant, with the same budget (``max_epochs``, early
stopping on the validation loss). Every best model is evaluated with BSS Eval on the
validation and on the test songs. The gain is the SDR of the semi-supervised model minus that
of the supervised model of the same seed, paired by song, with a 95 % bootstrap interval over
songs and seeds (Comparison.py).

Variants are chosen on the **validation** songs: the rule is printed with the table, and the
test columns are reported, never used to choose. The ``demo`` recipe is run with ``--seeds``
seeds, the other variants with ``--variant-seeds`` (fewer, to fit the time budget); each
table row says how many.

Everything is kept in ``--work-dir`` (checkpoints, per-song rows), so an interrupted run
continues where it stopped and a finished one prints its tables at once.

Run: ``.venv/bin/python bench/semisup_gain.py`` (47 minutes from scratch on our two cores). The last line
is ``semisup_gain: <voice SDR gain on the unsupervised databases' test songs> dB (target >= 0.5)``.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import machine  # noqa: E402

from common import Utils  # noqa: E402

Utils.use_fast_cpu_kernels()  # before TensorFlow is imported

import Evaluate  # noqa: E402
import Training  # noqa: E402  (the demo recipe: its sacred config, resolved with print_config)
from common.Config import ModelConfig  # noqa: E402
from evaluation import Comparison  # noqa: E402
from experiment import Trainer  # noqa: E402
from experiment.Settings import PhaseSettings  # noqa: E402
from experiment.TrainingData import TrainingData, load_dataset  # noqa: E402

LOGGER = logging.getLogger("semisup_gain")
RECIPE = "demo recipe"
# Each variant changes the demo recipe in one respect (sacred config keys, as on the command line).
VARIANTS = {
    RECIPE: {},
    "unpaired mixtures unscaled (the old deviation)": {"model_config.scale_unpaired_mixtures": False},
    "critic lr 5e-5 (the paper's)": {"model_config.init_disc_lr": 5e-5},
    "critic lr 5e-4": {"model_config.init_disc_lr": 5e-4},
    "critic Adam betas (0.9, 0.999) (the paper's)": {"model_config.critic_adam_betas": [0.9, 0.999]},
    "critic Adam betas (0.5, 0.9)": {"model_config.critic_adam_betas": [0.5, 0.9]},
    "no critic warm-up (the paper's)": {"model_config.critic_warmup": 0},
    "2 critic updates per separator update": {"model_config.num_disc": 2},
    "init from scratch (the paper's)": {"semisup_init": "scratch"},
    "init from the supervised model": {"semisup_init": "supervised"},
}
# Starting from the supervised model adds its updates to the semi-supervised model's budget, so
# its gain mixes the unpaired data's effect with more training: shown, but never chosen.
NOT_SAME_BUDGET = {"init from the supervised model"}
# Settings that only the semi-supervised phase reads: the supervised models ignore them, so all
# variants of a seed share one supervised model.
SEMI_SUPERVISED_ONLY = {
    "alpha",
    "beta",
    "lam",
    "init_disc_lr",
    "init_unsup_sep_lr",
    "num_disc",
    "critic_adam_betas",
    "critic_warmup",
    "critic_initial_filters",
    "critic_dense_units",
    "scale_unpaired_mixtures",
}
UNSUPERVISED = "unsupervised databases"
TARGET_DB = 0.5
WORST_ALLOWED_DB = -0.5


def resolved_config(updates):
    """Training.py's configuration with the ``demo`` named config and ``updates`` applied."""
    root = logging.getLogger()
    level = root.level  # sacred's --loglevel option sets the root logger's level
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run = Training.ex.run(
                "print_config", named_configs=["demo"], config_updates=dict(updates), options={"--loglevel": "ERROR"}
            )
    finally:
        root.setLevel(level)
    return run.config


def variant_updates(name, work_dir):
    """The sacred updates of variant ``name``, with every output inside ``work_dir``.

    A variant that only restates the recipe's own value is dropped by :func:`distinct_variants`.
    """
    updates = {
        "cache_dir": os.path.join(work_dir, "cache"),
        "model_config.model_base_dir": os.path.join(work_dir, "checkpoints"),
        "model_config.log_dir": os.path.join(work_dir, "logs"),
    }
    updates.update(VARIANTS[name])
    return updates


def distinct_variants(work_dir):
    """Variant names whose configuration differs from the demo recipe's (the recipe first)."""

    def settings(name):  # the run's unique id aside
        return {
            key: value
            for key, value in resolved_config(variant_updates(name, work_dir)).items()
            if key != "experiment_id"
        }

    recipe = settings(RECIPE)
    names = [RECIPE]
    for name in VARIANTS:
        if name != RECIPE and settings(name) != recipe:
            names.append(name)
        elif name != RECIPE:
            LOGGER.info("Variant %r is the demo recipe itself; not run separately", name)
    return names


def run_id(config, phase, seed):
    """Folder name of a run: the seed and a hash of every setting the phase depends on, so that
    a finished run is reused exactly when its configuration is unchanged."""
    model_config = {
        key: value
        for key, value in config["model_config"].items()
        if key not in ("model_base_dir", "log_dir") and (phase == "semisup" or key not in SEMI_SUPERVISED_ONLY)
    }
    settings = {
        "model_config": model_config,
        "patience": config["patience"],
        "max_epochs": config["max_epochs"],
        "partition_config": config["partition_config"],
        "demo_database": config["demo_database"],
    }
    if phase == "semisup":
        settings["semisup_init"] = config["semisup_init"]
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:10]
    return f"seed{seed}-{digest}"


def train_and_evaluate(name, seed, work_dir, data, supervised_state=None):
    """Train one phase of variant ``name`` with ``seed`` (resumable) and evaluate its best model.

    Returns:
        ``(state, {"valid": rows, "test": rows})``; the rows are cached as JSON in ``work_dir``.
    """
    config = resolved_config(dict(variant_updates(name, work_dir), seed=seed))
    phase = "sup" if supervised_state is None else "semisup"
    experiment_id = run_id(config, phase, seed)
    init = None
    if phase == "semisup" and config["semisup_init"] == "supervised":
        init = supervised_state.best_checkpoint
    settings = dataclasses.replace(PhaseSettings.from_config(config), experiment_id=experiment_id)
    state = Trainer.optimise(phase, data, ModelConfig.from_dict(config["model_config"]), settings, init_checkpoint=init)
    rows = {}
    for partition in ("valid", "test"):
        path = os.path.join(work_dir, "rows", f"{experiment_id}_{phase}_{partition}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                rows[partition] = json.load(handle)
            continue
        rows[partition] = Evaluate.evaluate_model(
            os.path.dirname(state.best_checkpoint),
            data[partition],
            num_workers=config["eval_workers"],
            batch_size=config["eval_batch_size"],
            model_name=phase,
        )
        Utils.atomic_write_json(path, rows[partition])
    return state, rows


def prepare_data(work_dir):
    """The demo dataset at the model's rate and its spectrogram store (made once in ``work_dir``)."""
    config = resolved_config(variant_updates(RECIPE, work_dir))
    dataset = load_dataset(
        config["dataset_xmls"],
        config["dataset_roots"],
        config["cache_dir"],
        config["dataset_pkl"],
        config["partition_config"],
        None,
        True,
        config["demo_database"],
    )
    return TrainingData.prepare(dataset, config["cache_dir"], ModelConfig.from_dict(config["model_config"]).signal)


def gains_of(results, name, partition, groups, seeds=None):
    """Comparison.gain_table of variant ``name`` against the supervised models of the same seeds
    (all of the variant's seeds unless ``seeds`` is given)."""
    seeds = sorted(results[name]) if seeds is None else seeds
    return Comparison.gain_table(
        [results["supervised"][seed][partition] for seed in seeds],
        [results[name][seed][partition] for seed in seeds],
        "SDR",
        groups,
    )


def cell(gains, database, source):
    for row in gains:
        if row["database"] == database and row["source"] == source:
            return row
    return None


def interval(row):
    return "-" if row is None else f"{row['mean']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"


def worst(gains):
    """The lowest mean gain over single databases and sources, as ``(value, "database/source")``."""
    rows = [row for row in gains if row["database"] not in (Comparison.ALL, UNSUPERVISED)]
    row = min(rows, key=lambda row: row["mean"])
    return row["mean"], f"{row['database']}/{row['source']}"


def recipe_table(gains):
    """Per database and source: mean SDR gain with interval, songs and seeds (test songs)."""
    lines = ["| database | source | SDR gain, dB [95% CI] | songs | seeds |", "|---|---|---|---|---|"]
    for row in gains:
        lines.append(f"| {row['database']} | {row['source']} | {interval(row)} | {row['songs']} | {row['seeds']} |")
    return "\n".join(lines)


def shared_seeds(results, names):
    """The seeds that every variant in ``names`` was run with: the fair ground for choosing."""
    return sorted(set.intersection(*(set(results[name]) for name in names)))


def variant_table(results, names, groups, supervised_database):
    """One row per variant: validation columns (the choice) and test columns (the report). When
    the recipe has more seeds than the variants, it gets a second row on the shared seeds only."""
    lines = [
        "| variant | seeds | valid: voice, unsup. DBs | valid: worst | test: voice, unsup. DBs | "
        f"test: voice, {supervised_database} | test: worst |",
        "|---|---|---|---|---|---|---|",
    ]
    shared = shared_seeds(results, names)
    rows = [(name, sorted(results[name])) for name in names]
    if len(results[RECIPE]) > len(shared):
        rows.insert(1, (RECIPE, shared))
    for name, seeds in rows:
        valid, test = gains_of(results, name, "valid", groups, seeds), gains_of(results, name, "test", groups, seeds)
        valid_worst, test_worst = worst(valid), worst(test)
        label = name + (" (more updates in all: not eligible)" if name in NOT_SAME_BUDGET else "")
        seed_label = ", ".join(str(seed) for seed in seeds) if len(seeds) < len(results[RECIPE]) else str(len(seeds))
        lines.append(
            f"| {label} | {seed_label} | {interval(cell(valid, UNSUPERVISED, 'voice'))} | "
            f"{valid_worst[0]:+.2f} ({valid_worst[1]}) | {interval(cell(test, UNSUPERVISED, 'voice'))} | "
            f"{interval(cell(test, supervised_database, 'voice'))} | {test_worst[0]:+.2f} ({test_worst[1]}) |"
        )
    return "\n".join(lines)


def chosen_on_validation(results, names, groups):
    """The selection rule, on the seeds all variants share: the highest validation voice gain on
    the unsupervised databases among the same-budget variants whose every validation
    database/source stays above -0.5 dB."""
    seeds = shared_seeds(results, names)
    scored = []
    for name in (name for name in names if name not in NOT_SAME_BUDGET):
        valid = gains_of(results, name, "valid", groups, seeds)
        if worst(valid)[0] >= WORST_ALLOWED_DB:
            scored.append((cell(valid, UNSUPERVISED, "voice")["mean"], name))
    return max(scored)[1] if scored else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the demo recipe (default 3)")
    parser.add_argument("--variant-seeds", type=int, default=1, help="seeds of every other variant (default 1)")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=None,
        metavar="NAME",
        help=f"variants to run besides the recipe (default: all of {list(VARIANTS)})",
    )
    parser.add_argument(
        "--work-dir",
        default=os.path.join("bench_results", "semisup_gain"),
        help="checkpoints, caches and per-song rows (default bench_results/semisup_gain)",
    )
    args = parser.parse_args(argv)
    Utils.setup_logging()
    Training.prepare(2018)
    start = time.perf_counter()
    print(machine.cpu_description())
    work_dir = os.path.abspath(args.work_dir)
    data = prepare_data(work_dir)
    recipe = resolved_config(variant_updates(RECIPE, work_dir))
    supervised_database = recipe["partition_config"]["supervised_database"]
    groups = {UNSUPERVISED: sorted(recipe["partition_config"]["unsupervised_databases"])}
    names = [
        name for name in distinct_variants(work_dir) if args.variants is None or name in args.variants or name == RECIPE
    ]
    seeds = [recipe["seed"] + index for index in range(max(args.seeds, args.variant_seeds))]
    results = {"supervised": {}}
    for index, seed in enumerate(seeds):
        state, results["supervised"][seed] = train_and_evaluate(RECIPE, seed, work_dir, data)
        for name in names:
            if index < (args.seeds if name == RECIPE else args.variant_seeds):
                _, rows = train_and_evaluate(name, seed, work_dir, data, supervised_state=state)
                results.setdefault(name, {})[seed] = rows
    minutes = (time.perf_counter() - start) / 60

    test = gains_of(results, RECIPE, "test", groups)
    print(
        f"\nDemo recipe, test songs: SDR of the semi-supervised minus the supervised model, paired by song and "
        f"seed ({len(results[RECIPE])} seeds; {UNSUPERVISED} = {', '.join(groups[UNSUPERVISED])})"
    )
    print(recipe_table(test))
    print(
        "\nRecipe variants (each differs from the demo recipe in one respect). Choice rule, on the validation "
        f"songs only and on the seeds all variants share: the highest voice gain on the {UNSUPERVISED} among "
        f"same-budget variants with no validation database/source below {WORST_ALLOWED_DB} dB."
    )
    print(variant_table(results, names, groups, supervised_database))
    choice = chosen_on_validation(results, names, groups)
    print(
        f"\nThe rule picks on validation: {choice}"
        + ("" if choice == RECIPE else " (not the demo recipe: Training.py's demo config should be updated)")
    )
    gain = cell(test, UNSUPERVISED, "voice")
    test_worst = worst(test)
    print(
        f"Target: voice gain >= {TARGET_DB} dB with the interval above 0 (now {interval(gain)}), and no "
        f"database/source below {WORST_ALLOWED_DB} dB (worst {test_worst[0]:+.2f}, {test_worst[1]})."
    )
    print(f"Time: {minutes:.1f} min for this run (cached steps are not repeated); {machine.cpu_description()}")
    print(f"semisup_gain: {gain['mean']:.2f} dB (target >= {TARGET_DB})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
