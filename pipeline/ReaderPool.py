"""Where cache items come from: reader processes writing into shared memory, or the calling process.

Both sources hold items in *slots*: arrays ``views[part][slot]`` that the cache points at
(see BatchGenerators). ``consume(slot, valid_frames)`` hands a freshly read slot to the cache
and returns the slot the cache let go of (None while it fills), which is then free to be read
into again. Items are never copied between reading and batching.

Reader processes never import the main script (Utils.main_script_hidden), ignore Ctrl-C and
SIGTERM (the trainer handles them and stops the readers), and exit by themselves within
:data:`POLL_SECONDS` when the trainer dies, whatever killed it.
"""

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
import traceback
import weakref
from typing import Callable, List, Optional, Sequence

import numpy as np

from common import Utils
from Input import NonFiniteAudioError
from pipeline.Sections import SectionReader, UnreadableFiles, read_good_item

# How often blocked waits wake up to check that the worker processes are alive.
POLL_SECONDS = 0.25
# Per-process budget for joining a worker at shutdown before it is killed.
JOIN_SECONDS = 2.0
# Workers read in the background: under CPU contention the trainer (and batch drawing) in the
# main process goes first; get_batch still blocks for fresh items when the replacement rate
# would fall below min_replacement_rate, which then leaves the CPU to the workers.
WORKER_NICENESS = 5

# ``consume(slot, valid_frames)``: the cache takes the freshly read ``slot`` and returns the slot
# it let go of (None while it fills).
Consume = Callable[[int, int], Optional[int]]


class InlineSource:
    """Reads items in the calling process (``num_workers=0``): deterministic given the seed."""

    def __init__(
        self, reader: SectionReader, seed_sequence: np.random.SeedSequence, unreadable: UnreadableFiles, num_slots: int
    ):
        """Slots: ``views[part]`` float32 ``[num_slots, *reader.item_shapes[part]]``; ``unreadable``
        collects the entries that fail to read."""
        self._reader, self._unreadable = reader, unreadable
        self._rng = np.random.default_rng(seed_sequence)
        self.views = [np.zeros((num_slots,) + tuple(shape), np.float32) for shape in reader.item_shapes]
        self._free_slots = collections.deque(range(num_slots))

    def drain(self, consume: Consume) -> int:
        """Nothing is read ahead in the calling process: consumes nothing and returns 0."""
        return 0

    def wait_one(self, consume: Consume) -> None:
        """Read one item into a free slot and hand it to ``consume``.

        Raises:
            RuntimeError: every entry of the reader is unreadable.
        """
        slot = self._free_slots.popleft()
        item = read_good_item(
            self._reader,
            self._unreadable.bad_entries,
            self._rng,
            self._unreadable.report,
            [view[slot] for view in self.views],
        )
        if item is None:
            self._free_slots.appendleft(slot)
            raise RuntimeError(self._unreadable.all_bad_message())
        freed = consume(slot, item[1])
        if freed is not None:
            self._free_slots.append(freed)

    def check(self) -> None:
        """Nothing to check: there are no worker processes."""

    def pids(self) -> List[int]:
        """No worker processes: an empty list."""
        return []

    def close(self) -> None:
        """Nothing to stop."""


def _worker_main(reader, seed_sequence, slots, free_slots, messages, stop_event, name):
    """Body of a worker process: read random sections into free shared slots until stopped.

    Messages to the parent (all small, so a killed worker never leaves half a message):
    ``("item", slot, valid_frames)``, ``("unreadable", index, path, reason)``,
    ``("all_unreadable",)``, ``("non_finite", path, reason)`` and ``("error", name, traceback_text)``.
    """
    # Ctrl-C and SIGTERM are the parent's to handle (a scheduler signals every process of a job,
    # and the parent saves a checkpoint first); the parent's stop event or its death ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):  # os.nice is POSIX only
        os.nice(WORKER_NICENESS)
    parent = multiprocessing.parent_process()
    try:
        rng = np.random.default_rng(seed_sequence)
        views = _slot_views(slots, reader.item_shapes)
        bad_entries = set()

        def report(index, path, reason):
            messages.put(("unreadable", index, path, reason))

        while not stop_event.is_set():
            if parent is not None and not parent.is_alive():
                return  # orphaned (the parent was killed): nobody will stop us
            slot = _take_free_slot(free_slots, stop_event, parent)
            if slot is None:
                return
            # Read straight into the shared slot: no copy. A failed read leaves the slot
            # unannounced, and the next item overwrites it completely.
            item = read_good_item(reader, bad_entries, rng, report, [view[slot] for view in views])
            if item is None:
                messages.put(("all_unreadable",))
                return
            messages.put(("item", slot, item[1]))
    except NonFiniteAudioError as error:
        messages.put(("non_finite", error.path, error.reason))
        sys.exit(1)
    except BaseException:  # report anything, then die: the parent turns it into an error
        messages.put(("error", name, traceback.format_exc()))
        sys.exit(1)


def _take_free_slot(free_slots, stop_event, parent):
    """Block until the parent frees a slot; None once stopped or orphaned."""
    while not stop_event.is_set():
        if parent is not None and not parent.is_alive():
            return None
        try:
            return free_slots.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
    return None


def _slot_views(slots, item_shapes):
    """numpy views [num_slots, *shape] on the shared float32 buffers."""
    return [
        np.frombuffer(buffer, dtype=np.float32).reshape((-1,) + tuple(shape))
        for buffer, shape in zip(slots, item_shapes)
    ]


class WorkerPool:
    """Worker processes writing items into shared-memory slots, announced by small messages."""

    def __init__(
        self,
        reader: SectionReader,
        seed_sequences: Sequence[np.random.SeedSequence],
        num_slots: int,
        unreadable: UnreadableFiles,
        name: str,
    ):
        """Start one worker process per seed sequence (named ``<name>-worker-<i>``), reading
        ``reader``'s items into ``num_slots`` shared slots: ``views[part]`` float32
        ``[num_slots, *reader.item_shapes[part]]``; ``unreadable`` collects the entries that fail."""
        context = Utils.worker_context()
        self._reader, self._unreadable = reader, unreadable
        self._slots = [context.RawArray("f", num_slots * int(np.prod(shape))) for shape in reader.item_shapes]
        self.views = _slot_views(self._slots, reader.item_shapes)
        self._free_slots, self._messages = context.Queue(), context.Queue()
        self._stop_event = context.Event()
        for slot in range(num_slots):
            self._free_slots.put(slot)
        self._processes = [
            context.Process(
                target=_worker_main,
                name=f"{name}-worker-{index}",
                daemon=True,
                args=(
                    reader,
                    seed,
                    self._slots,
                    self._free_slots,
                    self._messages,
                    self._stop_event,
                    f"{name}-worker-{index}",
                ),
            )
            for index, seed in enumerate(seed_sequences)
        ]
        self._finalizer = weakref.finalize(
            self, _shut_down, self._processes, self._stop_event, [self._free_slots, self._messages]
        )
        try:
            with Utils.main_script_hidden():
                for process in self._processes:
                    process.start()
        except BaseException:
            self.close()
            raise

    def drain(self, consume: Consume) -> int:
        """Consume every item already announced; returns how many."""
        count = 0
        while self._next_message(timeout=None, consume=consume):
            count += 1
        return count

    def wait_one(self, consume: Consume) -> None:
        """Block until one item arrives; raises if a worker dies or all files are unreadable."""
        while not self._next_message(timeout=POLL_SECONDS, consume=consume):
            self.check()

    def _next_message(self, timeout, consume):
        """Handle messages until an item was consumed (True) or none is waiting (False)."""
        while True:
            try:
                message = self._messages.get(timeout=timeout) if timeout else self._messages.get_nowait()
            except queue.Empty:
                return False
            if message[0] == "item":
                _, slot, valid = message
                freed = consume(slot, valid)
                if freed is not None:
                    self._free_slots.put(freed)
                return True
            self._handle_control(message)

    def _handle_control(self, message):
        kind = message[0]
        if kind == "unreadable":
            _, index, path, reason = message
            self._unreadable.report(index, path, reason)
        elif kind == "all_unreadable":
            raise RuntimeError(self._unreadable.all_bad_message())
        elif kind == "non_finite":
            raise NonFiniteAudioError(message[1], message[2])
        elif kind == "error":
            raise RuntimeError(f"Input worker {message[1]} failed:\n{message[2]}")

    def check(self) -> None:
        """Raise RuntimeError (with the worker's traceback if it sent one) if a worker died."""
        dead = multiprocessing.connection.wait([p.sentinel for p in self._processes], timeout=0)
        if not dead:
            return
        deadline = time.monotonic() + 1.0  # its last message may still be on its way
        while time.monotonic() < deadline:
            try:
                message = self._messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if message[0] == "item":
                self._free_slots.put(message[1])
            else:
                self._handle_control(message)
        process = next(p for p in self._processes if p.sentinel in dead)
        process.join(timeout=0.1)
        raise RuntimeError(
            f"Input worker {process.name} (pid {process.pid}) died unexpectedly "
            f"({_describe_exit(process.exitcode)}); see the log for its output"
        )

    def pids(self) -> List[int]:
        """Process ids of the workers (all started by ``__init__``)."""
        return [process.pid for process in self._processes]

    def close(self) -> None:
        """Stop and reap the workers and close the queues (safe to call repeatedly)."""
        self._finalizer()


def _describe_exit(exitcode):
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _shut_down(processes, stop_event, queues):
    """Stop and reap worker processes; also runs at interpreter exit if stop() was never called."""
    stop_event.set()  # workers ignore SIGTERM: they see this within POLL_SECONDS
    deadline = time.monotonic() + JOIN_SECONDS
    for process in processes:
        if process.pid is None:
            continue
        process.join(timeout=max(deadline - time.monotonic(), 0.05))
        if process.exitcode is None:
            process.kill()
            process.join(timeout=JOIN_SECONDS)
    for channel in queues:
        channel.cancel_join_thread()
        channel.close()
