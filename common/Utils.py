"""Small helpers shared by every module: atomic file writes and logging setup.

Every file this project writes (XMLs, dataset.pkl, derived audio, model configurations,
results) goes through :func:`atomic_write` so that an interrupted run never leaves a
half-written file behind: the content is written to a temporary file in the same folder
and moved into place with ``os.replace``, which is atomic on POSIX and Windows. The file
gets the permissions any other tool would give it: those of the file it replaces, or
``0666`` less the process's umask for a new one (the temporary file alone would be ``0600``).
"""

import contextlib
import json
import logging
import os
import multiprocessing
import re
import signal
import stat
import sys
import tempfile
import threading
import time
import types

_UMASK_LOCK = threading.Lock()

import numpy as np
import soundfile


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Open a temporary file beside ``path`` and move it onto ``path`` on success.

    Args:
        path: destination file path; its folder is created if missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **open_kwargs: passed on to ``open`` (for example ``encoding``).

    Yields:
        The open file object. If the ``with`` body raises, the temporary file is removed
        and ``path`` is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.chmod(tmp_path, _new_file_mode(path))
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def _new_file_mode(path):
    """Permission bits for a file written at ``path``: the existing file's, else 0666 & ~umask."""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(os.stat(path).st_mode)
    with _UMASK_LOCK:  # the umask can only be read by setting it
        umask = os.umask(0o077)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, default=_json_default)
        handle.write("\n")


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")


def atomic_write_audio(path, audio, sample_rate, subtype="FLOAT"):
    """Write audio to a WAV (or FLAC, by extension) file atomically.

    Args:
        path: destination path; the format follows the extension (``.wav``, ``.flac``).
        audio: float array of shape [samples] or [samples, channels], values in [-1, 1]
            for integer subtypes; ``FLOAT`` (32-bit float WAV) keeps any value exactly.
        sample_rate: sampling rate in Hz.
        subtype: soundfile subtype, ``FLOAT`` by default so derived audio adds up exactly.
    """
    file_format = os.path.splitext(path)[1].lstrip(".").upper() or "WAV"
    with atomic_write(path, "wb") as handle:
        soundfile.write(handle, np.asarray(audio), int(sample_rate), subtype=subtype, format=file_format)


class CurrentStderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain ``StreamHandler()`` keeps the ``sys.stderr`` of the moment it was made; sacred's
    output capture (mode "sys") swaps ``sys.stderr`` for a tee later, so records sent through
    such a handler would never reach the run's ``cout.txt``.
    """

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass  # always the current sys.stderr


def setup_logging(level=logging.INFO):
    """Configure the root logger once with a concise ``time level name: message`` format.

    The records go to the current ``sys.stderr`` (:class:`CurrentStderrHandler`), so sacred's
    captured output ``runs/<id>/cout.txt`` holds them as well as the terminal.

    Returns:
        The root logger (sacred experiments use it as their logger).
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               datefmt="%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)
    return root


_PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm: "desc:  40%|████      | 4/10 [00:01<00:01, 3.9step/s]"


class CapturedOutputFilter:
    """Sacred's captured-output filter: finished lines as the terminal finally shows them, no progress bars.

    Sacred calls the filter at every heartbeat with all it returned before plus the output since,
    and the file observer appends to ``cout.txt`` only what lies beyond the length written
    before; so the text returned must only ever grow at its end. A line is therefore passed on
    once it is finished (its newline has arrived), and never changed after. A progress bar
    redraws its line after carriage returns and clears it with spaces when it closes: a line
    holding a ``\\r`` keeps only the text after the last one (a log line printed where a bar
    was) and is left out if that is blank or a bar.
    """

    def __init__(self):
        self._returned = ""
        self._unfinished = ""

    def __call__(self, text: str) -> str:
        """The filtered output so far, given what this filter returned last plus the new output."""
        if text.startswith(self._returned):
            new = text[len(self._returned):]
        else:  # a new run of the experiment in this process: sacred starts again from ""
            self._returned, self._unfinished, new = "", "", text
        *lines, self._unfinished = (self._unfinished + new).split("\n")
        for line in lines:
            if "\r" in line:
                line = line.rstrip("\r").rsplit("\r", 1)[-1]
                if not line.strip() or _PROGRESS_BAR.search(line):
                    continue
            self._returned += line + "\n"
        return self._returned


def plain_numba_errors():
    """Keep numba from colouring its error messages (unless the user chose); call before importing librosa.

    Colouring calls ``colorama.init()`` whenever numba compiles (librosa's first STFT, during
    a run), which binds colorama's exit handler to the stdout of that moment: sacred's capture,
    closed by then, so every run in a terminal ended with an "Exception ignored" traceback.
    """
    os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")


def use_fast_cpu_kernels():
    """Ask TensorFlow for oneDNN kernels and a pooling allocator; call before importing it.

    The maths is the same (only the last float digits may differ); on CPUs without AVX-512,
    where TensorFlow leaves oneDNN off by default, a training step is about 1.7 times faster
    (bench/train_step.py). Values the user set in the environment win.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


@contextlib.contextmanager
def main_script_hidden():
    """Hide the main script from multiprocessing while worker processes are being started.

    A spawned (or forkserver) child re-runs the parent's main script to recreate its
    ``__main__``; for Training.py that imports TensorFlow in every worker (seconds of CPU and
    ~250 MB each). Workers that only need library modules (this one, AudioCache, ...) should
    be started inside ``with main_script_hidden():``: the script is swapped for an empty
    module for the few milliseconds of ``Process.start``. The target function must live in an
    importable module, not in the main script. With ``concurrent.futures.ProcessPoolExecutor``
    the processes start during ``submit``, so submit the jobs inside the block.
    """
    main_module = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main_module


def worker_context():
    """The multiprocessing context for worker processes: forkserver, or spawn where there is none.

    TensorFlow in the parent is not fork-safe, so workers never come from a plain fork; use
    together with :func:`main_script_hidden`.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Timer:
    """Accumulates the wall time spent waiting for batches."""

    def __init__(self):
        self.seconds = 0.0

    @contextlib.contextmanager
    def measure(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


@contextlib.contextmanager
def terminate_like_ctrl_c():
    """Inside the block, SIGTERM (sent by ``kill`` and by cluster schedulers before they kill a
    job) stops training as Ctrl-C does: a checkpoint is saved first."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
