"""Benchmark of the paper's claim on the demo database: does semi-supervised training beat
supervised training, and by how much, across seeds? (Not a test: it trains for tens of minutes.)

The study is the sweep ``sweeps/semisup_gain.yaml`` (the demo recipe with 3 seeds, each recipe
variant with one): this script only runs it with experiment/Sweeps.py and prints ``compare``'s
table (docs/sweeps.md). There is no training loop here: every model is an ordinary run of
Training.py. Variants are chosen on the **validation** songs; the test columns are reported,
never used to choose. Everything is kept in the sweep's folder, so an interrupted run continues
where it stopped (``resubmit``) and a finished one prints its tables at once.

Run: ``.venv/bin/python bench/semisup_gain.py [--parallel N] [--executor slurm]``. The last line
is ``semisup_gain: <voice SDR gain on the unsupervised databases' test songs> dB (target >= 0.5)``,
of the models chosen on validation (the recipe's own comparison when nothing was chosen).
"""

import argparse
import csv
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import machine  # noqa: E402

from experiment import Sweeps  # noqa: E402
from experiment.SweepFile import load_sweep  # noqa: E402
from experiment.SweepRuns import PointRecord  # noqa: E402

LOGGER = logging.getLogger("semisup_gain")
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_FILE = os.path.join(PROJECT_DIR, "sweeps", "semisup_gain.yaml")
TARGET_DB = 0.5
RECIPE_COMPARISON = "recipe: semi-supervised vs recipe/supervised"


def headline(compare_csv: str) -> dict:
    """The test row (voice, unsupervised databases) of the comparison chosen on validation, else the recipe's."""
    with open(compare_csv, encoding="utf-8", newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["partition"] == "test" and row["source"] == "voice" and row["database"] == "unsupervised"
        ]
    chosen = [row for row in rows if row["comparison"].startswith("chosen on validation")]
    recipe = [row for row in rows if row["comparison"] == RECIPE_COMPARISON]
    if not (chosen or recipe):
        raise SystemExit(f"{compare_csv} has no test row for the unsupervised databases' voice")
    return (chosen or recipe)[0]


def main(argv=None) -> int:
    """Run (or continue) the sweep, wait for it, print the comparison and the headline gain."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    arguments = parser.parse_args(argv)
    os.chdir(PROJECT_DIR)  # the sweep's folder is relative to the project
    began = time.monotonic()
    print(machine.cpu_description())
    options = [SWEEP_FILE, "--executor", arguments.executor, "--parallel", str(arguments.parallel)]
    sweep = load_sweep(SWEEP_FILE)
    started = any(PointRecord.load(sweep.folder, point.id) for point in sweep.points)
    if Sweeps.main(["resubmit" if started else "submit"] + options) != 0:
        return 1
    while any(row["state"] in ("pending", "running") for row in Sweeps.states(sweep)):
        time.sleep(30)  # Slurm: the job array runs on
    print(Sweeps.format_states(Sweeps.states(sweep)))
    if Sweeps.main(["compare", SWEEP_FILE]) != 0:
        return 1
    gain = headline(os.path.join(sweep.folder, "compare", "compare.csv"))
    print(
        f"\n{gain['comparison']}, voice on the unsupervised databases' test songs: {float(gain['mean']):+.2f} dB "
        f"[{float(gain['low']):+.2f}, {float(gain['high']):+.2f}] over {gain['songs']} songs and {gain['seeds']} "
        f"seed(s); target >= {TARGET_DB} dB with the interval above 0"
    )
    print(
        f"Time: {(time.monotonic() - began) / 60:.1f} min for this run (finished runs are not repeated); "
        f"{machine.cpu_description()}"
    )
    print(f"semisup_gain: {float(gain['mean']):.2f} dB (target >= {TARGET_DB})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
