"""The documented command (docs/datasets.md) for the paper's experiment without iKala and with MUSDB18 in place of
DSD100 ("Without iKala, and with MUSDB18"), run as written on tiny databases."""

import os
import re
import shlex
import subprocess
import sys

from conftest import ROOT
from fake_databases import make_ccmixter, make_medleydb, make_musdb18

SECTION = "## Without iKala, and with MUSDB18"


def readme_command():
    """The first bash block of the docs section, as an argument list after ``python``."""
    with open(os.path.join(ROOT, "docs", "datasets.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index(SECTION) :]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    arguments = shlex.split(block.replace("\\\n", " "))
    assert arguments[:2] == ["python", "Training.py"], arguments
    return arguments[2:]


def partition_table(output):
    """``{(partition, database): songs}`` from the table the datasets command prints."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[2].isdigit():
            rows[(cells[0], cells[1])] = int(cells[2])
    return rows


def test_the_readme_command_without_ikala_partitions_musdb18_medleydb_and_ccmixter(tmp_path):
    # MUSDB18's train holds a MedleyDB song, as the real one holds 46: "Artist1 - Sing".
    roots = {
        "MUSDB18": make_musdb18(
            tmp_path / "musdb18", train=("Artist1 - Sing", "B - Two"), test=("C - Three", "D - Four")
        ),
        "MedleyDB": make_medleydb(tmp_path / "MedleyDB"),
        "CCMixter": make_ccmixter(tmp_path / "CCMixter"),
    }
    arguments = readme_command()
    for name, root in roots.items():
        placeholder = next(argument for argument in arguments if argument.startswith(f"dataset_roots.{name}="))
        arguments[arguments.index(placeholder)] = f"dataset_roots.{name}={root}"
    # The shipped XMLs stay untouched; one test song goes to valid (the paper: 25 of 50).
    arguments += [f"dataset_xmls.{name}={tmp_path / (name + '.xml')}" for name in ("MedleyDB", "CCMixter")]
    arguments += ["partition_config.supervised_valid_songs=1"]
    assert arguments[0] == "with"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "Training.py"), "datasets"] + arguments,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = partition_table(result.stdout)
    assert table[("train_sup", "MUSDB18")] == 2
    # MedleyDB's first third is "Artist1_Sing", which MUSDB18 trains on: dropped, and said so.
    assert ("train_unsup/mixture", "MedleyDB") not in table
    assert table[("train_unsup/mixture", "CCMixter")] == 1 and table[("train_unsup/mixture", "all")] == 1
    assert {key: count for key, count in table.items() if key[0] in ("valid", "test")} == {
        ("valid", "MUSDB18"): 1,
        ("valid", "MedleyDB"): 1,
        ("valid", "CCMixter"): 1,
        ("valid", "all"): 3,
        ("test", "MUSDB18"): 1,
        ("test", "MedleyDB"): 1,
        ("test", "CCMixter"): 1,
        ("test", "all"): 3,
    }
    assert not any(database == "iKala" for _, database in table)
    assert "'Artist1 - Sing' (MedleyDB) is also in train_sup (MUSDB18): dropped from train_unsup" in result.stderr
