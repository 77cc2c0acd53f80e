"""compare (experiment/SweepCompare.py) on run folders written by hand: failures are shown per
model, validation chooses, updates and best epochs are read from the phase states."""

import argparse
import csv
import json
import math

from experiment import SweepCompare


def write_run(runs, number, command, config, rows, status="COMPLETED"):
    folder = runs / str(number)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"command": command, "status": status}))
    (folder / "config.json").write_text(json.dumps(config))
    with open(folder / "per_song.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "database", "song", "source", "SDR", "undefined_reason"])
        for row in rows:
            writer.writerow(row)


def write_state(base, experiment_id, phase, losses, steps_per_epoch):
    folder = base / "checkpoints" / f"{experiment_id}_{phase}"
    folder.mkdir(parents=True)
    history = [
        {
            "epoch": index + 1,
            "step": (index + 1) * steps_per_epoch,
            "valid_loss": loss,
            "seconds": 1.0,
            "improved": loss == min(losses[: index + 1]),
        }
        for index, loss in enumerate(losses)
    ]
    (folder / "training_state.json").write_text(
        json.dumps(
            {
                "phase": phase,
                "epoch": len(losses),
                "best_loss": min(losses),
                "history": history,
                "finished": True,
                "stop_reason": "validation loss did not improve for 1 epoch(s)",
            }
        )
    )


def config(experiment_id, seed, **changes):
    return dict(
        {
            "experiment_id": experiment_id,
            "seed": seed,
            "semisup_init": "scratch",
            "model_config": {"model_base_dir": "checkpoints", "alpha": 0.001},
            "partition_config": {"unsupervised_databases": ["U"]},
        },
        **changes,
    )


def rows(model, values, silent=()):
    return [
        [model, database, song, "voice", "" if song in silent else value, "silent estimate" if song in silent else ""]
        for (database, song), value in values.items()
    ]


def test_compare_shows_failures_per_model_chooses_on_validation_and_reports_updates(tmp_path, capsys):
    runs = tmp_path / "runs"
    test = {("P", "p1"): 5.0, ("U", "u1"): 1.0, ("U", "u2"): 2.0}
    number = 0
    for variant, alpha, gain in (("a", 0.001, 1.0), ("b", 0.01, 2.0)):
        for seed in (1, 2):
            experiment_id = f"{variant}{seed}"
            semi = {key: value + gain for key, value in test.items()}
            silent = ("u2",) if (variant, seed) == ("b", 2) else ()  # a dead output on one song
            number += 1
            write_run(
                runs,
                number,
                "main",
                config(experiment_id, seed, model_config={"model_base_dir": "checkpoints", "alpha": alpha}),
                rows("supervised", test) + rows("semi-supervised", semi, silent),
            )
            for phase, valid_gain in (("sup", 0.0), ("semisup", gain)):
                number += 1
                write_run(
                    runs,
                    number,
                    "evaluate",
                    dict(
                        config(experiment_id, seed),
                        partition="valid",
                        model_path=f"checkpoints/{experiment_id}_{phase}/best",
                    ),
                    rows(f"{experiment_id}_{phase}", {("U", "v1"): 3.0 + valid_gain}),
                )
                write_state(tmp_path, experiment_id, phase, [0.5, 0.4, 0.45], 40)
    write_run(runs, number + 1, "main", config("c1", 1), [], status="FAILED")  # not a result: left out

    SweepCompare.main(
        argparse.Namespace(
            paths=[str(tmp_path)],
            baseline=None,
            models=None,
            metric=None,
            choose_source=None,
            out=str(tmp_path / "out"),
        )
    )
    printed = capsys.readouterr().out
    with open(tmp_path / "out" / "compare.csv") as handle:
        table = list(csv.DictReader(handle))
    cell = {(row["comparison"], row["partition"], row["database"]): row for row in table}
    b = cell[("alpha=0.01: semi-supervised vs alpha=0.01/supervised", "test", "unsupervised")]
    # Seed 2's silent u2 scores as the lowest finite U value of both models (1.0): 1.0 - 2.0 = -1.0.
    assert (b["failures"], b["baseline_failures"], b["songs"], b["seeds"]) == ("1", "0", "2", "2")
    assert math.isclose(float(b["mean"]), (2.0 + 2.0 + 2.0 - 1.0) / 4)
    a = cell[("alpha=0.001: semi-supervised vs alpha=0.001/supervised", "valid", "all")]
    assert math.isclose(float(a["mean"]), 1.0) and a["failures"] == "0"
    chosen = [row for row in table if row["comparison"].startswith("chosen on validation")]
    assert chosen and chosen[0]["model"] == "alpha=0.01/semi-supervised"  # +2 dB on validation
    assert "Chosen on validation" in printed and "failures" in printed
    with open(tmp_path / "out" / "phases.csv") as handle:
        phases = list(csv.DictReader(handle))
    assert len(phases) == 8
    assert all(
        (row["updates"], row["epochs"], row["best_epoch"], row["best_step"]) == ("120", "3", "2", "80")
        for row in phases
    )
    assert (tmp_path / "out" / "compare.md").read_text().count("\n|") > 10
    assert "\\bottomrule" in (tmp_path / "out" / "compare.tex").read_text()


def test_choose_compares_variants_on_the_seeds_they_share():
    def valid_rows(value):
        return [{"database": "U", "song": "v1", "source": "voice", "SDR": value}]

    # "more" has an extra, lucky seed 3: on the shared seeds 1 and 2 "fewer" is better.
    valid = {
        ("fewer", "supervised"): {1: valid_rows(6.0), 2: valid_rows(6.0)},
        ("more", "supervised"): {1: valid_rows(5.0), 2: valid_rows(5.0), 3: valid_rows(20.0)},
    }
    assert SweepCompare.choose(valid, "supervised", "SDR", "voice") == ("fewer", 6.0)
    # Without a seed in common, every variant's own seeds count.
    valid[("other", "supervised")] = {4: valid_rows(7.0)}
    assert SweepCompare.choose(valid, "supervised", "SDR", "voice") == ("more", 10.0)
