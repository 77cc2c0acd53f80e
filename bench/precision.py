"""Benchmark of mixed precision against float32 (``model_config.precision``; not a test).

In one process, at the paper's shapes (batch 64, U-Net 350 x 158 -> 258 x 66, critics on
256 x 64), with the machine's mixed policy (Precision.py: bfloat16 on a CPU with
``avx512_bf16`` / ``amx_bf16``):

- speed, float32 against mixed, every run of one alternating with the same run of the other
  (so that other load on the machine slows both alike), medians: the supervised separator
  step; one update of all critics (one ``session.run``, as Training.py runs it); the
  semi-supervised separator update; the whole semi-supervised iteration (``num_disc`` = 5
  updates of all critics, then the separator update, as in the paper); and whole-song
  separation with ``Separation.Separator`` (a generated demo song);
- quality: both graphs start from the same initial weights and train ``--quality-steps`` (20)
  semi-supervised steps (one update of all critics, then the separator's) on the same random
  magnitudes; then every loss term is compared on one fixed batch. And the float32 model's
  separator, saved, separates the song once in float32 and once in mixed precision: the SDR
  (mir_eval ``bss_eval_sources``) and the plain SNR of the mixed estimates measured against the
  float32 ones.

``--compare-grappler`` adds the other way to get bfloat16 on a CPU, grappler's
``auto_mixed_precision_onednn_bfloat16`` rewrite of the float32 graph, to the speed table
(the project uses explicit casts, Models/Layers.py; Precision.py says why).

Run: ``.venv/bin/python bench/precision.py [--help]`` (about 5 minutes on 2 cores). On a CPU
without bfloat16 it says so and measures nothing. The last line is
``precision: <speed-up of the semi-supervised iteration> x float32 (target >= 1.5)``.
"""

import argparse
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import Utils  # noqa: E402

Utils.use_fast_cpu_kernels()

import numpy as np  # noqa: E402

from bench.machine import cpu_description  # noqa: E402
from bench.train_step import PAPER_CONFIG  # noqa: E402

TARGET = 1.5
# Quality limits (see print_tolerance): relative differences of loss terms after the same training
# steps, and the SDR of the mixed separation against the float32 separation.
LOSS_TOLERANCE = 0.03
SDR_TOLERANCE_DB = 30.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=PAPER_CONFIG.training.batch_size)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per single step (after a warm-up)")
    parser.add_argument("--semi-repeats", type=int, default=3, help="timed semi-supervised iterations")
    parser.add_argument("--quality-steps", type=int, default=20)
    parser.add_argument("--song-seconds", type=float, default=60.0)
    parser.add_argument("--intra-threads", type=int, default=0, help="0: one per core")
    parser.add_argument(
        "--compare-grappler",
        action="store_true",
        help="also time the grappler auto_mixed_precision_onednn_bfloat16 rewrite of the float32 graph",
    )
    return parser.parse_args()


@dataclasses.dataclass
class Variant:
    """One way of computing: a policy for the graph and a session configuration."""

    name: str
    policy: object
    grappler: bool = False

    def session_config(self, tf, args):
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=args.intra_threads, inter_op_parallelism_threads=1
        )
        if self.grappler:
            from tensorflow.core.protobuf import rewriter_config_pb2

            config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
                rewriter_config_pb2.RewriterConfig.ON
            )
        return config


class Running:
    """A training graph of one variant in its own ``tf.Graph`` and session."""

    def __init__(self, tf, args, variant, config, semi_supervised):
        from Models.TrainingGraph import build_training_graph

        self.variant = variant
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(0)
            self.model = build_training_graph(config, semi_supervised=semi_supervised, seed=0, policy=variant.policy)
            self.saver = tf.compat.v1.train.Saver()
            initialiser = tf.compat.v1.global_variables_initializer()
        self.session = tf.compat.v1.Session(graph=self.graph, config=variant.session_config(tf, args))
        self.session.run(initialiser)

    def run(self, fetches, feed):
        """``session.run`` with a feed made for any variant's graph (placeholders are matched by name)."""
        own = {self.graph.get_tensor_by_name(key.name): value for key, value in feed.items()}
        return self.session.run(fetches, own)

    def close(self):
        self.session.close()


def random_feed(model, rng, batch_size):
    """Linear magnitudes in [0, 2) for every placeholder the training steps need."""

    def magnitudes(shape):
        return rng.uniform(0.0, 2.0, size=(batch_size,) + tuple(shape) + (1,)).astype(np.float32)

    feed = model.feed_paired([magnitudes(model.input_shape)] + [magnitudes(model.output_shape) for _ in model.sources])
    if model.semi_supervised:
        feed.update(
            model.feed_unpaired(magnitudes(model.input_shape), [magnitudes(model.output_shape) for _ in model.sources])
        )
    return feed


def alternate(runs, repeats, warmup=1):
    """Median seconds of each ``{name: callable}``, the callables run in turn ``repeats`` times."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


# --- Quality -----------------------------------------------------------------------------------


def train_alike(tf, runnings, steps, batch_size):
    """Same initial weights and data for every running graph; ``steps`` semi-supervised steps.

    Returns:
        ``{variant: {loss name: value}}`` on a fixed batch after the steps.
    """
    reference = runnings[0]
    with tempfile.TemporaryDirectory() as folder:
        path = reference.saver.save(reference.session, os.path.join(folder, "initial"))
        for running in runnings[1:]:
            running.saver.restore(running.session, path)
    rng = np.random.default_rng(2018)
    for _ in range(steps):
        feed = random_feed(reference.model, rng, batch_size)
        for running in runnings:
            running.run(running.model.all_critics_train_op, feed)
            running.run(running.model.separator_train_op, feed)
    feed = random_feed(reference.model, np.random.default_rng(7), batch_size)
    losses = {}
    for running in runnings:
        model = running.model
        values = running.run({"separator": model.separator_scalars, "critics": model.critic_scalars}, feed)
        losses[running.variant.name] = dict(values["separator"], **values["critics"])
    return losses


def save_separator(tf, running, folder, model_config):
    """The separator weights of a running graph as a model folder Separation.Separator reads."""
    from common import Checkpoints

    with running.graph.as_default():
        saver = tf.compat.v1.train.Saver(var_list=running.model.separator_variables())
    Checkpoints.save_checkpoint(saver, running.session, folder, int(running.run(running.model.global_step, {})))
    Checkpoints.write_model_config(folder, model_config.replace(precision="float32"))


def demo_song(seconds, sample_rate):
    """A generated song (the demo database's paired family): mono float32 mixture [samples]."""
    from databases import DemoSongs

    rng = np.random.default_rng(13)
    family = DemoSongs.FAMILIES["DSD100"]
    plan = DemoSongs.draw_song_plan(rng, seconds, sample_rate, family.tempo_bpm)
    stems = DemoSongs.render_song(plan, rng, family)
    tracks = DemoSongs.peak_normalise([stem.audio for stem in stems], 0.9)
    return DemoSongs.mix(tracks).mean(axis=1).astype(np.float32)


def separation(folder, song, args):
    """Seconds of whole-song separation per precision, and the mixed estimates' agreement."""
    import mir_eval

    from evaluation import Separation

    separators = {name: Separation.Separator(folder, precision=name) for name in ("float32", "mixed")}
    estimates = {}

    def runner(name):
        def run():
            estimates[name] = separators[name].separate(song)

        return run

    seconds = alternate({name: runner(name) for name in separators}, max(args.repeats // 2, 2))
    for separator in separators.values():
        separator.close()
    sources = sorted(estimates["float32"])
    reference = np.stack([estimates["float32"][name] for name in sources])
    mixed = np.stack([estimates["mixed"][name] for name in sources])
    with warnings.catch_warnings():  # mir_eval 0.8 announces the function's removal in 0.9
        warnings.simplefilter("ignore", FutureWarning)
        sdr, _, _, _ = mir_eval.separation.bss_eval_sources(reference, mixed, compute_permutation=False)
    snr = [10 * math.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-30)) for ref, est in zip(reference, mixed)]
    return seconds, {name: (float(s), float(n)) for name, s, n in zip(sources, sdr, snr)}


# --- Report --------------------------------------------------------------------------------------


def print_speed(rows, names):
    header = f"{'measurement':<52}" + "".join(f" {name + ' s':>13}" for name in names)
    header += "".join(f" {'x ' + name:>11}" for name in names[1:])
    print(header)
    for label, seconds in rows:
        line = f"{label:<52}" + "".join(f" {seconds.get(name, math.nan):>13.3f}" for name in names)
        for name in names[1:]:
            line += f" {seconds['float32'] / seconds[name]:>10.2f}x" if name in seconds else f" {'-':>11}"
        print(line)


def print_quality(losses, agreement, steps):
    print(f"\nQuality after {steps} semi-supervised steps from the same weights and data (one fixed batch):")
    print(f"{'loss term':<36} {'float32':>12} {'mixed':>12} {'rel. diff':>10}")
    worst = 0.0
    for name, value in sorted(losses["float32"].items()):
        mixed = losses["mixed"][name]
        relative = abs(mixed - value) / max(abs(value), 1e-12)
        # Wasserstein estimates and critic losses are differences of nearly equal means.
        judged = not name.startswith(("wasserstein", "critic_loss", "gradient_penalty", "L_u", "unsupervised"))
        if judged:
            worst = max(worst, relative)
        print(f"{name:<36} {value:>12.6g} {mixed:>12.6g} {100 * relative:>9.2f}%{'' if judged else '  (difference)'}")
    print("\nWhole-song separation in mixed precision measured against float32 with the same weights:")
    for name, (sdr, snr) in agreement.items():
        print(f"  {name:<14} SDR {sdr:6.1f} dB (mir_eval bss_eval_sources)   SNR {snr:6.1f} dB")
    return worst, min(sdr for sdr, _ in agreement.values())


def print_tolerance(worst_loss, worst_sdr, steps):
    loss_verdict = "ok" if worst_loss <= LOSS_TOLERANCE else "TOO LARGE"
    sdr_verdict = "ok" if worst_sdr >= SDR_TOLERANCE_DB else "TOO LOW"
    print(f"""
Acceptable quality, and why:
- Loss terms (supervised loss, additive penalty, separator loss) within {100 * LOSS_TOLERANCE:.0f} % of float32
  after the same steps: bfloat16 rounds each value by up to 0.2 % (8-bit mantissa), ~0.4 % between
  neighbours, and rounding errors add up along the network like a random walk; {steps} Adam steps
  then let the two trajectories drift a little apart, as any change of summation order does.
  The critics' terms (Wasserstein estimate, critic loss, L_u, gradient penalty) are differences
  of nearly equal means or one-sided penalties near zero: printed, not judged relatively.
- Separation SDR of mixed against float32 >= {SDR_TOLERANCE_DB:.0f} dB: the difference then carries
  at most 0.1 % of the estimate's energy, which moves a BSS Eval SDR against the true sources
  (~5-10 dB for these models) by a few hundredths of a dB, far below the 0.5-1 dB differences
  between the methods the paper compares.
Measured: worst judged loss difference {100 * worst_loss:.2f} % ({loss_verdict}), worst separation SDR
{worst_sdr:.1f} dB ({sdr_verdict}).""")


def main():
    args = parse_args()
    import logging

    import tensorflow as tf

    from common import Precision

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tf.get_logger().setLevel(logging.ERROR)
    tf.compat.v1.disable_eager_execution()
    print(cpu_description())
    onednn = "on" if Precision.onednn_enabled() else "off"
    print(f"TensorFlow {tf.__version__}, oneDNN {onednn}; batch {args.batch_size}")
    policy = Precision.machine_policy("mixed")
    if not policy.mixed:
        print(
            f"No mixed precision on this machine: {policy.reason}. "
            "model_config.precision=mixed computes in float32 here; nothing to measure."
        )
        print("precision: 1.0 x float32 (target >= 1.5)")
        return
    print(f"mixed precision here: {policy.compute_dtype} ({policy.reason})")
    config = PAPER_CONFIG.replace(batch_size=args.batch_size)
    variants = [Variant("float32", Precision.FLOAT32), Variant("mixed", policy)]
    if args.compare_grappler:
        variants.append(Variant("grappler", Precision.FLOAT32, grappler=True))
    names = [variant.name for variant in variants]
    rows = []

    semi = [Running(tf, args, variant, config, semi_supervised=True) for variant in variants]
    losses = train_alike(
        tf, [running for running in semi if not running.variant.grappler], args.quality_steps, args.batch_size
    )
    feed = random_feed(semi[0].model, np.random.default_rng(1), args.batch_size)

    def critics(running):
        return lambda: running.run(running.model.all_critics_train_op, feed)

    def separator(running):
        return lambda: running.run(running.model.separator_train_op, feed)

    def iteration(running):
        def run():
            for _ in range(config.training.num_disc):
                running.run(running.model.all_critics_train_op, feed)
            running.run(running.model.separator_train_op, feed)

        return run

    rows.append(("all critics, one update", alternate({r.variant.name: critics(r) for r in semi}, args.repeats)))
    rows.append(("semi-sup. separator update", alternate({r.variant.name: separator(r) for r in semi}, args.repeats)))
    iteration_seconds = alternate({r.variant.name: iteration(r) for r in semi}, args.semi_repeats, warmup=0)
    rows.append((f"semi-sup. iteration ({config.training.num_disc}x critics + separator)", iteration_seconds))
    with tempfile.TemporaryDirectory() as folder:
        save_separator(tf, semi[0], folder, config)
        for running in semi:
            running.close()
        sup = [Running(tf, args, variant, config, semi_supervised=False) for variant in variants]
        sup_feed = random_feed(sup[0].model, np.random.default_rng(2), args.batch_size)
        rows.insert(
            0,
            (
                "supervised step",
                alternate(
                    {r.variant.name: (lambda r=r: r.run(r.model.separator_train_op, sup_feed)) for r in sup},
                    args.repeats,
                ),
            ),
        )
        for running in sup:
            running.close()
        song = demo_song(args.song_seconds, config.signal.expected_sr)
        song_seconds, agreement = separation(folder, song, args)
    rows.append((f"whole-song separation ({args.song_seconds:.0f} s song)", song_seconds))

    print(f"\nSpeed (median seconds; runs of the variants alternate; load average now {os.getloadavg()[0]:.2f}):")
    print_speed(rows, names)
    worst_loss, worst_sdr = print_quality(losses, agreement, args.quality_steps)
    print_tolerance(worst_loss, worst_sdr, args.quality_steps)
    speed_up = iteration_seconds["float32"] / iteration_seconds["mixed"]
    print(f"precision: {speed_up:.2f} x float32 (target >= {TARGET})")


if __name__ == "__main__":
    main()
