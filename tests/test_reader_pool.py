"""ReaderPool.py: reader processes fill the cache, report crashes and deaths within seconds, leave
no process behind, end with their parent and never re-run the main script."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from pipeline import BatchGenerators

from conftest import ROOT, process_gone, wait_until
from songs import (
    BINS,
    FFT,
    HOP,
    SR,
    ExplodingSample,
    check_paired_alignment,
    chirp,
    chirp_song,
    generator_kwargs,
    make_sample,
)


def multiprocessing_helper(process):
    """multiprocessing's own helper processes (forkserver, resource tracker): direct children
    started with ``-c "from multiprocessing.<helper> import main..."``; workers forked by the
    forkserver inherit that command line but are not our direct children."""
    command = " ".join(process.cmdline())
    return process.ppid() == os.getpid() and (
        "multiprocessing.forkserver" in command or "multiprocessing.resource_tracker" in command
    )


def worker_children():
    """Live descendant processes of this test process, other than multiprocessing helpers."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and not multiprocessing_helper(child):
                alive.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def ignores_interrupts(pid):
    """True once the process ignores SIGINT and SIGTERM (Linux: the SigIgn mask in /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(line.split()[1] for line in status if line.startswith("SigIgn:"))
    return all(int(mask, 16) & (1 << (number - 1)) for number in (signal.SIGINT, signal.SIGTERM))


SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
with open({log!r}, "a") as log:  # a worker re-running this script would add a line
    log.write("imported\\n")
from pipeline import BatchGenerators
from Sample import Sample

if __name__ == "__main__":
    sample = Sample.from_path({path!r})
    generator = BatchGenerators.SingleSourceBatchGenerator([sample], ({bins}, 5), batch_size=2, num_fft={fft},
                                                           num_hop={hop}, duration=0.5, cache_size=2, num_workers=2,
                                                           seed=0)
    generator.get_batch()
    print(" ".join(map(str, generator.worker_pids())), flush=True)
    {ending}
"""


def test_workers_fill_the_cache_and_leave_no_process_behind(tmp_path):
    songs = [chirp_song(tmp_path, str(i), 2.0) for i in range(2)]
    before = set(worker_children())
    generator = BatchGenerators.PairedBatchGenerator(songs, (BINS, 20), (BINS, 10), **generator_kwargs(num_workers=2))
    with generator:
        pids = generator.worker_pids()
        assert len(pids) == 2 and set(pids) <= set(worker_children())
        for _ in range(5):
            mixture, accompaniment, voice = generator.get_batch()
        check_paired_alignment([mixture, accompaniment], songs, (BINS, 10), (BINS, 20))
        stats = generator.stats()
    assert stats["items_replaced"] >= 2 * 5 and stats["batches"] == 5
    assert all(process_gone(pid) for pid in pids)
    assert set(worker_children()) <= before

    with pytest.raises(ValueError, match="trainer failed"):
        with generator:  # restarts with fresh workers
            pids = generator.worker_pids()
            generator.get_batch()
            raise ValueError("trainer failed")
    assert pids and all(process_gone(pid) for pid in pids)

    generator.start()
    pids = generator.worker_pids()
    with pytest.raises(KeyboardInterrupt):
        with generator:
            if os.path.exists(f"/proc/{pids[0]}/status"):  # a worker still importing would die of it
                assert wait_until(lambda: all(ignores_interrupts(pid) for pid in pids), 10)
            for pid in pids:  # as a terminal's Ctrl-C (or a scheduler): the whole process group is signalled
                os.kill(pid, signal.SIGINT)
                os.kill(pid, signal.SIGTERM)
            time.sleep(0.3)
            assert generator.get_batch()[0].shape == (4, BINS, 20, 1)  # workers ignore both
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # interrupted long before
    assert all(process_gone(pid) for pid in pids)
    assert set(worker_children()) <= before


def test_crashing_worker_makes_get_batch_raise(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0), (ExplodingSample(), ExplodingSample(), ExplodingSample())]
    generator = BatchGenerators.PairedBatchGenerator(songs, (BINS, 12), (BINS, 12), **generator_kwargs(num_workers=1))
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        with generator:
            for _ in range(200):
                generator.get_batch()
    assert time.monotonic() - began < 20
    assert not generator.worker_pids()


def test_killed_worker_makes_get_batch_raise(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0)]
    with BatchGenerators.PairedBatchGenerator(
        songs, (BINS, 12), (BINS, 12), **generator_kwargs(num_workers=1)
    ) as generator:
        generator.get_batch()
        pid = generator.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="SIGKILL"):
            for _ in range(1000):
                generator.get_batch()
        assert time.monotonic() - began < 10


@pytest.mark.parametrize("ending, kill", [("pass", False), ("time.sleep(60)", True)])
def test_workers_end_with_their_parent(tmp_path, ending, kill):
    """No stop() at all: workers end at interpreter exit, or by themselves if the parent is
    killed; and they never re-run the main script (which may import TensorFlow)."""
    sample = make_sample(tmp_path / "a.wav", chirp(1.0, SR))
    log = tmp_path / "imports.log"
    script = tmp_path / "main_script.py"
    script.write_text(
        SCRIPT.format(root=ROOT, log=str(log), path=sample.path, bins=BINS, fft=FFT, hop=HOP, ending=ending)
    )
    # stderr is captured: after a SIGKILL the resource tracker warns about the semaphores it frees.
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in process.stdout.readline().split()]
        assert len(pids) == 2
        if kill:
            process.kill()
        process.wait(timeout=20)
        assert wait_until(lambda: all(process_gone(pid) for pid in pids), 10)
        assert log.read_text() == "imported\n"
    finally:
        process.kill()
        process.communicate()
