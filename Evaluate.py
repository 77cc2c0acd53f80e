"""BSS Eval of a trained model on a partition's songs: separation in this process, metrics in workers.

:func:`evaluate_model` restores the separator of a checkpoint folder (Separation.Separator, which
ModelFolder.py restores), separates every song, and computes its metrics (Metrics.py: BSS Eval
v3 and/or v4, as selected by ``bss_eval``) in ``num_workers`` processes that never import
TensorFlow or re-run the main script (museval, for v4, imports musdb and stempeg but not
TensorFlow). It returns one row per song and source with the columns of
Results.per_song_columns, ready for Results.write_results.
"""

import concurrent.futures
import contextlib
import dataclasses
import logging
import multiprocessing
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from common import Utils
from evaluation.Metrics import (
    DEFAULT_BSS_EVAL,
    FRAMEWISE_V4,
    V4_FRAME_COUNTS,
    check_bss_eval,
    compute_song_metrics,
    metrics_of,
)
from evaluation.Separation import DEFAULT_BATCH_SIZE, Separator

LOGGER = logging.getLogger(__name__)

DEFAULT_NUM_WORKERS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclasses.dataclass
class SongJob:
    """Everything a BSS Eval worker needs for one separated song (picklable)."""

    index: int
    model: str
    database: str
    song: str
    source_names: Tuple[str, ...]
    source_paths: Tuple[Optional[str], ...]  # None: the song lacks the source (silence)
    mixture: np.ndarray  # [samples] at sample_rate
    estimates: Dict[str, np.ndarray]  # source -> [samples]
    sample_rate: int
    bss_eval: Tuple[str, ...] = DEFAULT_BSS_EVAL  # versions to compute, see Metrics.check_bss_eval


def evaluate_song(job: SongJob) -> List[dict]:
    """Load a song's true sources and compute its metrics; runs in a worker process.

    Returns:
        One per-song row per source: the columns of ``Results.per_song_columns`` for the job's
        BSS Eval versions and, with v4, ``framewise_v4`` (museval's values per 1-s frame, see
        ``Metrics.compute_song_metrics``; not a column, written as museval JSON).
    """
    import Input

    length = len(job.mixture)
    references = []
    for path in job.source_paths:
        if path is None:
            references.append(np.zeros(length, np.float32))
            continue
        audio = np.asarray(Input.read_audio(path, job.sample_rate, mono_downmix=True), np.float32)
        if len(audio) != length:
            LOGGER.debug("%s has %d samples, its mixture %d: fitted to the mixture", path, len(audio), length)
        references.append(Input.fit_length(audio, length))
    estimates = np.stack([job.estimates[name] for name in job.source_names])
    metrics = compute_song_metrics(np.stack(references), estimates, job.mixture, job.bss_eval, job.sample_rate)
    rows = []
    for name, values in zip(job.source_names, metrics):
        row = {"model": job.model, "database": job.database, "song": job.song, "source": name}
        row.update({metric: values[metric] for metric in metrics_of(job.bss_eval)})
        if "v4" in job.bss_eval:
            row.update({count: values[count] for count in V4_FRAME_COUNTS}, **{FRAMEWISE_V4: values[FRAMEWISE_V4]})
        row.update(
            undefined=bool(values["undefined_metrics"]),
            undefined_metrics=";".join(values["undefined_metrics"]),
            undefined_reason=";".join(values["undefined_reason"]),
            seconds=length / job.sample_rate,
        )
        rows.append(row)
    return rows


def evaluate_model(
    model_path: str,
    songs: Sequence[Sequence],
    num_workers: int = DEFAULT_NUM_WORKERS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model_name: Optional[str] = None,
    bss_eval: Sequence[str] = DEFAULT_BSS_EVAL,
    precision: Optional[str] = None,
) -> List[dict]:
    """Separate every song with a checkpoint's separator and compute its BSS Eval metrics.

    Separation runs in this process (TensorFlow); the metrics of each separated song are
    computed in ``num_workers`` worker processes ('spawn' context) while the next song is
    separated. A tqdm bar counts evaluated songs.

    Args:
        model_path: checkpoint folder (see :func:`find_checkpoint`).
        songs: ``[(mixture, *sources), ...]`` of ``Sample`` in the order of the model's
            ``sources``; a source the song lacks (``None`` or ``silent``, see
            ``Input.is_silent``) is silence. Audio is read mono at the model's sample rate.
        num_workers: BSS Eval processes; 1 computes in this process.
        batch_size: U-Net chunks per session call.
        model_name: ``model`` column of the rows; defaults to the checkpoint folder's name.
        bss_eval: BSS Eval versions, ``"v3"`` (the paper's) and/or ``"v4"`` (museval, SiSEC 2018;
            at the model's rate and mono, so comparable with SiSEC's 44.1 kHz stereo numbers in
            method, not in value); checked before anything is separated.
        precision: ``"float32"`` or ``"mixed"`` overrides the checkpoint's
            ``model_config.precision`` for the separation (``Separation.Separator``); None keeps it.

    Returns:
        Per-song rows (see :func:`evaluate_song`), songs in input order, sources in model order.

    Raises:
        Metrics.BssEvalSettingError: a wrong ``bss_eval``, or v4 without a usable museval.
    """
    import Input

    bss_eval = check_bss_eval(bss_eval)
    with Separator(model_path, batch_size, precision) as separator:
        name = model_name or _default_model_name(model_path)
        _check_songs(songs, separator.sources)

        def jobs():
            for index, song in enumerate(songs):
                mixture = Input.read_audio(song[0].path, separator.sample_rate, mono_downmix=True)
                yield SongJob(
                    index=index,
                    model=name,
                    database=song[0].database or "unknown",
                    song=_song_name(song[0]),
                    source_names=tuple(separator.sources),
                    source_paths=tuple(None if Input.is_silent(sample) else sample.path for sample in song[1:]),
                    mixture=mixture,
                    estimates=separator.separate(mixture),
                    sample_rate=separator.sample_rate,
                    bss_eval=bss_eval,
                )

        results = _run_jobs(jobs(), len(songs), num_workers)
    return [row for index in sorted(results) for row in results[index]]


def _run_jobs(jobs: Iterable[SongJob], total: int, num_workers: int) -> Dict[int, List[dict]]:
    """Evaluate jobs in-process or in a spawn process pool; returns ``index -> rows``."""
    results = {}
    with tqdm(total=total, desc="BSS Eval", unit="song", disable=None) as progress:
        if num_workers <= 1:
            for job in jobs:
                with _naming_the_song(job.song):
                    results[job.index] = evaluate_song(job)
                progress.update()
            return results
        # 'spawn': the parent holds a TensorFlow session, which must not be forked; and unlike
        # forkserver children, spawned ones get the thread settings of the current environment.
        context = multiprocessing.get_context("spawn")
        with (
            _single_threaded_math_in_children(),
            concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context) as pool,
        ):
            _start_workers(pool, num_workers)
            pending = {}
            for job in jobs:
                pending[pool.submit(evaluate_song, job)] = (job.index, job.song)
                if len(pending) >= 2 * num_workers:  # bound the separated songs held in memory
                    done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    _collect(done, pending, results, progress)
            _collect(concurrent.futures.as_completed(list(pending)), pending, results, progress)
    return results


def _start_workers(pool, num_workers):
    """Start the pool's processes now, with the main script hidden from them.

    A spawned child re-runs the parent's main script; for Training.py that means importing
    TensorFlow (about 12 s and 650 MB per process on our machine) for nothing. The pool
    starts a process per submitted job while none is idle, so ``num_workers`` quick jobs
    submitted inside :func:`Utils.main_script_hidden` start them all.
    """
    with Utils.main_script_hidden():
        started = [pool.submit(os.getpid) for _ in range(num_workers)]
    concurrent.futures.wait(started)


@contextlib.contextmanager
def _single_threaded_math_in_children():
    """One BLAS/OpenMP thread per worker process (one process per core instead of oversubscribing).

    Spawned children read these variables when they start, which happens while the pool is in
    use, so they are set for the pool's lifetime; settings the user made are kept.
    """
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: "1" for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _collect(futures, pending, results, progress):
    """Move finished futures' rows from ``pending`` (future -> (index, song)) into ``results``."""
    for future in futures:
        index, song = pending.pop(future)
        with _naming_the_song(song):
            results[index] = future.result()
        progress.update()


@contextlib.contextmanager
def _naming_the_song(song):
    """Re-raise a failure of one song's evaluation with the song's name in the message (a file
    that cannot be used keeps its own error, which names the file)."""
    import Input

    try:
        yield
    except Input.UnreadableAudioError:
        raise
    except Exception as error:
        raise RuntimeError(f"Evaluating song {song!r} failed: {error}") from error


def _check_songs(songs, sources):
    for song in songs:
        if len(song) != 1 + len(sources):
            raise ValueError(
                f"Song {song[0].path if song else song!r} has {len(song)} files; the model expects "
                f"(mixture, {', '.join(sources)})."
            )


def _song_name(sample):
    return sample.song or os.path.basename(os.path.dirname(sample.path)) or os.path.basename(sample.path)


def _default_model_name(model_path):
    path = os.path.normpath(os.path.abspath(model_path))
    if os.path.isfile(path + ".index"):
        path = os.path.dirname(path)
    name = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) if name == "best" else name
