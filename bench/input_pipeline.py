"""Benchmark of the input pipeline (BatchGenerators.py) on the demo database at the paper's shapes.

The generators read what training reads: the model-rate copy of the dataset
(AudioCache.model_rate_dataset: every file converted once to 8192 Hz mono) and the magnitude
spectrograms of its ``train_sup`` and ``train_unsup`` files (AudioCache.magnitude_store: each
file's whole STFT magnitude computed once, passed to the generators as ``magnitudes=``), so the
workers copy spectrogram sections instead of computing STFTs. Both are one-off costs, reported
separately (files, seconds, MB written, and the time of a second call that reuses every file);
both are redone on every run (the bench's ``model_rate`` folder and its magnitude folder are
deleted first).

Measures, for the paired generator (train_sup) and the unpaired generators (train_unsup
mixtures with context, real voice excerpts with random gain), with the paper's settings
(batch 64, input 350 x 158, output 258 x 66, 4 workers, cache 64, 10 s sections):

- batches per second with ``min_replacement_rate`` = 8 enforced (what training gets);
- batches per second drawn from the cache alone (``min_replacement_rate`` = 0), with the
  replacement rate the workers manage meanwhile;
- peak resident memory (RSS, sampled with psutil) of the main process and of the workers
  (RSS of all workers, of the largest, and their unique memory USS: RSS counts the pages a
  worker shares with the forkserver it was forked from);
- the same memory on a copy of the database whose songs are 10 times longer: it must not
  grow, since workers read sections, never whole songs or whole spectrograms;
- CPU time per batch in the main process and per item in the workers (user + system; the
  memory sampler's thread excluded), and from them the paired rate two idle cores could give:
  the measured rates drop whenever other processes use the cores, above all for the workers,
  which run at a lower priority;
- the CPU cost of reading one cache item (measured in this process), from the original files
  (resampled, STFT), from the model-rate copies (STFT) and from the spectrogram store (a copy),
  and the paired rate the last one allows on idle cores.

The demo database and its 10x copy are generated once into ``<project>/cache/bench``.
Usage: ``python bench/input_pipeline.py [--seconds 8] [--cache-dir DIR]``.
The last line is ``input_pipeline: <paired batches/s> batches/s (target >= 50)`` with the
paired rate at ``min_replacement_rate`` = 8.
"""

import argparse
import hashlib
import logging
import os
import shutil
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import machine  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import soundfile  # noqa: E402

import Datasets  # noqa: E402
from common import Utils  # noqa: E402
from databases import (
    DatasetXML,  # noqa: E402
    DemoDatabase,  # noqa: E402
)
from pipeline import (
    AudioCache,  # noqa: E402
    BatchGenerators,  # noqa: E402
    ReaderPool,  # noqa: E402
)
from Sample import Sample  # noqa: E402

LOGGER = logging.getLogger("bench.input_pipeline")

INPUT_SHAPE, OUTPUT_SHAPE = (350, 158), (258, 66)  # Models/Unet.get_padding((256, 64)), 4 levels
SETTINGS = dict(
    batch_size=64,
    expected_sr=8192,
    mono_downmix=True,
    num_fft=512,
    num_hop=256,
    duration=10.0,
    cache_size=64,
    num_workers=4,
    min_replacement_rate=8,
    seed=0,
)
LONGER = 10
READING_CACHE = 16  # cache size of the generators that measure the reading cost
MB = 1024.0**2


class PeakMemory:
    """Samples the RSS of this process and of the generators' workers in a background thread."""

    def __init__(self, generator, interval=0.1):
        self._generator, self._interval = generator, interval
        self.main = self.workers_total = self.worker_max = self.workers_unique = 0
        self.thread_cpu = 0.0  # CPU seconds of the sampling thread itself
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            self.main = max(self.main, me.memory_info().rss)
            sizes, unique = [], []
            for pid in self._generator.worker_pids():
                try:
                    info = psutil.Process(pid).memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                sizes.append(info.rss)
                unique.append(info.uss)
            if sizes:
                self.workers_total = max(self.workers_total, sum(sizes))
                self.worker_max = max(self.worker_max, max(sizes))
                self.workers_unique = max(self.workers_unique, sum(unique))
            self.thread_cpu = time.thread_time()
            self._stop.wait(self._interval)


def demo_dataset(cache_dir):
    """train_sup and train_unsup of the demo database (generated once), as Training.py builds it."""
    demo_dir = os.path.join(cache_dir, "demo")
    roots = DemoDatabase.generate_demo_database(os.path.join(demo_dir, "audio"), seed=0)
    xmls = {name: os.path.join(demo_dir, name + ".xml") for name in roots}
    for name, xml_path in xmls.items():
        if not os.path.exists(xml_path):
            DatasetXML.write_empty_xml(xml_path, name)
    return Datasets.get_dataset(
        xml_paths=xmls, dataset_roots=roots, cache_dir=demo_dir, pkl_path=os.path.join(demo_dir, "dataset.pkl")
    )


def lengthened(sample, folder, factor):
    """A copy of ``sample`` repeated ``factor`` times in time (written once)."""
    digest = hashlib.sha1(sample.path.encode("utf-8")).hexdigest()[:12]
    path = os.path.join(folder, f"{digest}_{os.path.basename(sample.path)}")
    if not os.path.exists(path):
        audio, rate = soundfile.read(sample.path, dtype="float32", always_2d=True)
        Utils.atomic_write_audio(path, np.tile(audio, (factor, 1)), rate)
    return Sample.from_path(path, sample.database, sample.song)


def longer_dataset(dataset, folder, factor=LONGER):
    """train_sup and train_unsup with every song ``factor`` times longer."""
    return {
        "train_sup": [tuple(lengthened(sample, folder, factor) for sample in song) for song in dataset["train_sup"]],
        "train_unsup": [
            [lengthened(sample, folder, factor) for sample in samples] for samples in dataset["train_unsup"]
        ],
    }


def built_twice(build):
    """``build()``'s result, the seconds it took, and the seconds of a second call (which should
    find everything current and reuse it)."""
    began = time.monotonic()
    result = build()
    seconds = time.monotonic() - began
    began = time.monotonic()
    build()
    return result, seconds, time.monotonic() - began


def converted(dataset, cache_dir):
    """The model-rate dataset and its one-off cost: files, seconds, MB written, seconds of a
    second call (which must reuse every copy)."""
    model_rate, seconds, reuse = built_twice(
        lambda: AudioCache.model_rate_dataset(
            dataset, cache_dir, SETTINGS["expected_sr"], SETTINGS["mono_downmix"], num_workers=psutil.cpu_count()
        )
    )
    paths = {sample.path for sample in all_samples(model_rate)}
    return model_rate, {
        "files": len(paths),
        "seconds": seconds,
        "MB written": sum(map(os.path.getsize, paths)) / MB,
        "reuse s": reuse,
    }


def magnitude_folder(cache_dir):
    """The folder of the bench's magnitude spectrograms (at the SETTINGS' rate and STFT)."""
    return AudioCache.magnitude_folder(cache_dir, SETTINGS["expected_sr"], SETTINGS["num_fft"], SETTINGS["num_hop"])


def folder_megabytes(folder):
    """MB of the files in ``folder`` (0 if it does not exist)."""
    if not os.path.isdir(folder):
        return 0.0
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file()) / MB


def spectrograms(dataset, cache_dir):
    """The magnitude store of the model-rate ``dataset``'s train_sup and train_unsup files (what
    training builds) and its one-off cost: files, seconds, MB written, seconds of a second call
    (which must reuse every spectrogram)."""
    training = {key: dataset[key] for key in ("train_sup", "train_unsup")}
    size_before = folder_megabytes(magnitude_folder(cache_dir))
    store, seconds, reuse = built_twice(
        lambda: AudioCache.magnitude_store(
            training,
            cache_dir,
            SETTINGS["expected_sr"],
            SETTINGS["num_fft"],
            SETTINGS["num_hop"],
            num_workers=psutil.cpu_count(),
        )
    )
    return store, {
        "files": len(store),
        "seconds": seconds,
        "MB written": folder_megabytes(magnitude_folder(cache_dir)) - size_before,
        "reuse s": reuse,
    }


def all_samples(dataset):
    for partition in dataset.values():
        for entry in partition:
            yield from (sample for sample in entry if sample is not None)


def make_generators(dataset, min_replacement_rate, magnitudes=None, **overrides):
    """name -> generator factory for the paired and the unpaired generators of training, reading
    spectrogram sections from ``magnitudes`` (an ``AudioCache.MagnitudeStore``) if given."""
    settings = dict(SETTINGS, min_replacement_rate=min_replacement_rate, magnitudes=magnitudes, **overrides)
    mixtures, _, voices = dataset["train_unsup"]
    context = (INPUT_SHAPE[1] - OUTPUT_SHAPE[1]) // 2
    return {
        "paired (train_sup)": lambda: BatchGenerators.PairedBatchGenerator(
            dataset["train_sup"], INPUT_SHAPE, OUTPUT_SHAPE, **settings
        ),
        "unpaired mixtures": lambda: BatchGenerators.SingleSourceBatchGenerator(
            mixtures, INPUT_SHAPE, context_frames=context, **settings
        ),
        "unpaired voice": lambda: BatchGenerators.SingleSourceBatchGenerator(
            voices, OUTPUT_SHAPE, random_gain=(0.2, 1.2), **settings
        ),
    }


def cpu_seconds(pids):
    """User + system CPU seconds of the processes ``pids`` (those still running)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(make_generator, seconds):
    """Run one generator for ``seconds`` after its cache is full; returns a result row."""
    generator = make_generator()
    with PeakMemory(generator) as memory:
        began = time.monotonic()
        with generator:
            fill = time.monotonic() - began
            pids, items_before = generator.worker_pids(), generator.stats()["items_read"]
            main_before = time.process_time() - memory.thread_cpu
            workers_before = cpu_seconds(pids)
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                generator.get_batch()
            elapsed = time.monotonic() - began
            main_cpu = time.process_time() - memory.thread_cpu - main_before
            workers_cpu = cpu_seconds(pids) - workers_before
            stats = generator.stats()
    items = stats["items_read"] - items_before
    return {
        "batches/s": stats["batches"] / elapsed,
        "items/batch": stats["replacement_rate"],
        "wait %": 100.0 * stats["wait_seconds"] / elapsed,
        "fill s": fill,
        "main MB": memory.main / MB,
        "workers MB": memory.workers_total / MB,
        "worker max MB": memory.worker_max / MB,
        "workers USS MB": memory.workers_unique / MB,
        "main ms/batch": 1000.0 * main_cpu / max(stats["batches"], 1),
        "wkr ms/item": 1000.0 * workers_cpu / items if items else float("nan"),
    }


def reading_costs(dataset, magnitudes=None):
    """name -> :func:`reading_cost` of each generator of :func:`make_generators`."""
    factories = make_generators(
        dataset, READING_CACHE, magnitudes, num_workers=0, cache_size=READING_CACHE, batch_size=1
    )
    return {name: reading_cost(factory) for name, factory in factories.items()}


def reading_cost(make_generator, min_items=32, min_seconds=0.5):
    """CPU milliseconds to read one cache item, measured in this process (a generator with
    ``num_workers=0``, as :func:`reading_costs` makes it), so that it does not depend on what
    else loads the machine. Each batch is one window and replaces the whole cache, so nearly
    all the time is reading. As in the workers, the items are read into slots already used:
    the fill and a first batch (which pay for the first touch of the slots' memory) are not
    timed."""
    generator = make_generator()
    with generator:
        generator.get_batch()
        items_before, began = generator.stats()["items_read"], time.process_time()
        while True:
            generator.get_batch()
            items, spent = generator.stats()["items_read"] - items_before, time.process_time() - began
            if items >= min_items and spent >= min_seconds:
                return 1000.0 * spent / items


def print_one_off_table(title, costs):
    columns = ["files", "seconds", "MB written", "reuse s"]
    header = f"{title:<42} " + " ".join(f"{c:>13}" for c in columns)
    print(header)
    print("-" * len(header))
    for database, row in costs.items():
        print(f"{database:<42} " + " ".join(f"{row[c]:>13.1f}" for c in columns))


def print_table(rows):
    columns = [
        "batches/s",
        "items/batch",
        "wait %",
        "fill s",
        "main MB",
        "workers MB",
        "worker max MB",
        "workers USS MB",
        "main ms/batch",
        "wkr ms/item",
    ]
    header = f"{'generator':<24} {'database':<9} {'min rate':>8} " + " ".join(f"{c:>13}" for c in columns)
    print(header)
    print("-" * len(header))
    for (name, database, rate), row in rows:
        print(f"{name:<24} {database:<9} {rate:>8} " + " ".join(f"{row[c]:>13.1f}" for c in columns))


def print_reading_costs(costs, cores):
    """One line per generator: CPU ms/item from each source (``costs``: source -> name -> ms), and
    the rate the readers alone could feed at ``min_replacement_rate`` on idle cores with the
    spectrogram store's cost (the main process's batch assembly is not counted: see the
    "paired CPU per batch" line for both)."""
    rate = SETTINGS["min_replacement_rate"]
    for name, cost in costs["spectrogram store"].items():
        figures = " -> ".join(f"{costs[source][name]:5.2f} ({source})" for source in costs)
        print(
            f"reading cost {name:<20} {figures} CPU ms/item -> readers alone could feed "
            f"{cores * 1000.0 / (rate * cost):6.1f} batches/s at {rate} items/batch on {cores} idle cores"
        )


def prepare(cache_dir):
    """The demo database and its copy with ``LONGER`` times longer songs: database -> original
    dataset, model-rate dataset and magnitude store, and the one-off costs (``conversion`` and
    ``spectrograms``: database -> row). Both are rebuilt from scratch, so that their one-off
    costs are real."""
    original = demo_dataset(cache_dir)
    originals = {"demo": original, f"x{LONGER}": longer_dataset(original, os.path.join(cache_dir, f"demo_x{LONGER}"))}
    shutil.rmtree(os.path.join(cache_dir, "model_rate"), ignore_errors=True)
    shutil.rmtree(magnitude_folder(cache_dir), ignore_errors=True)
    datasets, stores, one_off = {}, {}, {"conversion": {}, "spectrograms": {}}
    for database, dataset in originals.items():
        datasets[database], one_off["conversion"][database] = converted(dataset, cache_dir)
    for database, dataset in datasets.items():
        stores[database], one_off["spectrograms"][database] = spectrograms(dataset, cache_dir)
    return originals, datasets, stores, one_off


def measure_all(datasets, stores, seconds):
    """Rows ``((generator, database, min rate), result)``: every generator on the demo database at
    ``min_replacement_rate`` 8 and 0 and on its longer copy at 8, reading the spectrogram stores."""
    rate = SETTINGS["min_replacement_rate"]
    rows = []
    for database, min_rate in (("demo", rate), ("demo", 0), (f"x{LONGER}", rate)):
        for name, factory in make_generators(datasets[database], min_rate, stores[database]).items():
            rows.append(((name, database, min_rate), measure(factory, seconds)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per row")
    parser.add_argument(
        "--cache-dir",
        default=os.path.join(ROOT, "cache", "bench"),
        help="where the demo database and its 10x copy are generated (once)",
    )
    args = parser.parse_args()
    Utils.setup_logging(logging.WARNING)
    originals, datasets, stores, one_off = prepare(args.cache_dir)
    dataset = datasets["demo"]
    seconds = {
        database: np.mean([song[0].duration for song in data["train_sup"]]) for database, data in datasets.items()
    }
    print(machine.cpu_description())
    print(
        f"demo database: {len(dataset['train_sup'])} paired songs, "
        f"{[len(samples) for samples in dataset['train_unsup']]} unpaired files, "
        f"mean song {seconds['demo']:.0f} s (x{LONGER} copy: {seconds[f'x{LONGER}']:.0f} s); "
        f"{psutil.cpu_count()} CPU cores; {args.seconds:.0f} s per row; "
        f"workers at niceness {ReaderPool.WORKER_NICENESS}"
    )

    cores = psutil.cpu_count()
    costs = {
        "original files": reading_costs(originals["demo"]),
        "model rate": reading_costs(dataset),
        "spectrogram store": reading_costs(dataset, stores["demo"]),
    }
    print(f"load average before: {os.getloadavg()[0]:.1f} (measured rates drop when other processes use the cores)")
    rows = measure_all(datasets, stores, args.seconds)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print()
    print_one_off_table(f"one-off conversion to {SETTINGS['expected_sr']} Hz mono", one_off["conversion"])
    print()
    print_one_off_table(
        f"one-off spectrograms ({SETTINGS['num_fft']} fft, hop {SETTINGS['num_hop']})", one_off["spectrograms"]
    )
    print()
    print_table(rows)
    print()
    print_reading_costs(costs, cores)

    def row(name, database, rate):
        return next(result for key, result in rows if key == (name, database, rate))

    paired = row("paired (train_sup)", "demo", SETTINGS["min_replacement_rate"])
    cache_only = row("paired (train_sup)", "demo", 0)
    long_paired = row("paired (train_sup)", f"x{LONGER}", SETTINGS["min_replacement_rate"])
    print()
    print(
        f"paired from the cache alone: {cache_only['batches/s']:.1f} batches/s while the workers replace "
        f"{cache_only['items/batch']:.2f} items/batch; with >= {SETTINGS['min_replacement_rate']} items/batch kept: "
        f"{paired['batches/s']:.1f} batches/s ({paired['items/batch']:.1f} items/batch)"
    )
    per_batch = paired["main ms/batch"] + paired["items/batch"] * paired["wkr ms/item"]
    print(
        f"paired CPU per batch: main {paired['main ms/batch']:.1f} ms + {paired['items/batch']:.1f} items x "
        f"{paired['wkr ms/item']:.2f} ms in the workers = {per_batch:.1f} ms -> at most "
        f"{cores * 1000.0 / per_batch:.1f} batches/s on {cores} idle cores"
    )
    print(
        f"peak memory with {LONGER}x longer songs (paired): main RSS {paired['main MB']:.0f} -> "
        f"{long_paired['main MB']:.0f} MB, workers RSS {paired['workers MB']:.0f} -> "
        f"{long_paired['workers MB']:.0f} MB, workers USS {paired['workers USS MB']:.0f} -> "
        f"{long_paired['workers USS MB']:.0f} MB"
    )
    print(f"input_pipeline: {paired['batches/s']:.1f} batches/s (target >= 50)")


if __name__ == "__main__":
    main()
