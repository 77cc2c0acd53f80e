"""Sweeps: many runs of the experiment from one YAML file, on a Slurm cluster or on this machine.

Commands (``python -m experiment.Sweeps COMMAND ...``; docs/sweeps.md has the details)::

    submit SWEEP.yaml [--executor slurm|local] [--parallel N] [--partition P] [--time-min M]
                      [--cpus C] [--gpus G] [--mem-gb GB] [--folder DIR]
    status SWEEP.yaml                 a table: not submitted / pending / running / done / failed / interrupted
    resubmit SWEEP.yaml [options]     skips done, pending and running points, resumes interrupted
                                      ones from their checkpoints, reruns failed ones from scratch
    compare SWEEP.yaml | FOLDER ...   the paired comparison of the sweep's models (SweepCompare.py)

``executor=slurm`` submits ONE Slurm job array with submitit (resources per run; ``parallel`` is
the array's parallelism) and returns; ``executor=local`` runs the points on this machine,
``parallel`` at a time, and returns when they have finished (Ctrl-C stops them with checkpoints).
"""

import argparse
import concurrent.futures
import dataclasses
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from common import Utils
from experiment import SweepCompare
from experiment.SweepFile import Sweep, SweepFileError, load_sweep
from experiment.SweepRuns import (
    PHASES,
    PROJECT_DIR,
    PointFailed,
    PointRecord,
    PointRun,
    last_line,
    point_state,
    slurm_queue,
    valid_folder,
)

LOGGER = logging.getLogger("Sweeps")
RESOURCE_OPTIONS = ("executor", "parallel", "partition", "time_min", "cpus", "gpus", "mem_gb")


class SweepError(RuntimeError):
    """A sweep command that cannot be carried out (e.g. submitting a sweep twice, no Slurm)."""


def point_runs(sweep: Sweep, point_ids: Sequence[str], executor: str) -> List[PointRun]:
    """The callables of these points of ``sweep``."""
    return [
        PointRun(
            sweep.folder,
            point.id,
            list(sweep.base),
            sweep.point(point.id).with_arguments(),
            sweep.evaluate_valid,
            executor,
        )
        for point in map(sweep.point, point_ids)
    ]


def write_description(sweep: Sweep) -> None:
    """``<folder>/sweep.json``: the points (id, variant, grid values), compare settings and resources,
    for ``compare`` and for people reading the folder later."""
    Utils.atomic_write_json(
        os.path.join(sweep.folder, "sweep.json"),
        {
            "name": sweep.name,
            "file": sweep.path,
            "base": sweep.base,
            "evaluate_valid": sweep.evaluate_valid,
            "compare": sweep.compare,
            "resources": sweep.resources,
            "points": [dataclasses.asdict(point) for point in sweep.points],
        },
    )


def submitted(sweep: Sweep, point_id: str, executor: str, job_id: Optional[str], since: float = math.inf) -> None:
    """Record a point as submitted (keeping its count of attempts), unless its job has already
    written a newer record (it started after ``since``, the time of submission)."""
    previous = PointRecord.load(sweep.folder, point_id)
    if previous is not None and previous.updated >= since:
        return
    PointRecord(
        "submitted",
        executor,
        job_id=job_id,
        host=socket.gethostname(),
        pid=os.getpid() if not job_id else 0,
        attempts=previous.attempts if previous else 0,
    ).save(sweep.folder, point_id)


def run_local(sweep: Sweep, runs: Sequence[PointRun]) -> None:
    """Run the points on this machine, ``parallel`` at a time, and wait for them.

    A failed point does not stop the others. Ctrl-C (which reaches every point's process too:
    each saves a checkpoint) cancels the points that have not started.
    """
    for run in runs:
        submitted(sweep, run.point_id, "local", None)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=sweep.resources["parallel"])
    futures = {pool.submit(run): run.point_id for run in runs}
    try:
        for future in concurrent.futures.as_completed(futures):
            try:
                future.result()
                LOGGER.info("%s: done", futures[future])
            except PointFailed as error:
                LOGGER.error("%s: failed: %s", futures[future], error)
            except KeyboardInterrupt:
                LOGGER.warning("%s: interrupted", futures[future])
    except KeyboardInterrupt:
        LOGGER.warning("Interrupted: the running points save checkpoints; `resubmit` continues the sweep.")
        for run in runs:
            run.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def run_slurm(sweep: Sweep, runs: Sequence[PointRun]) -> List[str]:
    """Submit the points as ONE Slurm job array with submitit; returns the job ids (``<array>_<task>``)."""
    if shutil.which("sbatch") is None:
        raise SweepError(
            "executor=slurm needs Slurm's sbatch on PATH (none here). Run on the cluster's login "
            "node, start a single-node Slurm with tools/start-slurm.sh, or use --executor local."
        )
    import submitit

    resources = sweep.resources
    executor = submitit.AutoExecutor(folder=os.path.join(sweep.folder, "slurm", "%j"), cluster="slurm")
    parameters = dict(
        name=sweep.name,
        timeout_min=resources["time_min"],
        cpus_per_task=resources["cpus"],
        nodes=1,
        tasks_per_node=1,
        slurm_array_parallelism=resources["parallel"],
    )
    if resources["gpus"]:
        parameters["gpus_per_node"] = resources["gpus"]
    if resources["mem_gb"]:
        parameters["mem_gb"] = resources["mem_gb"]
    if resources["partition"]:
        parameters["slurm_partition"] = resources["partition"]
    executor.update_parameters(**parameters)
    # The job imports this project: pickled callables refer to experiment.SweepRuns.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_DIR, os.environ.get("PYTHONPATH")]))
    since = time.time()
    with executor.batch():
        jobs = [executor.submit(run) for run in runs]
    for run, job in zip(runs, jobs):
        submitted(sweep, run.point_id, "slurm", str(job.job_id), since)
    LOGGER.info(
        "Submitted %d runs as Slurm job array %s", len(jobs), str(jobs[0].job_id).split("_")[0] if jobs else "-"
    )
    return [str(job.job_id) for job in jobs]


def prepare_data(sweep: Sweep, run: PointRun) -> None:
    """Build the sweep's shared data once, before any point starts: ``Training.py datasets`` with
    the first point's settings (the demo database, dataset.pkl in the sweep folder).

    Points started together would otherwise each generate the same files at once. A wrong data
    setting stops the sweep here, with Training.py's message, before any job is submitted.
    """
    log = os.path.join(sweep.folder, "output", "prepare.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    LOGGER.info("Preparing the data once for all points (output in %s)", log)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PROJECT_DIR, os.environ.get("PYTHONPATH")])))
    with open(log, "a", encoding="utf-8") as handle:
        start = handle.tell()
        code = subprocess.call(
            run.command(command="datasets"),
            cwd=sweep.folder,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if code != 0:
        raise SweepError(f"Preparing the data failed ({log}): {last_line(log, start)}")


def launch(sweep: Sweep, point_ids: Sequence[str], prepare: bool = True) -> None:
    """Run or submit these points with the sweep's executor, after preparing the shared data
    (``prepare``: ``submit`` does; ``resubmit`` finds it prepared, and each training process holds
    the data lock while it checks it, SweepRuns.py)."""
    if not point_ids:
        LOGGER.info("Nothing to run: every point is done, pending or running.")
        return
    runs = point_runs(sweep, point_ids, sweep.resources["executor"])
    os.makedirs(sweep.folder, exist_ok=True)
    write_description(sweep)
    if prepare:
        prepare_data(sweep, runs[0])
    if sweep.resources["executor"] == "slurm":
        run_slurm(sweep, runs)
    else:
        run_local(sweep, runs)


def submit(sweep: Sweep) -> None:
    """Run every point of a sweep that was never submitted; refuses a sweep submitted before."""
    started = [point.id for point in sweep.points if PointRecord.load(sweep.folder, point.id) is not None]
    if started:
        raise SweepError(
            f"{sweep.folder} already holds this sweep ({len(started)} points submitted, e.g. "
            f"{started[0]}): see `status`, continue it with `resubmit`, or give another --folder."
        )
    launch(sweep, [point.id for point in sweep.points])


def states(sweep: Sweep) -> List[dict]:
    """One row per point: ``{"point", "variant", "state", "job", "attempts", "detail"}``."""
    queue = slurm_queue()
    rows = []
    for point in sweep.points:
        record = PointRecord.load(sweep.folder, point.id)
        state = point_state(record, queue)
        detail = record.error if record and state in ("failed", "interrupted") else ""
        if record and state == "interrupted" and not detail:
            detail = "its job or process is gone"
        rows.append(
            {
                "point": point.id,
                "variant": point.variant,
                "state": state,
                "job": (record.job_id or (f"pid {record.pid}" if record.pid else "")) if record else "",
                "attempts": record.attempts if record else 0,
                "detail": detail,
            }
        )
    return rows


def format_states(rows: Sequence[dict]) -> str:
    """The status table and a count per state."""
    headers = ("point", "state", "job", "attempts", "detail")
    widths = [max([len(header)] + [len(str(row[header])) for row in rows]) for header in headers[:4]]
    lines = ["  ".join(f"{header:<{width}}" for header, width in zip(headers, widths)) + "  detail"]
    for row in rows:
        lines.append(
            "  ".join(f"{str(row[header]):<{width}}" for header, width in zip(headers, widths)) + "  " + row["detail"]
        )
    counts = {state: sum(row["state"] == state for row in rows) for state in dict.fromkeys(r["state"] for r in rows)}
    lines.append(", ".join(f"{count} {state}" for state, count in counts.items()))
    return "\n".join(lines)


def set_aside(sweep: Sweep, point_id: str) -> None:
    """Move a failed point's folders to ``<folder>/failed/<id>.<n>/`` so that it reruns from scratch,
    keeping the evidence."""
    target = os.path.join(sweep.folder, "failed", point_id)
    number = 1
    while os.path.exists(f"{target}.{number}"):
        number += 1
    target = f"{target}.{number}"
    paths = [
        os.path.join(sweep.folder, kind, f"{point_id}_{phase}") for kind in ("checkpoints", "logs") for phase in PHASES
    ] + [os.path.join(sweep.folder, "results", point_id)]
    paths += [valid_folder(sweep.folder, point_id, phase) for phase in PHASES]
    for path in paths:
        if os.path.exists(path):
            destination = os.path.join(target, os.path.relpath(path, sweep.folder))
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.move(path, destination)
    LOGGER.info("%s failed before: its folders are kept in %s; it runs again from scratch", point_id, target)


def resubmit(sweep: Sweep) -> None:
    """Run again what is not done: interrupted and never-submitted points (resumed from their
    checkpoints where they have any) and failed ones (from scratch); pending and running ones are left."""
    chosen = []
    for row in states(sweep):
        if row["state"] == "failed":
            set_aside(sweep, row["point"])
        if row["state"] in ("failed", "interrupted", "not submitted"):
            chosen.append(row["point"])
    launch(sweep, chosen, prepare=False)


def parse_arguments(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m experiment.Sweeps", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("submit", "status", "resubmit"):
        command = commands.add_parser(name)
        command.add_argument("sweep_file")
        command.add_argument(
            "--folder", help="the sweep's folder (default: the file's 'folder', else sweep_results/<name>)"
        )
        if name != "status":
            command.add_argument("--executor", choices=("local", "slurm"))
            command.add_argument("--parallel", type=int, help="runs at a time (Slurm: array parallelism)")
            command.add_argument("--partition")
            command.add_argument("--time-min", type=int, dest="time_min", help="time limit per run, minutes")
            command.add_argument("--cpus", type=int, help="CPUs per run")
            command.add_argument("--gpus", type=int, help="GPUs per run")
            command.add_argument("--mem-gb", type=float, dest="mem_gb", help="memory per run, GB")
    SweepCompare.add_arguments(commands.add_parser("compare"))
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns the exit status (1 with one message for a wrong file or setting)."""
    Utils.setup_logging()
    arguments = parse_arguments(argv)
    try:
        if arguments.command == "compare":
            return SweepCompare.main(arguments)
        overrides = {key: getattr(arguments, key, None) for key in RESOURCE_OPTIONS}
        sweep = load_sweep(arguments.sweep_file, overrides, arguments.folder)
        if arguments.command == "status":
            print(format_states(states(sweep)))
        elif arguments.command == "submit":
            submit(sweep)
        else:
            resubmit(sweep)
    except (SweepFileError, SweepError, SweepCompare.CompareError) as error:
        LOGGER.error("%s", error)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
