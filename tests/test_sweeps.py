"""Sweeps (experiment/Sweeps.py): a tiny sweep through a real Slurm (submitit) and on this machine.

One sweep per executor is shared by the tests of this module: 2 seeds x 2 variants of tiny
runs, plus a variant with one seed whose point fails. While it runs, one point is cancelled after its first
epoch (``scancel``; locally Ctrl-C, which reaches every running point); then ``resubmit``
resumes it from its checkpoint and ``compare`` reads the sweep.

Without Slurm (no ``sinfo`` answering) the Slurm tests skip, except under ``CI=true``, where
they fail: ``.ci/run`` starts a single-node Slurm with ``tools/start-slurm.sh``.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from experiment import SweepFile, Sweeps

from conftest import ROOT, wait_until

TINY = {
    "max_epochs": 2,
    "eval_workers": 1,
    "model_config.epoch_it": 3,
    "model_config.batch_size": 2,
    "model_config.num_workers": 1,
    "model_config.num_disc": 1,
    "model_config.critic_warmup": 1,
    "model_config.duration": 2,
    "model_config.cache_size": 4,
    "model_config.min_replacement_rate": 1,
    "model_config.num_fft": 128,
    "model_config.num_hop": 64,
    "model_config.num_freqs": 64,
    "model_config.num_frames": 16,
    "model_config.num_layers": 2,
    "model_config.num_initial_filters": 4,
    "model_config.critic_initial_filters": 4,
    "model_config.critic_dense_units": 4,
    "demo_database.song_seconds": 4,
    "demo_database.ikala_clip_seconds": 4,
    "demo_database.dsd_songs_per_split": 2,
    "demo_database.medleydb_songs": 3,
    "demo_database.ccmixter_songs": 3,
    "demo_database.ikala_clips": 3,
    "partition_config.supervised_valid_songs": 1,
    "bss_eval": ["v3"],
}
TARGET = "tiny-scratch_seed1"  # the point that is cancelled after its first epoch
BROKEN = ("tiny-broken_seed1",)
SETTLED = ("done", "failed", "interrupted")
# The shared sweep is made by the first test that uses it: each executor's takes one or two minutes
# on two free cores.
pytestmark = pytest.mark.timeout(2400)  # generous: a machine shared with other work is slower


def slurm_is_up():
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and any(state in result.stdout for state in ("idle", "mixed", "allocated"))


def sweeps_cli(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, "-m", "experiment.Sweeps"] + list(args),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_sweep(path, executor):
    # No validation evaluations (two more processes per point), to keep the suite short:
    # tests/test_sweep_compare.py covers choosing on validation.
    sweep = {
        "name": "tiny",
        "base": "demo",
        "settings": TINY,
        "grid": {"seed": [1, 2]},
        "variants": {
            "scratch": {},
            "init": {"semisup_init": "supervised"},
            "broken": {"semisup_init": "bogus", "grid": {"seed": [1]}},
        },
        "evaluate_valid": False,
        "resources": {"executor": executor, "parallel": 2, "cpus": 1, "time_min": 20},
    }
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return str(path)


def first_epoch_done(folder):
    state = os.path.join(folder, "checkpoints", f"{TARGET}_sup", "training_state.json")
    return os.path.isfile(state) and json.load(open(state))["epoch"] >= 1


def settled(sweep, seconds):
    """Wait until no point is pending or running; returns the states."""
    rows = {}

    def check():
        time.sleep(1)  # each check asks squeue
        rows.update({row["point"]: row for row in Sweeps.states(sweep)})
        return all(row["state"] in SETTLED for row in rows.values())

    assert wait_until(check, seconds), {point: row["state"] for point, row in rows.items()}
    return rows


def cancel_jobs(folder):
    """scancel whatever Slurm jobs of the sweep are left (a failed test leaves none running)."""
    if not os.path.isdir(os.path.join(folder, "points")):
        return
    jobs = {
        json.load(open(os.path.join(folder, "points", name))).get("job_id")
        for name in os.listdir(os.path.join(folder, "points"))
        if name.endswith(".json")
    }
    jobs = sorted(job for job in jobs if job)
    if jobs and shutil.which("scancel"):
        subprocess.run(["scancel"] + jobs, timeout=60)


@pytest.fixture(scope="module", params=["slurm", "local"])
def sweep_run(request, tmp_path_factory):
    """Submit, cancel the target point after its first epoch, let the rest settle, resubmit, compare."""
    executor = request.param
    if executor == "slurm" and not slurm_is_up():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Slurm is not up: .ci/run starts it with tools/start-slurm.sh")
        pytest.skip("no Slurm on this machine (sinfo/sbatch); tools/start-slurm.sh starts one as root")
    tmp = tmp_path_factory.mktemp(f"sweep_{executor}")
    path, folder = write_sweep(tmp / "tiny.yaml", executor), str(tmp / "sweep")
    sweep = SweepFile.load_sweep(path, folder=folder)
    request.addfinalizer(lambda: cancel_jobs(folder))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    submit = subprocess.Popen(
        [sys.executable, "-m", "experiment.Sweeps", "submit", path, "--folder", folder],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: first_epoch_done(folder) or submit.poll() not in (None, 0), 900), (
            submit.stdout.read() if submit.poll() is not None else "no epoch after 900 s"
        )
        assert submit.poll() in (None, 0), submit.stdout.read()
        if executor == "slurm":
            job = json.load(open(os.path.join(folder, "points", f"{TARGET}.json")))["job_id"]
            subprocess.run(["scancel", job], check=True, timeout=60)
        else:
            os.killpg(submit.pid, signal.SIGINT)  # Ctrl-C in the terminal: every running point stops
        submit.wait(timeout=300)
    finally:
        if submit.poll() is None:
            os.killpg(submit.pid, signal.SIGKILL)
            submit.wait()
    before = settled(sweep, 900)
    status = sweeps_cli("status", path, "--folder", folder)
    history = json.load(open(os.path.join(folder, "checkpoints", f"{TARGET}_sup", "training_state.json")))["history"]
    resubmitted = sweeps_cli("resubmit", path, "--folder", folder)
    assert resubmitted.returncode == 0, resubmitted.stderr[-3000:]
    after = settled(sweep, 900)
    final_status = sweeps_cli("status", path, "--folder", folder)
    compare = sweeps_cli("compare", folder)
    return {
        "executor": executor,
        "folder": folder,
        "before": before,
        "status": status,
        "history": history,
        "after": after,
        "final_status": final_status,
        "compare": compare,
        "path": path,
    }


def test_status_shows_the_failures_error_and_the_cancelled_point(sweep_run):
    before, status, final = sweep_run["before"], sweep_run["status"], sweep_run["final_status"]
    assert status.returncode == 0 and final.returncode == 0, status.stderr[-2000:] + final.stderr[-2000:]
    assert before[TARGET]["state"] == "interrupted"
    assert "interrupted" in {line.split()[0]: line for line in status.stdout.splitlines()[1:-1]}[TARGET]
    # Locally, Ctrl-C came before the failing points started: they fail after the resubmit.
    for point in BROKEN:
        assert sweep_run["after"][point]["state"] == "failed"
        assert sweep_run["after"][point]["detail"] == (
            "UsageError: semisup_init='bogus': use one of 'scratch', 'supervised'"
        )
    lines = {line.split()[0]: line for line in final.stdout.splitlines()[1:-1]}
    assert "failed" in lines[BROKEN[0]] and "semisup_init='bogus'" in lines[BROKEN[0]]
    assert final.stdout.splitlines()[-1] == "4 done, 1 failed"


def test_resubmit_resumes_the_cancelled_point_and_reruns_the_failed_ones(sweep_run):
    folder, after = sweep_run["folder"], sweep_run["after"]
    assert {point: row["state"] for point, row in after.items()} == {
        "tiny-scratch_seed1": "done",
        "tiny-scratch_seed2": "done",
        "tiny-init_seed1": "done",
        "tiny-init_seed2": "done",
        BROKEN[0]: "failed",
    }
    assert after[TARGET]["attempts"] == 2
    # On Slurm the failing points ran (and failed) before the resubmit too; locally Ctrl-C came first.
    assert all(after[point]["attempts"] == (2 if sweep_run["executor"] == "slurm" else 1) for point in BROKEN)
    state = json.load(open(os.path.join(folder, "checkpoints", f"{TARGET}_sup", "training_state.json")))
    assert state["history"][0] == sweep_run["history"][0]  # the epoch done before the cancel was kept
    assert [entry["step"] for entry in state["history"]] == [3, 6]
    log = open(os.path.join(folder, "output", f"{TARGET}.log")).read()
    assert "Resuming supervised phase" in log.split("=== attempt 2")[1]


def test_compare_reads_the_sweep_and_writes_every_format(sweep_run):
    folder, compare = sweep_run["folder"], sweep_run["compare"]
    assert compare.returncode == 0, compare.stderr[-3000:]
    text = compare.stdout
    for variant in ("scratch", "init"):
        assert f"{variant}: semi-supervised vs {variant}/supervised" in text
    assert "chosen on validation:" not in text  # nothing to choose with: no validation rows
    with open(os.path.join(folder, "compare", "compare.csv")) as handle:
        rows = list(csv.DictReader(handle))
    voice = [
        row
        for row in rows
        if row["comparison"] == "scratch: semi-supervised vs scratch/supervised"
        and row["database"] == "all"
        and row["source"] == "voice"
    ]
    assert [row["partition"] for row in voice] == ["test"]
    assert all(row["seeds"] == "2" and int(row["songs"]) >= 1 and row["failures"] == "0" for row in voice)
    assert all(float(row["low"]) <= float(row["mean"]) <= float(row["high"]) for row in voice)
    with open(os.path.join(folder, "compare", "phases.csv")) as handle:
        phases = list(csv.DictReader(handle))
    assert len(phases) == 8  # 4 finished runs x 2 phases; the failed points trained nothing
    assert all(row["updates"] == "6" and row["epochs"] == "2" and row["best_epoch"] in ("1", "2") for row in phases)
    assert (
        "| scratch: semi-supervised vs scratch/supervised | all | voice |"
        in open(os.path.join(folder, "compare", "compare.md")).read()
    )
    assert r"\begin{tabular}" in open(os.path.join(folder, "compare", "compare.tex")).read()


def test_submitting_a_sweep_twice_is_refused(sweep_run):
    again = sweeps_cli("submit", sweep_run["path"], "--folder", sweep_run["folder"])
    assert again.returncode == 1 and "already holds this sweep" in again.stderr and "resubmit" in again.stderr
