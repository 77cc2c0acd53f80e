"""Benchmark of whole-song separation and BSS Eval (not a test; numbers depend on the machine).

A randomly initialised U-Net at the paper's shapes (input 350 x 158, output 258 x 66) is saved
into a temporary checkpoint folder, so the network's cost is the real one. Measured:

- separating a generated 3-minute song at 8192 Hz (a chord plus noise), with the chunks run
  through the network in batches (32 and 8) and one chunk per session call (the reference's
  way): real-time factor = audio seconds / wall-clock seconds (best of 3 runs);
- the U-Net alone (random magnitudes through ``Separator.predict``), one chunk per call and
  in batches: the most batching can gain on this machine, whatever the code around it does;
- BSS Eval seconds per minute of audio (``Metrics.compute_song_metrics`` on a generated minute):
  v3 alone (the paper's: estimates and mixture-as-estimate, mir_eval), v4 alone (museval,
  1-s frames) and both (the default), and what v4 adds (both / v3 alone);
- ``import museval`` in a fresh process that has already imported what a BSS Eval worker
  imports for v3 (the start-up cost v4 adds to each worker);
- ``Evaluate.evaluate_model`` on 8 generated 45-second songs with 1 and 2 worker processes
  (both versions), and with 2 workers and v3 alone.

Timings depend on other load on the machine: the table shows the load average before and
after. Run: ``.venv/bin/python bench/separate.py``. The last line is
``separate: <real-time factor> x real time (target >= 100)``.
"""

import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import Evaluate  # noqa: E402
from common import (
    Checkpoints,  # noqa: E402
    Utils,  # noqa: E402
)
from common.Config import ModelConfig  # noqa: E402
from evaluation import (
    Metrics,  # noqa: E402
    Separation,  # noqa: E402
)
from Sample import Sample  # noqa: E402

SR = 8192
PAPER_MODEL_CONFIG = ModelConfig()  # the defaults are the paper's settings (PAPER.md)
SONG_SECONDS = 180.0
BATCH_SIZE = 32
SMALL_BATCH_SIZE = 8
EVAL_SONGS = 8
EVAL_SONG_SECONDS = 45.0
TARGET_REAL_TIME = 100.0


def save_random_model(folder, model_config):
    """Save a freshly initialised separator (only ``separator/`` variables) and its config."""
    # Imported here: the BSS Eval workers re-import this script and should not load TensorFlow.
    import tensorflow as tf

    from Models import Inference
    from Models.Unet import Unet

    network = model_config.network
    input_shape = network.input_shape
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        Inference.build_inference(
            Unet(network.num_layers, network.num_initial_filters, network.sources),
            input_shape,
            reuse=False,
            name="mixture",
        )
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, os.path.join(folder, "model"), global_step=0)
    Checkpoints.write_model_config(folder, model_config)


def chord_and_noise(seconds, seed):
    """(accompaniment, voice) float32 [samples] at SR: a major chord and a gliding tone with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    root = 110.0 * 2 ** (seed % 12 / 12)
    chord = sum(0.15 * np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.26, 1.5, 2.0))
    accompaniment = chord + 0.02 * rng.standard_normal(len(t))
    voice = 0.2 * np.sin(2 * np.pi * (330 * t + 20 * np.sin(2 * np.pi * 0.3 * t))) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    return accompaniment.astype(np.float32), (voice + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def best_seconds(function, repeats):
    """Shortest wall-clock time of ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def time_separation(folder, audio, batch_size, repeats):
    with Separation.Separator(folder, batch_size=batch_size) as separator:
        return best_seconds(lambda: separator.separate(audio), repeats)


def network_ms_per_chunk(folder, batch_size, repeats=3, min_chunks=64):
    """Milliseconds per chunk of the U-Net alone (``Separator.predict`` on random magnitudes in
    batches of ``batch_size``; no slicing, STFT or ISTFT): what batching can gain at most."""
    with Separation.Separator(folder, batch_size=batch_size) as separator:
        batch = np.random.default_rng(0).random((batch_size,) + tuple(separator.input_shape) + (1,), np.float32)
        calls = max(1, min_chunks // batch_size)

        def run():
            for _ in range(calls):
                separator.predict(batch)

        return 1000.0 * best_seconds(run, repeats) / (calls * batch_size)


def time_bss_eval(bss_eval, seconds=60.0, repeats=2):
    """Seconds of compute_song_metrics with the ``bss_eval`` versions per minute of audio (v3:
    estimates plus mixture-as-estimate; v4: museval, 1-s frames); best of ``repeats`` runs."""
    accompaniment, voice = chord_and_noise(seconds, seed=1)
    references = np.stack([accompaniment, voice])
    rng = np.random.default_rng(2)
    estimates = references + 0.05 * rng.standard_normal(references.shape).astype(np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        Metrics.compute_song_metrics(references, estimates, references.sum(axis=0), bss_eval, SR)
        times.append(time.perf_counter() - start)
    return min(times) / (seconds / 60.0)


MUSEVAL_IMPORT = """
import sys, time
sys.path.insert(0, {root!r})
import numpy, scipy, mir_eval.separation, Evaluate, Input
from evaluation import Metrics  # a v3 worker's imports
start = time.perf_counter()
import museval
print(time.perf_counter() - start, "tensorflow" in sys.modules)
"""


def time_museval_import():
    """Seconds of ``import museval`` in a fresh process after a v3 worker's imports, and whether
    TensorFlow got imported (it must not)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    output = subprocess.run(
        [sys.executable, "-c", MUSEVAL_IMPORT.format(root=root)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout.split()
    return float(output[0]), output[1] == "True"


def make_songs(folder):
    songs = []
    for index in range(EVAL_SONGS):
        accompaniment, voice = chord_and_noise(EVAL_SONG_SECONDS, seed=10 + index)
        paths = []
        for name, audio in (("mixture", accompaniment + voice), ("accompaniment", accompaniment), ("voice", voice)):
            path = os.path.join(folder, f"song{index}", f"{name}.wav")
            Utils.atomic_write_audio(path, audio, SR)
            paths.append(path)
        songs.append(tuple(Sample.from_path(path, database="bench", song=f"song{index}") for path in paths))
    return songs


def time_evaluation(folder, songs, num_workers, bss_eval=Metrics.DEFAULT_BSS_EVAL):
    start = time.perf_counter()
    Evaluate.evaluate_model(folder, songs, num_workers=num_workers, batch_size=BATCH_SIZE, bss_eval=bss_eval)
    return time.perf_counter() - start


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model_folder = os.path.join(tmp, "model")
        save_random_model(model_folder, PAPER_MODEL_CONFIG)
        accompaniment, voice = chord_and_noise(SONG_SECONDS, seed=0)
        song = accompaniment + voice
        load_before = os.getloadavg()[0]
        batched = time_separation(model_folder, song, BATCH_SIZE, repeats=3)
        small_batches = time_separation(model_folder, song, SMALL_BATCH_SIZE, repeats=3)
        one_chunk = time_separation(model_folder, song, 1, repeats=3)
        network_one, network_batched = (network_ms_per_chunk(model_folder, size) for size in (1, BATCH_SIZE))
        bss_v3, bss_v4, bss_both = (time_bss_eval(versions) for versions in (["v3"], ["v4"], ["v3", "v4"]))
        museval_import, imports_tensorflow = time_museval_import()
        songs = make_songs(os.path.join(tmp, "songs"))
        eval_one = time_evaluation(model_folder, songs, 1)
        eval_two = time_evaluation(model_folder, songs, 2)
        eval_two_v3 = time_evaluation(model_folder, songs, 2, ["v3"])
        load_after = os.getloadavg()[0]

    input_shape, output_shape = PAPER_MODEL_CONFIG.network.input_shape, PAPER_MODEL_CONFIG.network.output_shape
    batched_rtf, one_chunk_rtf = SONG_SECONDS / batched, SONG_SECONDS / one_chunk
    rows = [
        ("CPU cores / load average before, after", f"{os.cpu_count()} / {load_before:.1f}, {load_after:.1f}"),
        (
            "network input / output (freq x frames)",
            f"{input_shape[0]}x{input_shape[1]} / {output_shape[0]}x{output_shape[1]}",
        ),
        (f"separate {SONG_SECONDS:.0f} s song, batch {BATCH_SIZE} (s)", f"{batched:.2f}"),
        (f"separate {SONG_SECONDS:.0f} s song, batch {SMALL_BATCH_SIZE} (s)", f"{small_batches:.2f}"),
        (f"separate {SONG_SECONDS:.0f} s song, one chunk per call (s)", f"{one_chunk:.2f}"),
        ("real-time factor, batched", f"{batched_rtf:.0f} x"),
        ("real-time factor, one chunk per call", f"{one_chunk_rtf:.0f} x"),
        ("speed-up of batching (target >= 3)", f"{one_chunk / batched:.2f} x"),
        (f"U-Net alone, ms per chunk: one per call / batch {BATCH_SIZE}", f"{network_one:.1f} / {network_batched:.1f}"),
        ("speed-up of batching, U-Net alone (the ceiling)", f"{network_one / network_batched:.2f} x"),
        ("BSS Eval v3 seconds per minute of audio", f"{bss_v3:.2f}"),
        ("BSS Eval v4 seconds per minute of audio", f"{bss_v4:.2f}"),
        ("BSS Eval v3+v4 seconds per minute of audio", f"{bss_both:.2f}"),
        ("added cost of v4: v3+v4 / v3 alone", f"{bss_both / bss_v3:.2f} x"),
        ("import museval in a worker (s) / imports TensorFlow", f"{museval_import:.2f} / {imports_tensorflow}"),
        (f"evaluate {EVAL_SONGS} songs of {EVAL_SONG_SECONDS:.0f} s, v3+v4, 1 worker (s)", f"{eval_one:.1f}"),
        (f"evaluate {EVAL_SONGS} songs of {EVAL_SONG_SECONDS:.0f} s, v3+v4, 2 workers (s)", f"{eval_two:.1f}"),
        ("speed-up of 2 workers", f"{eval_one / eval_two:.2f} x"),
        (f"evaluate {EVAL_SONGS} songs of {EVAL_SONG_SECONDS:.0f} s, v3 alone, 2 workers (s)", f"{eval_two_v3:.1f}"),
        ("added cost of v4 to evaluate_model, 2 workers", f"{eval_two / eval_two_v3:.2f} x"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'measurement':<{width}}  value")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(f"separate: {batched_rtf:.0f} x real time (target >= {TARGET_REAL_TIME:.0f})")


if __name__ == "__main__":
    main()
