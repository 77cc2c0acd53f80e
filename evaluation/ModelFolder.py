"""A trained model's folder: its checkpoint, its ``model_config.json``, and the separator restored from them.

A model folder is what Training.py writes for a phase, or its ``best/`` copy (see
common/Checkpoints.py): TensorFlow ``Saver`` files, the ``checkpoint`` state file and
``model_config.json``. :func:`restore_separator` rebuilds the separator's inference path
(Models/Inference.py: linear magnitudes in and out) from the JSON alone, in its own ``tf.Graph``,
and restores only the ``separator/`` variables into a new session.
"""

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Optional, Tuple

from common import TensorFlowSetup, Utils
from common.Checkpoints import MODEL_CONFIG_FILE, read_model_config, variable_mismatches
from common.Config import ModelConfig

Utils.use_fast_cpu_kernels()  # before TensorFlow is imported (lazily, below)

# TensorFlow and Models are imported inside the functions that need them: the ``separate``
# command checks its inputs and outputs before paying for TensorFlow.
if TYPE_CHECKING:
    import tensorflow as tf

    from common.Precision import Policy
    from Models.Inference import InferenceGraph

LOGGER = logging.getLogger(__name__)


def find_checkpoint(model_path: str) -> Tuple[str, str]:
    """Locate the checkpoint of a model folder (or a direct checkpoint prefix).

    Args:
        model_path: a folder written by Training.py (``model_config.json``, ``checkpoint``
            state file and ``Saver`` files), or a checkpoint prefix such as
            ``checkpoints/1_sup/model-3000`` whose folder holds ``model_config.json``.

    Returns:
        ``(checkpoint_prefix, folder)``.

    Raises:
        FileNotFoundError: naming the path and what is missing.
        ValueError: ``model_path`` is a file that is not a checkpoint.
    """
    import tensorflow as tf

    model_path = os.fspath(model_path)
    is_prefix = not os.path.isdir(model_path) and os.path.isfile(model_path + ".index")
    if os.path.exists(model_path) and not (os.path.isdir(model_path) or is_prefix):
        raise ValueError(
            f"Model path {model_path} is a file, not a checkpoint folder: pass a folder written by Training.py "
            "(e.g. checkpoints/<id>_semisup/best) or a checkpoint prefix (e.g. checkpoints/<id>_sup/model-3000)."
        )
    if not (os.path.isdir(model_path) or is_prefix):
        raise FileNotFoundError(
            f"Model path {model_path} does not exist: pass a checkpoint folder written by Training.py "
            "(e.g. checkpoints/<id>_semisup/best) or a checkpoint prefix (e.g. checkpoints/<id>_sup/model-3000)."
        )
    folder = os.path.dirname(os.path.abspath(model_path)) if is_prefix else model_path
    if not os.path.isfile(os.path.join(folder, MODEL_CONFIG_FILE)):
        raise FileNotFoundError(
            f"Model folder {folder} has no {MODEL_CONFIG_FILE}: it is needed to rebuild the "
            "separator. Pass a folder written by Training.py, e.g. checkpoints/<id>_sup/best."
        )
    if is_prefix:
        return model_path, folder
    # The folder's own files first: a copied folder's state file may still name the original's.
    checkpoint = _relocated_checkpoint(folder) or tf.train.latest_checkpoint(folder)
    if checkpoint is None:
        raise FileNotFoundError(
            f"Model folder {folder} holds no TensorFlow checkpoint (no 'checkpoint' state file, or the "
            "files it names are missing). Pass a folder written by Training.py, e.g. checkpoints/<id>_sup/best."
        )
    return checkpoint, folder


def _relocated_checkpoint(folder):
    """The state file's checkpoint looked up in ``folder`` (state files may hold stale absolute paths)."""
    import tensorflow as tf

    state_path = os.path.join(folder, "checkpoint")
    if not os.path.isfile(state_path):
        return None
    state = tf.train.get_checkpoint_state(folder)
    if state is None or not state.model_checkpoint_path:
        return None
    candidate = os.path.join(folder, os.path.basename(state.model_checkpoint_path))
    return candidate if os.path.isfile(candidate + ".index") else None


@dataclasses.dataclass(frozen=True)
class RestoredSeparator:
    """A separator restored by :func:`restore_separator`; its session is the caller's to close.

    ``model_config`` is the folder's ``ModelConfig`` with ``precision`` as used here; ``input_shape`` and
    ``output_shape`` are the network's ``(F_in, T_in)`` and ``(F_out, T_out)``; ``inference``
    holds the placeholder (linear magnitudes ``[n, F_in, T_in, 1]``) and the linear estimates.
    """

    checkpoint: str
    model_config: ModelConfig
    policy: "Policy"
    input_shape: Tuple[int, int]
    output_shape: Tuple[int, int]
    graph: "tf.Graph"  # finalised
    session: "tf.compat.v1.Session"
    inference: "InferenceGraph"


def restore_separator(model_path: str, precision: Optional[str] = None) -> RestoredSeparator:
    """Rebuild the separator of a model folder and restore its weights.

    Args:
        model_path: checkpoint folder or checkpoint prefix, see :func:`find_checkpoint`.
        precision: ``"float32"`` or ``"mixed"`` to override the stored ``precision`` (see
            ``Separation.Separator``); ``None`` keeps it.

    Raises:
        FileNotFoundError: the folder, its checkpoint or its ``model_config.json`` is missing.
        ValueError: the JSON is unreadable or incomplete, the precision is unknown, or the
            checkpoint does not match the JSON or cannot be restored.
    """
    import tensorflow as tf

    from common import Precision
    from Models import Inference
    from Models.Unet import Unet

    checkpoint, folder = find_checkpoint(model_path)
    model_config = read_model_config(folder)
    if precision is not None:
        model_config = model_config.replace(precision=precision)
    policy = Precision.machine_policy(model_config.precision)
    network = model_config.network
    input_shape, output_shape = network.input_shape, network.output_shape
    graph = tf.Graph()
    with graph.as_default():
        unet = Unet(
            network.num_layers, network.num_initial_filters, network.sources, compute_dtype=policy.compute_dtype
        )
        inference = Inference.build_inference(unet, input_shape, reuse=False, name="mixture_magnitudes")
        variables = Inference.separator_variables(graph, trainable_only=False)
        _check_checkpoint_variables(checkpoint, variables)
        saver = tf.compat.v1.train.Saver(var_list=variables)
        session = tf.compat.v1.Session(graph=graph, config=TensorFlowSetup.session_config())
        try:  # inside the graph context so restoring works whether or not eager execution is on
            saver.restore(session, checkpoint)
        except tf.errors.OpError as error:
            session.close()
            raise ValueError(
                f"Cannot restore checkpoint {checkpoint}: {error.message}. "
                "Is it complete? Use a checkpoint written by Training.py."
            ) from error
    graph.finalize()
    LOGGER.info("Restored the separator from %s", checkpoint)
    return RestoredSeparator(
        checkpoint=checkpoint,
        model_config=model_config,
        policy=policy,
        input_shape=input_shape,
        output_shape=output_shape,
        graph=graph,
        session=session,
        inference=inference,
    )


def _check_checkpoint_variables(checkpoint, variables):
    """Raise a clear error unless the checkpoint's separator variables are exactly the graph's
    (names and shapes, both ways: an edited ``model_config.json`` must not pass)."""
    from Models.Unet import SCOPE

    problems = variable_mismatches(checkpoint, variables, SCOPE + "/")
    if problems:
        raise ValueError(
            f"Checkpoint {checkpoint} does not match its model_config.json: "
            f"{'; '.join(problems[:4])}{' ...' if len(problems) > 4 else ''} "
            f"({len(problems)} difference(s)). Use the model_config.json written together with "
            "the checkpoint."
        )
