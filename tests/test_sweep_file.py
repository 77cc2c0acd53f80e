"""Sweep files (experiment/SweepFile.py), point records and states (SweepRuns.py), and
submitit's preemption hook, without running any training."""

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
import yaml

from experiment import SweepFile, SweepRuns
from experiment.SweepRuns import PointRecord, PointRun, point_state


def write(tmp_path, document, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False) if isinstance(document, dict) else document)
    return str(path)


def test_points_cross_variants_and_grid_with_readable_stable_ids_and_later_settings_win(tmp_path):
    path = write(
        tmp_path,
        {
            "name": "fight",
            "base": "demo",
            "settings": {"max_epochs": 4, "semisup_init": "scratch"},
            "grid": {"seed": [1, 2], "model_config.alpha": [0.001, 0.01]},
            "variants": {"recipe": {}, "init": {"semisup_init": "supervised", "max_epochs": 6}},
        },
    )
    sweep = SweepFile.load_sweep(path, folder=str(tmp_path / "out"))
    assert [point.id for point in sweep.points][:3] == [
        "fight-recipe_seed1_alpha0.001",
        "fight-recipe_seed1_alpha0.01",
        "fight-recipe_seed2_alpha0.001",
    ]
    assert len(sweep.points) == 8 and sweep.base == ["demo"]
    point = sweep.point("fight-init_seed2_alpha0.01")
    assert point.settings == {"max_epochs": 6, "semisup_init": "supervised", "seed": 2, "model_config.alpha": 0.01}
    assert point.with_arguments() == [
        "max_epochs=6",
        "semisup_init='supervised'",
        "seed=2",
        "model_config.alpha=0.01",
        "experiment_id='fight-init_seed2_alpha0.01'",
    ]
    assert SweepFile.load_sweep(path, folder=str(tmp_path / "out")).points == sweep.points  # stable
    assert sweep.resources == SweepFile.DEFAULT_RESOURCES


def test_resources_come_from_the_file_and_the_command_line_overrides_them(tmp_path):
    path = write(tmp_path, {"name": "r", "resources": {"executor": "slurm", "parallel": 4, "gpus": 1, "mem_gb": 16}})
    sweep = SweepFile.load_sweep(path, {"parallel": 2, "partition": "gpu", "cpus": None})
    assert sweep.resources == dict(
        SweepFile.DEFAULT_RESOURCES, executor="slurm", parallel=2, gpus=1, mem_gb=16, partition="gpu"
    )
    assert sweep.folder == os.path.abspath(os.path.join("sweep_results", "r"))


@pytest.mark.parametrize(
    "document, message",
    [
        ({"name": "x", "grid": {"seed": 3}}, "grid key seed needs a non-empty list"),
        ({"name": "x", "settings": {"experiment_id": "a"}}, "sets experiment_id, which the sweep sets itself"),
        ({"name": "x", "resources": {"gpu": 1}}, "unknown resources ['gpu']"),
        ({"name": "x", "resources": {"executor": "pbs"}}, "executor='pbs'"),
        ({"name": "x", "resources": {"parallel": 0}}, "parallel=0"),
        ({"name": "x y"}, "name='x y'"),
        ({"name": "x", "grids": {}}, "unknown keys ['grids']"),
        ({"name": "x", "grid": {"tag": ["a b", "ab"]}}, "two points get the same id"),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_a_wrong_sweep_file_is_one_message_naming_the_file_and_key(tmp_path, document, message):
    path = write(tmp_path, document)
    with pytest.raises(SweepFile.SweepFileError) as error:
        SweepFile.load_sweep(path)
    assert message in str(error.value) and path in str(error.value)


def test_a_point_whose_process_or_job_vanished_is_interrupted(tmp_path):
    folder = str(tmp_path)
    assert point_state(None, None) == "not submitted"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()
    assert point_state(PointRecord("running", "local", host=here, pid=gone.pid), None) == "interrupted"
    assert point_state(PointRecord("running", "local", host=here, pid=os.getpid()), None) == "running"
    assert point_state(PointRecord("submitted", "slurm", job_id="7_1"), {"7_1": "PENDING"}) == "pending"
    assert point_state(PointRecord("running", "slurm", job_id="7_1"), {"7_1": "RUNNING"}) == "running"
    assert point_state(PointRecord("running", "slurm", job_id="7_1"), {"7_2": "RUNNING"}) == "interrupted"
    assert point_state(PointRecord("failed", "slurm", job_id="7_1", error="E"), {}) == "failed"
    record = PointRecord("failed", "local", attempts=2, error="ValueError: x")
    record.save(folder, "p")
    assert PointRecord.load(folder, "p") == record and PointRecord.load(folder, "q") is None


def test_the_preemption_hook_stops_the_process_like_ctrl_c_and_returns_the_point_to_requeue(tmp_path):
    pytest.importorskip("submitit")
    run = PointRun(str(tmp_path), "s-p", ["demo"], ["seed=1", "experiment_id='s-p'"], True, "slurm")
    PointRecord("running", "slurm", job_id="3_0").save(str(tmp_path), "s-p")
    # A stand-in for Training.py that, like it, answers SIGTERM by saving and stopping.
    run._child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\nprint('up', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run._child.stdout.readline().strip() == "up"
    # As under submitit: the hook runs in a signal handler while the main thread waits for the child.
    hooked = []
    previous = signal.signal(signal.SIGUSR1, lambda *args: hooked.append((run.checkpoint(), run._child.returncode)))
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        run._child.wait()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    ((delayed, returncode),) = hooked
    assert returncode == 3  # stopped by SIGTERM and reaped by the hook, not killed
    again = delayed.function
    assert isinstance(again, PointRun) and again._child is None
    assert (again.folder, again.point_id, again.arguments) == (run.folder, run.point_id, run.arguments)
    assert PointRecord.load(str(tmp_path), "s-p").state == "submitted"


def test_last_line_skips_progress_bars_and_blank_lines(tmp_path):
    log = tmp_path / "out.log"
    log.write_text("start\nepoch 1\r 50%\r100%\nValueError: bad\n\n")
    assert SweepRuns.last_line(str(log)) == "ValueError: bad"
    assert SweepRuns.last_line(str(log), start=len("start\n")) == "ValueError: bad"
    assert SweepRuns.last_line(str(tmp_path / "missing.log")) == ""


def test_a_variant_can_give_its_own_values_of_a_grid_key(tmp_path):
    path = write(
        tmp_path,
        {
            "name": "f",
            "grid": {"seed": [1, 2, 3]},
            "variants": {"recipe": {}, "lr": {"model_config.init_sup_sep_lr": 0.001, "grid": {"seed": [1]}}},
        },
    )
    assert [point.id for point in SweepFile.load_sweep(path).points] == [
        "f-recipe_seed1",
        "f-recipe_seed2",
        "f-recipe_seed3",
        "f-lr_seed1",
    ]
    bad = write(
        tmp_path, {"name": "f", "grid": {"seed": [1]}, "variants": {"lr": {"grid": {"alpha": [1]}}}}, "bad.yaml"
    )
    with pytest.raises(SweepFile.SweepFileError, match="keys of the sweep's grid"):
        SweepFile.load_sweep(bad)
