"""A sweep file: many ordinary runs of the experiment, a grid over sacred settings.

A sweep file is YAML::

    name: demo-fight                 # prefix of every run's experiment_id; folder sweep_results/<name>
    base: demo                       # Training.py's named config(s): a name or a list of names
    settings:                        # sacred settings of every run (as after `with` on the command line)
      max_epochs: 4
    grid:                            # every combination of these values is a run
      seed: [1, 2, 3]
      model_config.alpha: [0.001, 0.01]
    variants:                        # optional named sets of settings, crossed with the grid
      recipe: {}
      init-sup: {semisup_init: supervised, grid: {seed: [1, 2]}}   # its own values of a grid key
    evaluate_valid: true             # also evaluate each run's best models on the validation songs
    compare:                         # optional, see SweepCompare.py
      baseline: supervised
    resources:                       # of ONE run; each can be overridden on the command line
      executor: slurm                # or local
      parallel: 2                    # runs at a time (Slurm: the array's parallelism)
      partition: gpu                 # Slurm partition (default: the cluster's default)
      time_min: 240                  # time limit per run (a timed-out run is requeued and resumes)
      cpus: 4
      gpus: 1
      mem_gb: 16

Each grid point becomes ``python Training.py with <base> <settings> <variant> <grid values>
experiment_id=<name>-<point>``, where ``<point>`` is the variant's name followed by
``<key><value>`` for each grid key (its last dotted component), e.g. ``demo-fight-recipe_seed1_alpha0.01``.
Later settings win: a variant overrides ``settings``, a grid value overrides both.
"""

import dataclasses
import itertools
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

KEYS = {"name", "base", "settings", "grid", "variants", "evaluate_valid", "compare", "resources", "folder"}
EXECUTORS = ("local", "slurm")
DEFAULT_RESOURCES = {
    "executor": "local",
    "parallel": 1,
    "partition": None,
    "time_min": 240,
    "cpus": 2,
    "gpus": 0,
    "mem_gb": None,
}
# Settings a sweep sets itself: every run's id and output folders belong to the sweep.
RESERVED = {"experiment_id", "resume", "results_dir", "model_config.model_base_dir", "model_config.log_dir"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class SweepFileError(ValueError):
    """A sweep file or a command-line override that cannot be used; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep.

    Attributes:
        id: the run's experiment_id, ``<sweep name>-<point name>``.
        variant: the variant's name (``""`` without variants).
        values: the grid values of this point, ``{sacred key: value}``.
        settings: every sacred setting of the run, in command-line order (base settings, the
            variant's, the grid's), without experiment_id.
    """

    id: str
    variant: str
    values: Dict[str, Any]
    settings: Dict[str, Any]

    def with_arguments(self) -> List[str]:
        """The ``key=value`` words after ``with`` (values as Python literals, which sacred parses)."""
        return [f"{key}={value!r}" for key, value in self.settings.items()] + [f"experiment_id={self.id!r}"]


@dataclasses.dataclass
class Sweep:
    """A loaded sweep file (see the module docstring).

    Attributes:
        path: the sweep file.
        name: the sweep's name.
        base: Training.py's named configs of every run.
        points: the runs, in grid order (variants outermost).
        evaluate_valid: evaluate each run's best models on the validation partition too.
        compare: the ``compare`` section (SweepCompare reads it).
        resources: per-run resources, :data:`DEFAULT_RESOURCES` overridden by the file and the command line.
        folder: the sweep's folder (runs, checkpoints, logs, results, cache).
    """

    path: str
    name: str
    base: List[str]
    points: List[Point]
    evaluate_valid: bool
    compare: Dict[str, Any]
    resources: Dict[str, Any]
    folder: str

    def point(self, point_id: str) -> Point:
        """The point with this id; SweepFileError naming the known ids otherwise."""
        for point in self.points:
            if point.id == point_id:
                return point
        raise SweepFileError(f"{self.path}: no point {point_id!r}; its points are {[p.id for p in self.points]}")


def _fail(path, message):
    raise SweepFileError(f"{path}: {message}")


def _mapping(path, document, key):
    value = document.get(key) or {}
    if not isinstance(value, dict):
        _fail(path, f"'{key}' must be a mapping of sacred keys to values, not {value!r}")
    for setting in value:
        if not isinstance(setting, str) or not setting:
            _fail(path, f"'{key}' has a key {setting!r}: use sacred keys such as seed or model_config.alpha")
        if setting in RESERVED:
            _fail(path, f"'{key}' sets {setting}, which the sweep sets itself for every run (its id and folders)")
    return value


def _label(value) -> str:
    """A value as part of a point name: letters, digits and ``.+-`` only."""
    text = value if isinstance(value, str) else repr(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "", text.replace(" ", "")) or "x"


def point_names(variant: str, grid_keys: Sequence[str], values: Sequence[Any]) -> str:
    """``<variant>_<key><value>_...`` (the variant left out when empty), with each key's last dotted component."""
    parts = [variant] if variant else []
    parts += [f"{key.rsplit('.', 1)[-1]}{_label(value)}" for key, value in zip(grid_keys, values)]
    return "_".join(parts) or "run"


def check_resources(resources: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """:data:`DEFAULT_RESOURCES` updated by ``resources``, checked; SweepFileError naming ``where`` otherwise."""
    unknown = set(resources) - set(DEFAULT_RESOURCES)
    if unknown:
        raise SweepFileError(f"{where}: unknown resources {sorted(unknown)}; known: {sorted(DEFAULT_RESOURCES)}")
    merged = dict(DEFAULT_RESOURCES, **resources)
    if merged["executor"] not in EXECUTORS:
        raise SweepFileError(f"{where}: executor={merged['executor']!r}: use one of {EXECUTORS}")
    for key in ("parallel", "time_min", "cpus"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise SweepFileError(f"{where}: {key}={merged[key]!r}: give a whole number >= 1")
    if not isinstance(merged["gpus"], int) or isinstance(merged["gpus"], bool) or merged["gpus"] < 0:
        raise SweepFileError(f"{where}: gpus={merged['gpus']!r}: give a whole number >= 0")
    if merged["mem_gb"] is not None and (
        isinstance(merged["mem_gb"], bool) or not isinstance(merged["mem_gb"], (int, float)) or merged["mem_gb"] <= 0
    ):
        raise SweepFileError(f"{where}: mem_gb={merged['mem_gb']!r}: give a number of gigabytes > 0")
    return merged


def load_sweep(path: str, overrides: Optional[Mapping[str, Any]] = None, folder: Optional[str] = None) -> Sweep:
    """Read and check a sweep file, before any run starts.

    Args:
        path: the YAML file.
        overrides: resources given on the command line (``None`` values are ignored).
        folder: the sweep's folder; default the file's ``folder`` key, else ``sweep_results/<name>``
            (relative to the current directory).

    Raises:
        SweepFileError: the file is missing, not YAML, or a key or value cannot be used (the
            message names the file and the key).
    """
    if not os.path.isfile(path):
        _fail(path, "no such sweep file")
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        _fail(path, f"not valid YAML: {error}")
    if not isinstance(document, dict):
        _fail(path, "a sweep file is a YAML mapping with at least 'name' (see docs/sweeps.md)")
    unknown = set(document) - KEYS
    if unknown:
        _fail(path, f"unknown keys {sorted(unknown)}; a sweep file has {sorted(KEYS)}")
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        _fail(path, f"name={name!r}: give a name of letters, digits and ._+- (it prefixes every experiment_id)")
    base = document.get("base") or []
    base = [base] if isinstance(base, str) else base
    if not isinstance(base, list) or not all(isinstance(item, str) and item for item in base):
        _fail(path, f"base={base!r}: give Training.py's named config(s), e.g. demo")
    settings = _mapping(path, document, "settings")
    grid = _mapping(path, document, "grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            _fail(path, f"grid key {key} needs a non-empty list of values, not {values!r}")
    variants = document.get("variants") or {"": {}}
    if not isinstance(variants, dict):
        _fail(path, f"'variants' must map variant names to settings, not {variants!r}")
    points = []
    for variant, changes in variants.items():
        if variant != "" and (not isinstance(variant, str) or not _NAME.fullmatch(variant)):
            _fail(path, f"variant name {variant!r}: use letters, digits and ._+- (it names the variant's runs)")
        changes = dict(changes or {})
        own_grid = changes.pop("grid", None) or {}
        _mapping(path, {variant: changes}, variant)
        if (
            not isinstance(own_grid, dict)
            or not set(own_grid) <= set(grid)
            or not all(isinstance(values, list) and values for values in own_grid.values())
        ):
            _fail(
                path,
                f"variant {variant}: its 'grid' must give non-empty lists for keys of the sweep's grid "
                f"({sorted(grid)}), not {own_grid!r}",
            )
        variant_grid = dict(grid, **own_grid)
        for values in itertools.product(*variant_grid.values()):
            point_values = dict(zip(variant_grid, values))
            point_id = f"{name}-{point_names(variant, list(variant_grid), values)}"
            points.append(Point(point_id, variant, point_values, {**settings, **changes, **point_values}))
    ids = [point.id for point in points]
    if len(set(ids)) != len(ids):
        clash = sorted({point_id for point_id in ids if ids.count(point_id) > 1})[:3]
        _fail(
            path,
            f"two points get the same id ({clash}): grid keys ending alike or values that differ "
            "only in punctuation; rename a key's values or a variant",
        )
    evaluate_valid = document.get("evaluate_valid", True)
    if not isinstance(evaluate_valid, bool):
        _fail(path, f"evaluate_valid={evaluate_valid!r}: give true or false")
    compare = document.get("compare") or {}
    if not isinstance(compare, dict):
        _fail(path, f"'compare' must be a mapping, not {compare!r}")
    resources = document.get("resources") or {}
    if not isinstance(resources, dict):
        _fail(path, f"'resources' must be a mapping, not {resources!r}")
    resources = check_resources(resources, path)
    if overrides:
        resources = check_resources(
            dict(resources, **{key: value for key, value in overrides.items() if value is not None}), "command line"
        )
    folder = folder or document.get("folder") or os.path.join("sweep_results", name)
    return Sweep(
        os.path.abspath(path),
        name,
        list(base),
        points,
        evaluate_valid,
        dict(compare),
        resources,
        os.path.abspath(folder),
    )
