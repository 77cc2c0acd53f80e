"""TensorFlow in this process without its noise: start-up log lines once, no CUDA probe without a driver.

**Why TensorFlow's start-up lines printed twice.** ``import tensorflow`` loads two shared
libraries that each carry a copy of TensorFlow's start-up code: ``libtensorflow_framework.so.2``
and ``_pywrap_profiler_plugin.so`` (loaded through ``tf.profiler.experimental.client``). Both
copies log the oneDNN and CUDA-driver notices from their static initialisers through absl,
before ``absl::InitializeLog()``, and absl then writes every message to stderr whatever
``TF_CPP_MIN_LOG_LEVEL`` says. :func:`import_tensorflow` therefore sends file descriptor 2 through
:class:`StartupLogFilter` while TensorFlow loads: records below ``TF_CPP_MIN_LOG_LEVEL`` (default
2: errors and fatal errors only) are dropped, the others are printed once each, and any other
text passes unchanged. The filter runs in a small child process, so that a crash during the
import (a CPU without AVX aborts it) still shows its message. Python's own stderr output skips
the filter. To see the start-up lines again: ``TF_CPP_MIN_LOG_LEVEL=0 python Training.py ...``.

**Why "failed call to cuInit" on machines without a GPU.** The first session makes TensorFlow
create its devices; a CUDA build then initialises CUDA even when no driver library is installed
(it notes "Could not find cuda drivers" at import and calls ``cuInit`` all the same), and logs
the failure as an error. :func:`session_config` asks for no GPU device when :func:`no_cuda_driver`
says that no GPU can exist, so that no probe is made; on machines with a driver nothing changes.

This module imports only the standard library at the top: it also runs as the filter script.
"""

import contextlib
import ctypes
import functools
import os
import re
import signal
import subprocess
import sys
import types
from typing import TYPE_CHECKING, BinaryIO, Iterator

if TYPE_CHECKING:  # imported by import_tensorflow, behind the filter
    import tensorflow as tf

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_MIN_LOG_LEVEL = "2"  # TensorFlow's C++ errors and fatal errors; not its info or warnings
SEVERITIES = "IWEF"  # absl's info, warning, error, fatal: levels 0-3 of TF_CPP_MIN_LOG_LEVEL

# "I0000 00:00:1796257568.233280   11150 port.cc:153] oneDNN custom operations are on. ..."
_RECORD = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ (\S+)\] ?(.*)$")
# absl's note above the first message of each library copy; it matters only beside info lines.
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def min_log_level() -> int:
    """The ``TF_CPP_MIN_LOG_LEVEL`` in effect: 0 (everything) to 3 (fatal only); 0 if unset or unreadable."""
    try:
        return min(max(int(os.environ.get(LOG_LEVEL_VARIABLE, "0")), 0), len(SEVERITIES) - 1)
    except ValueError:
        return 0


class StartupLogFilter:
    """Decides line by line which of TensorFlow's C++ log output to keep.

    A record (``I0000 ... file.cc:12] message``) is kept if its severity reaches ``min_level``
    and the same message from the same source line was not kept before; the lines that follow
    a record without a record prefix of their own are its continuation and share its fate.
    Text before the first record is always kept.
    """

    def __init__(self, min_level: int):
        self.min_level = min_level
        self._seen = set()
        self._keep_current = True

    def keep(self, line: str) -> bool:
        """Whether to print ``line`` (one line of the stream, with or without its newline)."""
        text = line.rstrip("\r\n")
        if text == _ABSL_NOTICE:
            severity, key = "I", (_ABSL_NOTICE,)
        else:
            match = _RECORD.match(text)
            if match is None:
                return self._keep_current
            severity, key = match.group(1), match.groups()
        self._keep_current = SEVERITIES.index(severity) >= self.min_level and key not in self._seen
        if self._keep_current:
            self._seen.add(key)
        return self._keep_current


def filter_stream(source: BinaryIO, target: BinaryIO, min_level: int) -> None:
    """Copy ``source`` to ``target`` line by line as they arrive, through a :class:`StartupLogFilter`."""
    log_filter = StartupLogFilter(min_level)
    for line in iter(source.readline, b""):
        if log_filter.keep(line.decode("utf-8", "replace")):
            target.write(line)
            target.flush()


def import_tensorflow() -> types.ModuleType:
    """Import TensorFlow with its start-up log lines filtered by ``TF_CPP_MIN_LOG_LEVEL``.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` to 2 unless the user set it (TensorFlow's later C++ messages
    follow it too). Does nothing more if TensorFlow is already imported.

    Returns:
        The ``tensorflow`` module.
    """
    os.environ.setdefault(LOG_LEVEL_VARIABLE, DEFAULT_MIN_LOG_LEVEL)
    if "tensorflow" not in sys.modules:
        with _stderr_descriptor_filtered(min_log_level()):
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]


@contextlib.contextmanager
def _stderr_descriptor_filtered(min_level: int) -> Iterator[None]:
    """Inside the block, what C and C++ code write to file descriptor 2 passes the filter script;
    Python's ``sys.stderr`` keeps writing to the real stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to keep quiet
        yield
        return
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), str(min_level)], stdin=subprocess.PIPE, stdout=saved
        )
    except OSError:  # no Python executable to run the filter with (embedded interpreters)
        os.close(saved)
        yield
        return
    python_stderr = sys.stderr
    if _writes_to_descriptor_2(python_stderr):
        sys.stderr = open(
            saved,
            "w",
            buffering=1,
            closefd=False,  # noqa: SIM115
            encoding=getattr(python_stderr, "encoding", None) or "utf-8",
            errors=getattr(python_stderr, "errors", None) or "backslashreplace",
        )
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        child.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a process started meanwhile holds the pipe
            child.wait(timeout=10)
        os.close(saved)


def _writes_to_descriptor_2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def no_cuda_driver() -> bool:
    """True if this TensorFlow is a CUDA build and the machine has no CUDA driver (``libcuda``).

    No GPU can then be used, and asking TensorFlow for GPUs only logs "failed call to cuInit".
    Builds for other GPUs (ROCm, Metal) and machines with the driver give False.
    """
    tensorflow = import_tensorflow()
    if not tensorflow.test.is_built_with_cuda():
        return False
    for name in ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return False
        except OSError:
            continue
    return True


def session_config(**options: object) -> "tf.compat.v1.ConfigProto":
    """A ``tf.compat.v1.ConfigProto(**options)`` that makes no CUDA probe on a machine without a driver.

    Args:
        **options: ConfigProto fields, e.g. ``allow_soft_placement=True``.
    """
    config = import_tensorflow().compat.v1.ConfigProto(**options)
    if no_cuda_driver():
        config.device_count["GPU"] = 0
    return config


if __name__ == "__main__":  # the filter process of _stderr_descriptor_filtered: stdin to stdout
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; this ends when its pipe closes
    filter_stream(sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[1]))
