"""The four-stem demo end to end: `with demo four_sources` on tiny songs, then evaluate and separate."""

import glob
import json
import os

import numpy as np
import soundfile
from test_training import TINY_DEMO, run_cli

from conftest import write_wav

FOUR = ["drums", "bass", "other", "voice"]
TINY_TRAINING = [
    "experiment_id=four",
    "max_epochs=1",
    "model_config.epoch_it=2",
    "model_config.batch_size=2",
    "model_config.num_workers=0",
    "model_config.critic_warmup=1",
    "model_config.duration=2",
    "model_config.cache_size=4",
    "model_config.min_replacement_rate=1",
]


def test_the_four_stem_demo_trains_one_critic_per_source_and_evaluates_and_separates_each(tmp_path):
    result = run_cli(["with", "demo", "four_sources"] + TINY_TRAINING + TINY_DEMO, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cout = (tmp_path / "runs" / "1" / "cout.txt").read_text()
    # CCMixter and iKala give mixtures and voices only: never a drums stem, and no valid or test song.
    assert "train_unsup/drums    MedleyDB" in cout and "train_unsup/drums    CCMixter" not in cout
    assert "train_unsup/voice    CCMixter" in cout and "CCMixter: 2 of its 2 valid and test songs lack" in cout
    with open(tmp_path / "runs" / "1" / "info.json") as handle:
        gains = json.load(handle)["sdr_gain"]
    assert [row["source"] for row in gains if row["database"] == "all"] == FOUR
    assert {row["database"] for row in gains} == {"all", "DSD100", "MedleyDB"}
    # museval JSON with SiSEC's target names: vocals, not voice.
    museval = glob.glob(str(tmp_path / "results" / "four" / "museval" / "**" / "*.json"), recursive=True)
    assert museval
    with open(museval[0]) as handle:
        assert sorted(target["name"] for target in json.load(handle)["targets"]) == ["bass", "drums", "other", "vocals"]
    # One critic (its own variables) per source in the semi-supervised checkpoint.
    with open(tmp_path / "checkpoints" / "four_semisup" / "best" / "model_config.json") as handle:
        assert json.load(handle)["sources"] == FOUR

    model = "checkpoints/four_semisup/best"
    song = write_wav(tmp_path / "song.wav", 0.1 * np.random.default_rng(0).standard_normal((22051, 2)), 22050)
    separation = run_cli(
        ["separate", "with", f"model_path={model}", f"input_path={song}", "output_dir=out"], cwd=tmp_path
    )
    assert separation.returncode == 0, separation.stderr[-3000:]
    outputs = [soundfile.read(str(tmp_path / "out" / f"song_{source}.wav"), always_2d=True)[0] for source in FOUR]
    assert all(audio.shape == (22051, 2) for audio in outputs)
    # Full band: the four estimates add up to the input.
    mixture = soundfile.read(str(song), always_2d=True)[0]
    assert np.max(np.abs(sum(outputs) - mixture)) < 1e-3
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"song_{source}.wav" for source in FOUR)
