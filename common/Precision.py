"""Mixed precision: which dtype the networks compute in (``model_config.precision``).

``"float32"`` (the default, the paper): everything is float32.

``"mixed"``: the heavy ops (convolutions, transposed convolutions, the critics' hidden dense
layers, with their bias additions, activations, pooling and concatenations in between) run in
a 16-bit dtype, with float32 everywhere it matters for the numbers:

- variables, gradients reaching them and optimiser state are float32 (Models/Layers.py casts
  each float32 weight where a layer uses it; the gradient of a cast is cast back);
- the input normalisation ``log(1 + x)``, the U-Net's 1x1 output convolutions, ``exp(y) - 1``,
  the critics' score layer and every loss term (supervised loss, ``L_u``, the additive penalty,
  the Wasserstein estimate, the gradient penalty with its norm) are float32 (Models/Unet.py,
  Models/WGAN_Critic.py). The networks' outputs are float32 tensors.

Which 16-bit dtype depends on the machine the graph is built on (:func:`choose_policy`):

- a CPU with native bfloat16 dot products (the ``avx512_bf16`` or ``amx_bf16`` flag) and
  oneDNN on: **bfloat16**. (TensorFlow's own check, ``IsDataTypeSupportedByOneDNNOnThisCPU``,
  only asks for AVX-512F, on which oneDNN emulates bfloat16 by conversions: slower, not faster.)
- a GPU of compute capability 8.0 or newer (Ampere): **bfloat16**;
- a GPU of compute capability 7.x (Volta, Turing: tensor cores, no bfloat16): **float16** with
  dynamic loss scaling of every optimiser's gradients (:func:`loss_scaled_minimize`);
- anything else: a warning naming what is missing, then float32.

Why this is numerically sound:

- bfloat16 has float32's exponent range (8 bits) and 8 bits of mantissa: every rounding is
  a relative error of at most 2^-9 ~ 0.2 % (~0.4 % between neighbours); nothing can overflow or
  underflow that would not in float32 too, so it needs no loss scaling, and precision alone
  cannot make a NaN. oneDNN accumulates bfloat16 dot products and reductions in float32.
- float16 has 5 exponent bits (largest value 65504, smallest normal 6e-5): small gradients
  would flush to zero, so the loss is multiplied by a scale before differentiation and the
  gradients divided by it after; a step whose scaled gradients overflow is skipped and the
  scale halved, and it doubles again after ``growth_interval`` good steps. The critics' scores
  (unbounded) and all losses are float32, so they cannot overflow in float16.
- The gradient penalty differentiates a critic with respect to its float32 input; the
  per-example gradient (bfloat16 / float16 inside the critic) is cast to float32 before its
  squared sum, square root and ``max(norm - 1, 0)^2``, so the norm of 16384 values is summed
  in float32.

The setting is part of the model configuration (``ModelConfig.precision``, Config.py, which
checks it), so it is saved in ``model_config.json`` with the checkpoint and used again by
``evaluate`` and ``separate`` (``Separation.Separator``), which may override it
(``precision=``). A checkpoint does not depend on the precision: the variables are float32
either way.
"""

import dataclasses
import functools
import logging
import os
from typing import TYPE_CHECKING, Iterable, List, Mapping, Optional, Sequence

from common import TensorFlowSetup

if TYPE_CHECKING:  # imported where needed, after TensorFlowSetup has quietened it
    import tensorflow as tf

LOGGER = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed")
DEFAULT_PRECISION = "float32"
PRECISION_USAGE = (
    "use 'float32' (the paper, the default) or 'mixed' (16-bit convolutions where this machine "
    "runs them fast; see Precision.py)"
)
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names; either gives native bf16
GPU_BFLOAT16_CAPABILITY = (8, 0)
GPU_FLOAT16_CAPABILITY = (7, 0)
# Dynamic loss scaling (float16 only): TensorFlow's defaults.
INITIAL_LOSS_SCALE = 2.0**15
LOSS_SCALE_GROWTH_INTERVAL = 2000
LOSS_SCALE_COLLECTION = "loss_scale_variables"


@dataclasses.dataclass(frozen=True)
class Policy:
    """How a graph computes.

    Attributes:
        precision: the requested setting, ``"float32"`` or ``"mixed"``.
        compute_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``: the dtype of the networks'
            heavy ops (the ``compute_dtype`` of ``Models.Unet.Unet`` and ``Models.WGAN_Critic.Critic``).
        loss_scaling: scale the losses and unscale the gradients dynamically (float16 only).
        reason: one sentence on why, for the log.
    """

    precision: str
    compute_dtype: str
    loss_scaling: bool
    reason: str

    @property
    def mixed(self) -> bool:
        """True if the heavy ops run in a 16-bit dtype."""
        return self.compute_dtype != "float32"


FLOAT32 = Policy("float32", "float32", False, "model_config.precision is float32")


def check_precision(value: object, setting: str = "model_config.precision") -> str:
    """``value`` if it is a valid precision; ``None`` means the default.

    Raises:
        ValueError: naming ``setting`` (e.g. ``eval_precision``) and the valid values.
    """
    if value is None:
        return DEFAULT_PRECISION
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"{setting}={value!r}: {PRECISION_USAGE}")
    return value


def choose_policy(
    precision: str, gpus: Sequence[Mapping] = (), cpu_flags: Optional[Iterable[str]] = None, onednn: bool = True
) -> Policy:
    """The policy for a machine described by its devices (a pure function; see :func:`machine_policy`).

    Args:
        precision: ``"float32"`` or ``"mixed"``, as checked by the configuration (Config.py).
        gpus: one mapping per visible GPU with ``"compute_capability"`` (a ``(major, minor)``
            pair, as ``tf.config.experimental.get_device_details`` gives) and optionally
            ``"device_name"``; TensorFlow computes on the first one.
        cpu_flags: the CPU's feature flags as /proc/cpuinfo names them; ``None`` if unknown.
        onednn: whether TensorFlow's oneDNN kernels are on (they hold the fast bfloat16 CPU kernels).

    Returns:
        A :class:`Policy`; for ``"mixed"`` without a fast 16-bit dtype it is float32 with a
        ``reason`` that names what is missing (:func:`machine_policy` logs it as a warning).
    """
    if precision == "float32":
        return FLOAT32
    if gpus:
        return _gpu_policy(gpus[0])
    return _cpu_policy(cpu_flags, onednn)


def _fallback(reason):
    """Mixed precision wanted, float32 it is (``reason`` names what is missing)."""
    return Policy("mixed", "float32", False, reason)


def _gpu_policy(gpu):
    capability = tuple(gpu.get("compute_capability") or (0, 0))
    described = f"{gpu.get('device_name') or 'GPU 0'} (compute capability {'.'.join(str(part) for part in capability)})"
    if capability >= GPU_BFLOAT16_CAPABILITY:
        return Policy("mixed", "bfloat16", False, f"{described} computes in bfloat16")
    if capability >= GPU_FLOAT16_CAPABILITY:
        return Policy(
            "mixed",
            "float16",
            True,
            f"{described} has float16 tensor cores but no bfloat16: float16 with dynamic loss scaling",
        )
    return _fallback(
        f"{described} has no tensor cores (compute capability < 7.0), so 16-bit convolutions would not be faster"
    )


def _cpu_policy(cpu_flags, onednn):
    wanted = " or ".join(CPU_BFLOAT16_FLAGS)
    if cpu_flags is None:
        return _fallback(
            f"the CPU's feature flags are unknown (no /proc/cpuinfo), so its bfloat16 support "
            f"({wanted}) cannot be checked"
        )
    present = [flag for flag in CPU_BFLOAT16_FLAGS if flag in set(cpu_flags)]
    if not present:
        return _fallback(f"the CPU has neither of the flags {wanted} (native bfloat16 dot products)")
    if not onednn:
        return _fallback(
            "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0), and TensorFlow's bfloat16 CPU kernels without it are slow"
        )
    return Policy("mixed", "bfloat16", False, f"the CPU has {' and '.join(present)}: bfloat16 on oneDNN")


def read_cpu_flags(path: str = "/proc/cpuinfo") -> Optional[frozenset]:
    """The CPU's feature flags (Linux /proc/cpuinfo ``flags`` line), or ``None`` if unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / ARM (whose flags name no x86 extension)
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def visible_gpus() -> list:
    """``[{"device_name", "compute_capability"}]`` of TensorFlow's visible GPUs (empty on CPU-only builds)."""
    import tensorflow as tf

    if TensorFlowSetup.no_cuda_driver():  # asking would only log "failed call to cuInit"
        return []
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(
            {
                "device_name": details.get("device_name", device.name),
                "compute_capability": details.get("compute_capability"),
            }
        )
    return gpus


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN kernels are on in this process (TF_ENABLE_ONEDNN_OPTS, which
    Utils.use_fast_cpu_kernels sets unless the user did)."""
    try:  # TensorFlow's own runtime answer (not public API)
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"


def machine_policy(precision: str) -> Policy:
    """:func:`choose_policy` for this machine; a wanted but unavailable mixed precision is a warning.

    ``precision``: a checked setting (``ModelConfig.precision``). The devices are looked up once
    per process (the result is cached per setting).
    """
    return _machine_policy(precision)


@functools.lru_cache(maxsize=None)
def _machine_policy(precision):
    if precision == "float32":
        return FLOAT32
    policy = choose_policy(precision, visible_gpus(), read_cpu_flags(), onednn_enabled())
    if policy.mixed:
        LOGGER.info("model_config.precision=mixed: %s", policy.reason)
    else:
        LOGGER.warning("model_config.precision=mixed, but %s: computing in float32 instead.", policy.reason)
    return policy


def loss_scaled_minimize(
    optimiser: "tf.compat.v1.train.Optimizer",
    loss: "tf.Tensor",
    var_list: Optional[List["tf.Variable"]],
    global_step: Optional["tf.Variable"] = None,
    initial_scale: float = INITIAL_LOSS_SCALE,
    growth_interval: int = LOSS_SCALE_GROWTH_INTERVAL,
) -> "tf.Operation":
    """``optimiser.minimize(loss, var_list, global_step)`` with dynamic loss scaling.

    The gradients of ``loss * scale`` are divided by ``scale``. If any of them is not finite
    the update is skipped and ``scale`` halves (down to 1); after ``growth_interval`` finite
    steps in a row it doubles. ``global_step`` counts every call, skipped or not, so that the
    training loop's step counter and the checkpoints' steps agree. The state lives in two
    non-trainable variables of the current variable scope, ``loss_scale`` (float32) and
    ``loss_scale_good_steps`` (int64), also in the collection :data:`LOSS_SCALE_COLLECTION`
    (checkpoints leave them out, see :func:`saved_variables`). The optimiser's own variables
    get the names they get without loss scaling.

    Args:
        optimiser: a ``tf.compat.v1.train.Optimizer``.
        loss: float32 scalar.

    Returns:
        The train op.
    """
    import tensorflow as tf

    collections = [tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, LOSS_SCALE_COLLECTION]
    scale = tf.compat.v1.get_variable(
        "loss_scale",
        [],
        dtype=tf.float32,
        trainable=False,
        collections=collections,
        initializer=tf.compat.v1.constant_initializer(float(initial_scale)),
    )
    good_steps = tf.compat.v1.get_variable(
        "loss_scale_good_steps",
        [],
        dtype=tf.int64,
        trainable=False,
        collections=collections,
        initializer=tf.compat.v1.zeros_initializer(),
    )
    grads_and_vars = [
        (grad, var) for grad, var in optimiser.compute_gradients(loss * scale, var_list) if grad is not None
    ]
    grads = [grad / scale for grad, _ in grads_and_vars]
    variables = [var for _, var in grads_and_vars]
    with tf.compat.v1.init_scope():  # here: created inside the tf.cond below they would lose their scope
        optimiser._create_slots(variables)  # pylint: disable=protected-access
    finite = tf.reduce_all(
        tf.stack([tf.reduce_all(tf.math.is_finite(grad)) for grad in grads]), name="gradients_finite"
    )

    def apply():
        with tf.control_dependencies([optimiser.apply_gradients(zip(grads, variables))]):
            return tf.constant(True)

    applied = tf.cond(finite, apply, lambda: tf.constant(False))
    with tf.control_dependencies([applied]):
        grown = tf.logical_and(finite, good_steps + 1 >= growth_interval)
        new_scale = tf.where(finite, tf.where(grown, scale * 2.0, scale), tf.maximum(scale / 2.0, 1.0))
        new_good = tf.where(tf.logical_and(finite, tf.logical_not(grown)), good_steps + 1, tf.zeros([], tf.int64))
        updates = [scale.assign(new_scale), good_steps.assign(new_good)]
        if global_step is not None:
            updates.append(global_step.assign_add(1))
        return tf.group(*updates)


def saved_variables(graph: Optional["tf.Graph"] = None) -> list:
    """The global variables a checkpoint should hold: all but the loss-scale state.

    Leaving the loss scale out keeps checkpoints the same whatever dtype a machine chose: a run
    trained in bfloat16 resumes on a float16 GPU (its scale starts again at
    :data:`INITIAL_LOSS_SCALE` and adapts within a few steps) and vice versa.
    """
    import tensorflow as tf

    graph = graph or tf.compat.v1.get_default_graph()
    excluded = {id(variable) for variable in graph.get_collection(LOSS_SCALE_COLLECTION)}
    return [
        variable
        for variable in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
        if id(variable) not in excluded
    ]
