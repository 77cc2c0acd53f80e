"""Running a sweep's points: each an ordinary ``Training.py`` process, on Slurm or on this machine.

Everything a point leaves is in the sweep's folder (``Sweep.folder``), where its processes run:

- ``runs/<n>/``: sacred's FileStorageObserver (``SACRED_RUNS_DIR``): config, output, result
  and the per-song result files of every training and evaluation run;
- ``checkpoints/<id>_sup``, ``checkpoints/<id>_semisup``, ``logs/``, ``results/<id>/`` and the
  shared ``cache/`` and ``dataset.pkl``: Training.py's defaults, relative to the sweep folder;
- ``valid/<id>_<phase>/evaluate_<n>/``: BSS Eval of each phase's best model on the validation
  songs (``evaluate_valid``), written by ``Training.py evaluate with ... partition=valid``;
- ``output/<id>.log``: the point's output, every attempt appended;
- ``points/<id>.json``: the point's record (:class:`PointRecord`): submitted, running, done,
  failed or interrupted, with the job, host, process and the failure's last line;
- ``slurm/``: submitit's job files and logs (``executor=slurm``).

Points share the sweep's data caches (``cache/``: derived audio, model-rate copies, spectrograms).
Two runs filling the same cache at once would each replace the other's files, so a point holds
the lock ``points/data.lock`` from the start of its training process until that process has
reached training (a phase folder's ``model_config.json`` is written) or ended: the first point
fills the caches, the others then find them current. The lock is ``flock``; on a cluster the
sweep folder must be on a file system where it works across nodes (NFSv4, Lustre, GPFS usually do).

A point that starts again continues from its checkpoints (``resume=<checkpoints>/<id>_sup``) as
soon as its supervised folder exists, so a resubmitted, requeued or retried point never trains
a finished epoch twice. Its processes are the same as ``python Training.py with ...`` typed by hand.
"""

import dataclasses
import fcntl
import glob
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional

from common import Utils

if TYPE_CHECKING:  # submitit is imported where a sweep runs on Slurm
    import submitit

LOGGER = logging.getLogger(__name__)
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINING = os.path.join(PROJECT_DIR, "Training.py")
PHASES = {"sup": "supervised", "semisup": "semi-supervised"}
STATES = ("not submitted", "pending", "running", "done", "failed", "interrupted")
# Return codes of a process stopped by Ctrl-C or SIGTERM (a signal, or Python's 130 / 143).
_INTERRUPTED_CODES = {-signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL, 130, 143}


# How long the preemption hook waits for the training process to save and stop: well within the 90 s
# between Slurm's warning signal and the time limit.
STOP_SECONDS = 45


class PointFailed(RuntimeError):
    """A point's training or evaluation process failed; the message is the failure's last line."""


def checkpoint_folder(folder: str, point_id: str, phase: str) -> str:
    """``<sweep folder>/checkpoints/<id>_<phase>``: Training.py's phase folder of the point."""
    return os.path.join(folder, "checkpoints", f"{point_id}_{phase}")


def valid_folder(folder: str, point_id: str, phase: str) -> str:
    """Where the validation evaluation of a phase's best model writes its ``evaluate_<n>`` folder."""
    return os.path.join(folder, "valid", f"{point_id}_{phase}")


def test_results(folder: str, point_id: str) -> str:
    """The per-song test results the point's training run writes at its end."""
    return os.path.join(folder, "results", point_id, "per_song.csv")


def valid_results(folder: str, point_id: str, phase: str) -> Optional[str]:
    """The newest per-song validation results of a phase's best model, or None."""
    found = sorted(
        glob.glob(os.path.join(glob.escape(valid_folder(folder, point_id, phase)), "evaluate_*", "per_song.csv")),
        key=os.path.getmtime,
    )
    return found[-1] if found else None


@dataclasses.dataclass
class PointRecord:
    """What is known about a point, saved in ``points/<id>.json``.

    Attributes:
        state: ``submitted``, ``running``, ``done``, ``failed`` or ``interrupted``.
        executor: ``local`` or ``slurm``.
        job_id: Slurm's ``<array job>_<task>`` (``slurm``), or None.
        host, pid: where the point's current or last attempt ran (the submitting process while submitted).
        attempts: attempts started so far.
        error: last line of the failure (``failed``) or how it stopped (``interrupted``).
        updated: time of the last change (seconds since the epoch).
    """

    state: str
    executor: str
    job_id: Optional[str] = None
    host: str = ""
    pid: int = 0
    attempts: int = 0
    error: str = ""
    updated: float = 0.0

    @staticmethod
    def path(folder: str, point_id: str) -> str:
        """``<sweep folder>/points/<id>.json``."""
        return os.path.join(folder, "points", f"{point_id}.json")

    @classmethod
    def load(cls, folder: str, point_id: str) -> Optional["PointRecord"]:
        """The point's record, or None if it was never submitted."""
        try:
            with open(cls.path(folder, point_id), encoding="utf-8") as handle:
                return cls(**json.load(handle))
        except FileNotFoundError:
            return None

    def save(self, folder: str, point_id: str) -> None:
        """Write the record atomically, stamped with the current time."""
        self.updated = time.time()
        Utils.atomic_write_json(self.path(folder, point_id), dataclasses.asdict(self))


def slurm_job_id() -> Optional[str]:
    """This process's Slurm job as ``<array job>_<task>`` (or the plain job id), None outside Slurm."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def last_line(path: str, start: int = 0) -> str:
    """The last non-empty line of a log file from byte ``start`` on (progress bars' carriage returns cut)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


@dataclasses.dataclass
class PointRun:
    """One point's work, the callable that submitit (or the local pool) runs: train, then evaluate.

    Calling it trains the point (resuming from its checkpoints if it has any; skipped when the
    test results exist), then evaluates each phase's best model on the validation songs when
    ``evaluate_valid`` (skipped where done). It raises :class:`PointFailed` with the failure's
    last line if a process fails, and KeyboardInterrupt if one was interrupted (Ctrl-C, SIGTERM:
    ``scancel``, which the processes answer by saving a checkpoint).

    On Slurm, submitit calls :meth:`checkpoint` when the job is preempted or about to time out
    (SIGUSR2, which the training process ignores): it stops the process the way Ctrl-C does, so
    that it saves a checkpoint, and returns the same point for submitit to requeue; it resumes.
    """

    folder: str
    point_id: str
    base: List[str]
    arguments: List[str]
    evaluate_valid: bool
    executor: str = "local"
    python: str = sys.executable

    def __post_init__(self):
        self._child: Optional[subprocess.Popen] = None
        self._stopping = False

    def __getstate__(self):
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    def command(self, *extra: str, command: Optional[str] = None) -> List[str]:
        """``[python, Training.py, (command), with, <base>, <settings>, *extra]``."""
        return (
            [self.python, TRAINING]
            + ([command] if command else [])
            + ["with"]
            + self.base
            + self.arguments
            + list(extra)
        )

    def __call__(self) -> str:
        record = PointRecord.load(self.folder, self.point_id) or PointRecord("running", self.executor)
        record = dataclasses.replace(
            record,
            state="running",
            executor=self.executor,
            job_id=slurm_job_id(),
            host=socket.gethostname(),
            pid=os.getpid(),
            attempts=record.attempts + 1,
            error="",
        )
        record.save(self.folder, self.point_id)
        log = os.path.join(self.folder, "output", f"{self.point_id}.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(
                f"\n=== attempt {record.attempts} on {record.host} (job {record.job_id}), "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} ===\n"
            )
        start = os.path.getsize(log)
        try:
            if not os.path.isfile(test_results(self.folder, self.point_id)):
                sup = checkpoint_folder(self.folder, self.point_id, "sup")
                resume = [f"resume={sup!r}"] if os.path.isfile(os.path.join(sup, "model_config.json")) else []
                self._run(self.command(*resume), log, start, data_lock=True)
            for phase in PHASES if self.evaluate_valid else ():
                if valid_results(self.folder, self.point_id, phase) is None:
                    best = os.path.join(checkpoint_folder(self.folder, self.point_id, phase), "best")
                    self._run(
                        self.command(
                            f"model_path={best!r}",
                            "partition='valid'",
                            f"results_dir={valid_folder(self.folder, self.point_id, phase)!r}",
                            command="evaluate",
                        ),
                        log,
                        start,
                    )
        except KeyboardInterrupt:
            record.state, record.error = "interrupted", last_line(log, start) or "interrupted"
            record.save(self.folder, self.point_id)
            raise
        except PointFailed as error:
            record.state, record.error = "failed", str(error)
            record.save(self.folder, self.point_id)
            raise
        record.state = "done"
        record.save(self.folder, self.point_id)
        return self.point_id

    def _run(self, command: List[str], log: str, start: int, data_lock: bool = False) -> None:
        """Run one Training.py process in the sweep folder, its output appended to ``log``; with
        ``data_lock``, hold the sweep's data lock until it has reached training (module docstring)."""
        env = dict(os.environ, SACRED_RUNS_DIR=os.path.join(self.folder, "runs"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_DIR, env.get("PYTHONPATH")]))
        under_slurm = slurm_job_id() is not None and self.executor == "slurm"
        lock_path = os.path.join(self.folder, "points", "data.lock")
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle, open(lock_path, "a", encoding="utf-8") as lock:
            if data_lock:
                LOGGER.info("%s: waiting for the data lock %s", self.point_id, lock_path)
                fcntl.flock(lock, fcntl.LOCK_EX)
            if self._stopping:  # stopped (Ctrl-C) while waiting for the lock: start nothing
                raise KeyboardInterrupt(f"{self.point_id} was stopped before it started")
            began = time.time()
            LOGGER.info("%s: %s", self.point_id, " ".join(command[1:]))
            # Slurm's preemption/timeout signal is for submitit (this process) alone.
            self._child = subprocess.Popen(
                command,
                cwd=self.folder,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_ignore_usr2 if under_slurm else None,
            )
            while data_lock and self._child.poll() is None and not self._training_started(began):
                time.sleep(1)
            fcntl.flock(lock, fcntl.LOCK_UN)
            code = self._child.wait()
        if code == 0:
            return
        if self._stopping or code in _INTERRUPTED_CODES:
            raise KeyboardInterrupt(f"{self.point_id} was interrupted")
        raise PointFailed(last_line(log, start) or f"Training.py exited with code {code}")

    def stop(self) -> None:
        """Start no further process (Ctrl-C of the local executor: the running ones stop by themselves)."""
        self._stopping = True

    def _training_started(self, since: float) -> bool:
        """True once a phase folder of the point got its ``model_config.json`` after ``since``:
        the training process has passed its data preparation."""
        for phase in PHASES:
            path = os.path.join(checkpoint_folder(self.folder, self.point_id, phase), "model_config.json")
            if os.path.isfile(path) and os.path.getmtime(path) >= since - 1:
                return True
        return False

    def checkpoint(self) -> "submitit.helpers.DelayedSubmission":
        """submitit's preemption/timeout hook: stop the process with a checkpoint, return this point to requeue."""
        import submitit

        self._stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            LOGGER.warning("%s: preempted or timing out; stopping it with a checkpoint", self.point_id)
            child.send_signal(signal.SIGTERM)
            if not reap(child, timeout=STOP_SECONDS):
                child.kill()
                reap(child, timeout=STOP_SECONDS)
        record = PointRecord.load(self.folder, self.point_id)
        if record is not None:
            record.state, record.error = "submitted", "requeued after preemption or timeout"
            record.save(self.folder, self.point_id)
        fresh = PointRun(
            self.folder, self.point_id, self.base, self.arguments, self.evaluate_valid, self.executor, self.python
        )
        return submitit.helpers.DelayedSubmission(fresh)


def reap(child: subprocess.Popen, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``child`` to exit and reap it; True if it has exited.

    submitit calls the preemption hook from its signal handler, usually while this process's main
    thread is inside ``child.wait()``, which holds the Popen object's lock: ``Popen.wait`` and
    ``poll`` in the handler could then never reap the child, only time out. ``os.waitpid`` on the
    pid needs no lock.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already
            return True
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _ignore_usr2():
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def slurm_queue() -> Optional[Dict[str, str]]:
    """``{job id: state}`` of every queued or running job, one entry per array task; None without squeue."""
    try:
        result = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return dict(line.split("|", 1) for line in result.stdout.split() if "|" in line)


def _alive_here(record: PointRecord) -> bool:
    if record.host != socket.gethostname() or record.pid <= 0:
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def point_state(record: Optional[PointRecord], queue: Optional[Dict[str, str]]) -> str:
    """The point's state (:data:`STATES`): its record, checked against Slurm's queue or this
    machine's processes, so that a point whose job or process vanished shows as interrupted."""
    if record is None:
        return "not submitted"
    if record.state not in ("submitted", "running"):
        return record.state
    if record.executor == "slurm" and record.job_id and queue is not None:
        queued = queue.get(record.job_id)
        if queued is None:
            return "interrupted"
        return "running" if queued in ("RUNNING", "COMPLETING") else "pending"
    if record.executor == "local" and record.host == socket.gethostname():
        if not _alive_here(record):
            return "interrupted"
    return "pending" if record.state == "submitted" else "running"
