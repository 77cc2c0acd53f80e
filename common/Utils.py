"""Small helpers shared by every module: atomic file writes and logging setup.

Every file this project writes (XMLs, dataset.pkl, derived audio, model configurations,
results) goes through :func:`atomic_write` so that an interrupted run never leaves a
half-written file behind: the content is written to a temporary file in the same folder
and moved into place with ``os.replace``, which is atomic on POSIX and Windows. The file
gets the permissions any other tool would give it: those of the file it replaces, or
``0666`` less the process's umask for a new one (the temporary file alone would be ``0600``).
A write that fails (a full disk, a read-only folder, a path under a file) raises
:class:`OutputError`, whose one-line message names the path and the cause.
:func:`check_writable` tests an output folder before a long job, :func:`exclusive_lock` claims
one for a single process.
"""

import contextlib
import errno
import io
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import types
from typing import IO, Iterator, Mapping, Optional, TextIO

import numpy as np
import soundfile

_UMASK_LOCK = threading.Lock()


class OutputError(OSError, ValueError):
    """A file or folder cannot be written; the message names the path and the cause.

    An ``OSError`` (``errno`` is the cause's) and a ``ValueError``, so that the commands show it
    as one message, like other problems with the user's settings.
    """


def output_error(path: str, error: OSError, what: str = "write") -> OutputError:
    """An :class:`OutputError` "Cannot <what> <path>: <cause>" for an ``OSError`` met writing ``path``."""
    if isinstance(error, OutputError):
        return error
    cause = error.strerror or str(error) or type(error).__name__
    wrapped = OutputError(f"Cannot {what} {path}: {cause}")
    wrapped.errno = error.errno
    return wrapped


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs: object) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it onto ``path`` on success.

    Args:
        path: destination file path; its folder is created if missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **open_kwargs: passed on to ``open`` (for example ``encoding``).

    Yields:
        The open file object. If the ``with`` body raises, the temporary file is removed
        and ``path`` is left untouched.

    Raises:
        OutputError: the folder cannot be created or the file cannot be written (for example
            ``No space left on device``), naming ``path``; nothing is left at ``path`` then.
    """
    with _naming_the_output(path):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with _naming_the_output(path):
            os.chmod(tmp_path, _new_file_mode(path))
            handle = os.fdopen(fd, mode, **open_kwargs)
        with handle:
            with _naming_the_output(path, errors_with_errno_only=True):
                yield handle
            with _naming_the_output(path):
                handle.flush()
                os.fsync(handle.fileno())
        with _naming_the_output(path):
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def write_beside(path: str, data: bytes) -> str:
    """Write ``data`` into a hidden temporary file beside ``path`` (synced, with the permissions
    ``path`` will get) and return its name: the first half of an atomic write, for writing several
    files all or none (move each into place with ``os.replace``; remove them on failure).

    Raises:
        OutputError: naming ``path`` and the cause; no temporary file is left then.
    """
    with _naming_the_output(path):
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with _naming_the_output(path):
            os.chmod(tmp_path, _new_file_mode(path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise
    return tmp_path


@contextlib.contextmanager
def _naming_the_output(path, errors_with_errno_only=False):
    """Re-raise an ``OSError`` as :class:`OutputError` naming ``path``. In the caller's ``with``
    body only the system's I/O errors (with an ``errno``) are ours: a full disk while writing."""
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        if errors_with_errno_only and error.errno is None:
            raise
        raise output_error(path, error) from error


def check_writable(folder: str, needed_bytes: int = 0) -> None:
    """Check, before a long job, that files can be written into ``folder`` (created later if missing).

    A small file is written and removed in ``folder`` or, if it does not exist yet, in its
    closest existing parent (nothing is created), and the free space there is compared with
    ``needed_bytes``.

    Raises:
        OutputError: one line naming ``folder`` and the cause (a path component that is a file,
            a read-only or full file system, too little free space).
    """
    folder = os.path.abspath(os.fspath(folder))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputError(f"Cannot write into {folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-", suffix=".tmp")
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
        usage = os.statvfs(existing) if hasattr(os, "statvfs") else None
    except OSError as error:
        raise output_error(folder, error, "write into") from error
    if usage is not None and needed_bytes > usage.f_bavail * usage.f_frsize:
        raise OutputError(
            f"Cannot write into {folder}: {os.strerror(errno.ENOSPC)} ({needed_bytes / 1e6:.1f} MB "
            f"needed, {usage.f_bavail * usage.f_frsize / 1e6:.1f} MB free)"
        )


def _new_file_mode(path):
    """Permission bits for a file written at ``path``: the existing file's, else 0666 & ~umask."""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(os.stat(path).st_mode)
    with _UMASK_LOCK:  # the umask can only be read by setting it
        umask = os.umask(0o077)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_json(path: str, obj: object) -> None:
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


def atomic_write_audio(
    path: str, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT", tags: Optional[Mapping[str, str]] = None
) -> None:
    """Write audio to a WAV (or FLAC, by extension) file atomically.

    Args:
        path: destination path; the format follows the extension (``.wav``, ``.flac``).
        audio: float array of shape [samples] or [samples, channels], values in [-1, 1]
            for integer subtypes; ``FLOAT`` (32-bit float WAV) keeps any value exactly.
        sample_rate: sampling rate in Hz.
        subtype: soundfile subtype, ``FLOAT`` by default so derived audio adds up exactly.
        tags: optional text tags stored in the file, ``{"software": ..., "comment": ...}``
            (soundfile's names; a WAV keeps them in its INFO chunk).

    Raises:
        OutputError: the file cannot be written (the message names it and the cause).
    """
    with atomic_write(path, "wb") as handle:
        handle.write(encode_audio(path, audio, sample_rate, subtype, tags))


def encode_audio(
    path: str, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT", tags: Optional[Mapping[str, str]] = None
) -> bytes:
    """The bytes of the audio file :func:`atomic_write_audio` writes at ``path`` (format by extension).

    Encoding in memory lets the file itself be written with plain file I/O, whose errors (a full
    disk) name their cause; libsndfile writing to a Python file hides them.
    """
    file_format = os.path.splitext(path)[1].lstrip(".").upper() or "WAV"
    audio = np.asarray(audio)
    buffer = io.BytesIO()
    with soundfile.SoundFile(
        buffer, "w", int(sample_rate), 1 if audio.ndim == 1 else audio.shape[1], subtype, format=file_format
    ) as sound:
        for name, text in (tags or {}).items():
            setattr(sound, name, text)
        sound.write(audio)
    return buffer.getvalue()


@contextlib.contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` (an advisory ``flock``) for the block; one process at a time.

    The lock is released when the block ends or the process dies; the file names the holder
    (process id, host, start time) for the message another process gets, and is removed on
    release.

    Args:
        path: lock file; its folder must exist.
        what: what the lock protects, for the message (e.g. ``"Output folder separated"``).

    Raises:
        OutputError: another process holds the lock (the message names it), or the lock file
            cannot be written.
    """
    import fcntl  # POSIX; the commands that claim outputs run on Linux and macOS

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise output_error(path, error, "create the lock file") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputError(
                f"{what} is in use by another run ({holder}; lock file {path}): wait for it to "
                "finish or choose another folder"
            ) from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        with _naming_the_output(path):
            os.ftruncate(fd, 0)
            os.write(fd, f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(fd)


class CurrentStderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain ``StreamHandler()`` keeps the ``sys.stderr`` of the moment it was made; sacred's
    output capture (mode "sys") swaps ``sys.stderr`` for a tee later, so records sent through
    such a handler would never reach the run's ``cout.txt``.
    """

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the handler always writes to the current ``sys.stderr``."""


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Configure the root logger once with a concise ``time level name: message`` format.

    The records go to the current ``sys.stderr`` (:class:`CurrentStderrHandler`), so sacred's
    captured output ``runs/<id>/cout.txt`` holds them as well as the terminal.

    Returns:
        The root logger (sacred experiments use it as their logger).
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
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
            new = text[len(self._returned) :]
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


def plain_numba_errors() -> None:
    """Keep numba from colouring its error messages (unless the user chose); call before importing librosa.

    Colouring calls ``colorama.init()`` whenever numba compiles (librosa's first STFT, during
    a run), which binds colorama's exit handler to the stdout of that moment: sacred's capture,
    closed by then, so every run in a terminal ended with an "Exception ignored" traceback.
    """
    os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")


def use_fast_cpu_kernels() -> None:
    """Ask TensorFlow for oneDNN kernels and a pooling allocator; call before importing it.

    The maths is the same (only the last float digits may differ); on CPUs without AVX-512,
    where TensorFlow leaves oneDNN off by default, a training step is about 1.7 times faster
    (bench/train_step.py). Values the user set in the environment win.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


@contextlib.contextmanager
def main_script_hidden() -> Iterator[None]:
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


def worker_context() -> multiprocessing.context.BaseContext:
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
    def measure(self) -> Iterator[None]:
        """Add the wall time the block takes to :attr:`seconds`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


@contextlib.contextmanager
def terminate_like_ctrl_c() -> Iterator[None]:
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
