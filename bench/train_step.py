"""Benchmark of one training step at the paper's shapes (batch 64, 350x158 -> 258x66).

Measures, in one process and against the same CPU:
- the ceiling: a float32 2048x2048x2048 ``tf.matmul`` in GFLOP/s, timed once before every
  timed step (interleaved, so a busy machine slows both alike) and reported as the median;
- the supervised separator step (forward, backward, Adam update);
- the semi-supervised iteration as Training.py runs it: ``num_disc`` updates of all critics
  (one ``session.run`` per update, all critics sharing the separator's forward pass) plus one
  separator update; and its components;
- the share of wall time a supervised training loop waits for data from
  ``BatchGenerators.PairedBatchGenerator`` with the default workers on the demo database.

FLOPs are counted from the graph with ``tf.compat.v1.profiler`` (``float_ops``), which
has statistics for Conv2D and both convolution gradients, so backward passes are counted,
not estimated; only the ops a fetch actually runs (its ancestors) are summed.
Inputs are random linear magnitudes generated once with numpy.

Two process-wide TensorFlow settings are switched on by default because they make the same
model faster on CPU without changing its mathematics (compare with ``--onednn tf-default
--cpu-allocator default``): oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``; TensorFlow turns
them on by itself only on CPUs with AVX-512 neural-network extensions) and the pooling BFC allocator for CPU tensors
(``TF_CPU_ALLOCATOR_USE_BFC=true``), which keeps freed activation memory instead of handing
it back to the OS and faulting it in again on every step.

Usage: ``.venv/bin/python bench/train_step.py [--help]``.
The last line is ``train_step: <percent> % of matmul peak (target >= 50)``.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOGGER = logging.getLogger("bench.train_step")

from common.Config import ModelConfig  # noqa: E402  (no TensorFlow)

PAPER_CONFIG = ModelConfig()  # the defaults are the paper's settings


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=PAPER_CONFIG.training.batch_size)
    parser.add_argument("--sup-steps", type=int, default=6, help="timed supervised steps (after 1 warm-up)")
    parser.add_argument("--semi-iterations", type=int, default=2, help="timed semi-supervised iterations")
    parser.add_argument("--matmul-runs", type=int, default=10)
    parser.add_argument("--data-steps", type=int, default=20, help="training steps of the data-wait loop")
    parser.add_argument("--intra-threads", type=int, default=0, help="0: one per core")
    parser.add_argument("--inter-threads", type=int, default=1)
    parser.add_argument(
        "--cpu-allocator",
        choices=("bfc", "default"),
        default="bfc",
        help="bfc keeps freed tensor memory pooled instead of returning it to the OS",
    )
    parser.add_argument(
        "--onednn", choices=("on", "off", "tf-default"), default="on", help="TF_ENABLE_ONEDNN_OPTS=1 / 0 / unset"
    )
    parser.add_argument("--skip-semi", action="store_true")
    parser.add_argument("--skip-data", action="store_true")
    return parser.parse_args()


def configure_environment(args):
    """Settings TensorFlow reads when it is imported / creates its first allocator."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.cpu_allocator == "bfc":
        os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    if args.onednn != "tf-default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"


def session_config(tf, args):
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.intra_threads, inter_op_parallelism_threads=args.inter_threads
    )


# --- FLOP counting -------------------------------------------------------------------------------


def float_ops_per_op(tf, graph):
    """``op name -> float_ops`` from the TF profiler (needs static shapes to count an op)."""
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    root = tf.compat.v1.profiler.profile(graph, cmd="graph", options=options)
    counts, stack = {}, [root]
    while stack:
        node = stack.pop()
        counts[node.name] = node.float_ops
        stack.extend(node.children)
    return counts


def fetch_float_ops(counts, fetches):
    """Sum of float ops over every op that running ``fetches`` executes (their ancestors)."""
    seen, stack = set(), [getattr(fetch, "op", fetch) for fetch in fetches]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    return sum(counts.get(name, 0) for name in seen)


# --- Timing ------------------------------------------------------------------------------------------


class MatmulCeiling:
    """A float32 ``size^3`` matrix product in its own graph and session (result reduced so it runs)."""

    def __init__(self, tf, args, size=2048):
        self.flops = 2.0 * size**3
        self.graph = tf.Graph()
        with self.graph.as_default():
            a = tf.Variable(tf.random.normal([size, size], seed=1))
            b = tf.Variable(tf.random.normal([size, size], seed=2))
            self.product = tf.reduce_sum(tf.matmul(a, b))
            initialiser = tf.compat.v1.global_variables_initializer()
        self.session = tf.compat.v1.Session(graph=self.graph, config=session_config(tf, args))
        self.session.run(initialiser)
        for _ in range(2):
            self.session.run(self.product)

    def seconds(self):
        start = time.perf_counter()
        self.session.run(self.product)
        return time.perf_counter() - start

    def close(self):
        self.session.close()


def timed(run, ceiling, repeats, warmup=1):
    """Median seconds of ``run()`` and median matmul GFLOP/s, measured alternately.

    Returns:
        ``(median seconds of run, median matmul GFLOP/s, list of matmul GFLOP/s samples)``.
    """
    for _ in range(warmup):
        run()
    step_times, matmul_rates = [], []
    for _ in range(repeats):
        matmul_rates.append(ceiling.flops / ceiling.seconds() / 1e9)
        start = time.perf_counter()
        run()
        step_times.append(time.perf_counter() - start)
    return statistics.median(step_times), statistics.median(matmul_rates), matmul_rates


def random_inputs(np, rng, graph_model, batch_size):
    """Pre-generated random linear magnitudes for every placeholder of the training graph."""

    def magnitudes(shape):
        return rng.uniform(0.0, 2.0, size=(batch_size,) + tuple(shape) + (1,)).astype(np.float32)

    paired = [magnitudes(graph_model.input_shape)] + [magnitudes(graph_model.output_shape) for _ in graph_model.sources]
    feed = graph_model.feed_paired(paired)
    if graph_model.semi_supervised:
        feed.update(
            graph_model.feed_unpaired(
                magnitudes(graph_model.input_shape), [magnitudes(graph_model.output_shape) for _ in graph_model.sources]
            )
        )
    return feed


def build(tf, config, semi_supervised):
    from Models.TrainingGraph import build_training_graph

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        model = build_training_graph(config, semi_supervised=semi_supervised, seed=0)
    return graph, model


def _initialiser(tf, graph):
    with graph.as_default():
        return tf.compat.v1.global_variables_initializer()


def bench_supervised(tf, np, args, config, ceiling, rows):
    """Times the supervised separator step; appends its row and returns (seconds, flops, peak)."""
    graph, model = build(tf, config, semi_supervised=False)
    flops = fetch_float_ops(float_ops_per_op(tf, graph), [model.separator_train_op])
    feed = random_inputs(np, np.random.default_rng(0), model, config.training.batch_size)
    with tf.compat.v1.Session(graph=graph, config=session_config(tf, args)) as session:
        session.run(_initialiser(tf, graph))
        seconds, peak, _ = timed(lambda: session.run(model.separator_train_op, feed), ceiling, args.sup_steps)
    rows.append(("supervised step", seconds, flops, peak))
    return seconds, flops, peak


def bench_semi_supervised(tf, np, args, config, ceiling, rows):
    """Times a semi-supervised iteration (as Training.py runs it) and its parts."""
    graph, model = build(tf, config, semi_supervised=True)
    counts = float_ops_per_op(tf, graph)
    one_critic = model.sources[-1]
    flops = {
        "all": fetch_float_ops(counts, [model.all_critics_train_op]),
        "one": fetch_float_ops(counts, [model.critic_train_ops[one_critic]]),
        "separator": fetch_float_ops(counts, [model.separator_train_op]),
    }
    feed = random_inputs(np, np.random.default_rng(1), model, config.training.batch_size)
    num_disc, num_critics = config.training.num_disc, len(model.sources)

    def iteration():
        for _ in range(num_disc):
            session.run(model.critic_train_ops, feed)
        session.run(model.separator_train_op, feed)

    with tf.compat.v1.Session(graph=graph, config=session_config(tf, args)) as session:
        session.run(_initialiser(tf, graph))
        critics = timed(lambda: session.run(model.critic_train_ops, feed), ceiling, 3)
        one = timed(lambda: session.run(model.critic_train_ops[one_critic], feed), ceiling, 3)
        separator = timed(lambda: session.run(model.separator_train_op, feed), ceiling, 3)
        whole = timed(iteration, ceiling, args.semi_iterations, warmup=0)
    rows.append(("  all critics, one update (one session.run)", critics[0], flops["all"], critics[1]))
    rows.append((f"  one critic ({one_critic}), one update", one[0], flops["one"], one[1]))
    rows.append(("  semi-sup. separator update", separator[0], flops["separator"], separator[1]))
    rows.append(
        (
            f"semi-sup. iteration ({num_disc}x all critics + separator)",
            whole[0],
            num_disc * flops["all"] + flops["separator"],
            whole[1],
        )
    )
    rows.append(
        (
            "  (critics in separate runs, as the reference: estimate)",
            num_disc * num_critics * one[0] + separator[0],
            num_disc * num_critics * flops["one"] + flops["separator"],
            one[1],
        )
    )


# --- Data wait -------------------------------------------------------------------------------------


def demo_songs(target_dir):
    """Paired (mixture, accompaniment, voice) songs of the demo database's supervised part."""
    import Datasets
    from databases import DemoDatabase

    roots = DemoDatabase.generate_demo_database(os.path.join(target_dir, "audio"), seed=0)
    dataset = Datasets.get_dataset(
        xml_paths={},
        dataset_roots=roots,
        cache_dir=os.path.join(target_dir, "cache"),
        pkl_path=os.path.join(target_dir, "dataset.pkl"),
    )
    return dataset["train_sup"]


def bench_data_wait(tf, args, config):
    """Fraction of wall time a supervised training loop spends in ``get_batch``.

    Returns:
        ``(fraction, steps, seconds)`` over the steady-state steps (after the first batch,
        which waits for the cache to fill), or ``None`` with a logged reason if BatchGenerators.py /
        the demo database are not available.
    """
    try:
        from pipeline import BatchGenerators

        generator_class = BatchGenerators.PairedBatchGenerator
    except (ImportError, AttributeError) as error:
        LOGGER.warning(
            "Data-wait measurement skipped: BatchGenerators.PairedBatchGenerator is not available (%s)", error
        )
        return None
    graph, model = build(tf, config, semi_supervised=False)
    with (
        tempfile.TemporaryDirectory() as folder,
        tf.compat.v1.Session(graph=graph, config=session_config(tf, args)) as session,
    ):
        try:
            songs = demo_songs(folder)
        except (ImportError, AttributeError) as error:
            LOGGER.warning("Data-wait measurement skipped: the demo database cannot be built (%s)", error)
            return None
        session.run(_initialiser(tf, graph))
        generator = generator_class(
            songs,
            model.input_shape,
            model.output_shape,
            config.training.batch_size,
            config.signal.expected_sr,
            config.signal.mono_downmix,
            config.signal.num_fft,
            config.signal.num_hop,
            config.pipeline.duration,
            config.pipeline.cache_size,
            config.pipeline.num_workers,
            config.pipeline.min_replacement_rate,
            seed=0,
        )
        with generator:
            session.run(model.separator_train_op, model.feed_paired(generator.get_batch()))  # cache fill
            waiting, start = 0.0, time.perf_counter()
            for _ in range(args.data_steps):
                fetch_start = time.perf_counter()
                batch = generator.get_batch()
                waiting += time.perf_counter() - fetch_start
                session.run(model.separator_train_op, model.feed_paired(batch))
            total = time.perf_counter() - start
    return waiting / total, args.data_steps, total


# --- Report ---------------------------------------------------------------------------------------------


def print_table(rows):
    print(f"{'measurement':<58} {'median s':>9} {'GFLOP':>8} {'GFLOP/s':>8} {'matmul GFLOP/s':>15} {'% peak':>7}")
    for name, seconds, flops, peak in rows:
        rate = flops / seconds / 1e9
        print(f"{name:<58} {seconds:>9.3f} {flops / 1e9:>8.1f} {rate:>8.1f} {peak:>15.1f} {100 * rate / peak:>6.1f}%")


def main():
    args = parse_args()
    configure_environment(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import numpy as np
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    tf.compat.v1.disable_eager_execution()

    config = PAPER_CONFIG.replace(batch_size=args.batch_size)
    import machine

    print(machine.cpu_description())
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} at start; "
        f"intra_op_threads={args.intra_threads or 'auto'}, inter_op_threads={args.inter_threads or 'auto'}, "
        f"oneDNN {args.onednn}, CPU allocator {args.cpu_allocator}; batch {config.training.batch_size}"
    )
    print(
        "FLOPs: counted with tf.compat.v1.profiler (float_ops) over the ops each fetch runs, forward and "
        "backward convolutions included (not estimated). Peak: a 2048^3 float32 tf.matmul timed before "
        "each timed run (median)."
    )
    ceiling = MatmulCeiling(tf, args)
    rows = []
    matmul_s = statistics.median(ceiling.seconds() for _ in range(args.matmul_runs))
    rows.append(("matmul 2048x2048x2048 float32 (ceiling)", matmul_s, ceiling.flops, ceiling.flops / matmul_s / 1e9))
    sup_s, sup_flops, sup_peak = bench_supervised(tf, np, args, config, ceiling, rows)
    if not args.skip_semi:
        bench_semi_supervised(tf, np, args, config, ceiling, rows)
    ceiling.close()
    print_table(rows)
    print(f"(load average at the end of the timing: {os.getloadavg()[0]:.2f})")

    wait = None if args.skip_data else bench_data_wait(tf, args, config)
    if wait is None:
        print("data wait: SKIPPED (BatchGenerators.PairedBatchGenerator or the demo database is not available)")
    else:
        fraction, steps, seconds = wait
        print(
            f"data wait: {100 * fraction:.1f} % of wall time over {steps} supervised steps ({seconds:.1f} s) "
            f"with {config.pipeline.num_workers} workers (target <= 5)"
        )
    percent = 100.0 * sup_flops / sup_s / 1e9 / sup_peak
    print(f"train_step: {percent:.1f} % of matmul peak (target >= 50)")


if __name__ == "__main__":
    main()
