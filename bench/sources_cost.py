"""Cost of one semi-supervised iteration for 2 and 4 sources, measured in one run.

Builds the semi-supervised training graph twice with the demo's sizes (the paper's network,
batch 8, ``num_disc`` 1 as ``with demo``): once with ``["accompaniment", "voice"]`` and once
with ``["drums", "bass", "other", "voice"]`` (``four_sources``). One iteration is what
experiment/Trainer.py runs: ``num_disc`` updates of all critics (one ``session.run``, the
critics sharing the separator's forward pass of the unpaired mixtures) and one separator
update. The two graphs are timed in alternation, round after round, so that a change of the
machine's load hits both alike; each figure is the median over the rounds (after one warm-up
round). Inputs are random linear magnitudes made once with numpy.

Printed: the CPU (model, vector flags, load average), then per number of sources the median
iteration, its critic updates and its separator update in ms, the critics' share of the
iteration, and the ratio 4 sources / 2 sources of each.

Usage: ``.venv/bin/python bench/sources_cost.py [--rounds N] [--batch-size B] [--num-disc K]``.
"""

import argparse
import logging
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import machine  # noqa: E402
import numpy as np  # noqa: E402

from common.Config import ModelConfig  # noqa: E402
from databases.Sources import DEFAULT_SOURCES, FOUR_STEMS  # noqa: E402

LOGGER = logging.getLogger("bench.sources_cost")
DEMO_BATCH_SIZE, DEMO_NUM_DISC = 8, 1  # Training.py's demo named config


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds (each times both graphs once)")
    parser.add_argument("--batch-size", type=int, default=DEMO_BATCH_SIZE)
    parser.add_argument("--num-disc", type=int, default=DEMO_NUM_DISC, help="critic updates per separator update")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: one per core)")
    return parser.parse_args(argv)


class SemiSupervisedStep:
    """One semi-supervised training graph in its own session, with a fixed random feed."""

    def __init__(self, tf, sources, batch_size: int, num_disc: int, threads: int):
        from Models.TrainingGraph import build_training_graph

        self.sources, self.num_disc = tuple(sources), num_disc
        config = ModelConfig().replace(sources=list(sources), batch_size=batch_size, num_disc=num_disc)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(0)
            self.model = build_training_graph(config, semi_supervised=True, seed=0)
            initialiser = tf.compat.v1.global_variables_initializer()
        from common.TensorFlowSetup import session_config

        options = session_config(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        self.session = tf.compat.v1.Session(graph=self.graph, config=options)
        self.session.run(initialiser)
        self.feed = self._random_feed(np.random.default_rng(0), batch_size)

    def _random_feed(self, rng, batch_size):
        model = self.model

        def magnitudes(shape):
            return rng.uniform(0.0, 2.0, size=(batch_size,) + tuple(shape) + (1,)).astype(np.float32)

        feed = model.feed_paired(
            [magnitudes(model.input_shape)] + [magnitudes(model.output_shape) for _ in self.sources]
        )
        feed.update(
            model.feed_unpaired(magnitudes(model.input_shape), [magnitudes(model.output_shape) for _ in self.sources])
        )
        return feed

    def time_round(self) -> dict:
        """Seconds of ``num_disc`` critic updates, of the separator update, and their sum (one iteration)."""
        began = time.perf_counter()
        for _ in range(self.num_disc):
            self.session.run(self.model.critic_train_ops, self.feed)
        critics = time.perf_counter() - began
        began = time.perf_counter()
        self.session.run(self.model.separator_train_op, self.feed)
        separator = time.perf_counter() - began
        return {"critics": critics, "separator": separator, "iteration": critics + separator}

    def close(self) -> None:
        """Close the session."""
        self.session.close()


def measure(tf, args) -> dict:
    """``{number of sources: {"iteration", "critics", "separator": median seconds}}``, graphs timed in alternation."""
    steps = [
        SemiSupervisedStep(tf, sources, args.batch_size, args.num_disc, args.threads)
        for sources in (DEFAULT_SOURCES, FOUR_STEMS)
    ]
    try:
        for step in steps:
            step.time_round()  # warm-up: graph optimisation, allocator
        times = {len(step.sources): [] for step in steps}
        for _ in range(args.rounds):
            for step in steps:
                times[len(step.sources)].append(step.time_round())
    finally:
        for step in steps:
            step.close()
    return {
        count: {part: statistics.median(row[part] for row in rows) for part in ("iteration", "critics", "separator")}
        for count, rows in times.items()
    }


def table(medians: dict, args) -> str:
    """The printed table: per number of sources the medians in ms and the critics' share, then the ratio."""
    lines = [
        f"semi-supervised iteration = {args.num_disc} x all critics + separator, batch {args.batch_size}, "
        f"median of {args.rounds} rounds",
        f"{'sources':<10} {'iteration ms':>13} {'critics ms':>11} {'separator ms':>13} {'critics share':>14}",
    ]
    for count, parts in sorted(medians.items()):
        lines.append(
            f"{count:<10} {1000 * parts['iteration']:>13.1f} {1000 * parts['critics']:>11.1f} "
            f"{1000 * parts['separator']:>13.1f} {100 * parts['critics'] / parts['iteration']:>13.1f}%"
        )
    two, four = medians[len(DEFAULT_SOURCES)], medians[len(FOUR_STEMS)]
    lines.append(
        f"{'4 / 2':<10} {four['iteration'] / two['iteration']:>13.2f} {four['critics'] / two['critics']:>11.2f} "
        f"{four['separator'] / two['separator']:>13.2f}"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    """Measure both graphs and print the CPU line and the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from common import TensorFlowSetup

    tf = TensorFlowSetup.import_tensorflow()
    tf.compat.v1.disable_eager_execution()
    print(machine.cpu_description())
    medians = measure(tf, args)
    print(table(medians, args))
    print(machine.cpu_description().split("; ")[-1] + " (after)")


if __name__ == "__main__":
    main()
