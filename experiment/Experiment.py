"""The paper's experiment as a library function: supervised training, semi-supervised training,
then BSS Eval of both best models on the test songs (Training.py's ``main`` wraps it in sacred).
"""

import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import Evaluate
from common import Checkpoints
from common.Config import ModelConfig
from evaluation.Metrics import DEFAULT_BSS_EVAL
from experiment import Trainer
from experiment.Settings import PhaseSettings
from experiment.TrainingData import TrainingData

LOGGER = logging.getLogger("Training")

PhaseCallback = Callable[[str, Checkpoints.PhaseState], None]


def run_experiment(
    data: TrainingData,
    config: ModelConfig,
    settings: PhaseSettings,
    semisup_init: str = "scratch",
    eval_workers: int = Evaluate.DEFAULT_NUM_WORKERS,
    eval_batch_size: int = Evaluate.DEFAULT_BATCH_SIZE,
    bss_eval: Sequence[str] = DEFAULT_BSS_EVAL,
    phase_done: Optional[PhaseCallback] = None,
) -> Tuple[Dict[str, Checkpoints.PhaseState], Dict[str, List[dict]]]:
    """Train the supervised and then the semi-supervised phase, and evaluate both best models.

    Args:
        data: the partitions (``test`` is evaluated) and the batch generators' input.
        config: the checked model configuration; settings: see :class:`PhaseSettings`.
        semisup_init: ``"scratch"`` (the paper) or ``"supervised"``: the semi-supervised
            separator starts from the supervised phase's best model.
        eval_workers, eval_batch_size, bss_eval: see ``Evaluate.evaluate_model``.
        phase_done: called with the phase's name (``"supervised"``, ``"semi-supervised"``) and
            its finished state as soon as a phase is trained and tested.

    Returns:
        ``({name: PhaseState}, {name: per-song BSS Eval rows})`` keyed ``"supervised"`` and
        ``"semi-supervised"``. Phases that finished before are not trained again (resume).
    """
    states = {}
    for phase in ("sup", "semisup"):
        init = None
        if phase == "semisup" and semisup_init == "supervised":
            init = states[Trainer.PHASES["sup"]].best_checkpoint
        state = Trainer.optimise(phase, data, config, settings, init_checkpoint=init)
        states[Trainer.PHASES[phase]] = state
        if phase_done is not None:
            phase_done(Trainer.PHASES[phase], state)
    results = {}
    for name, state in states.items():
        LOGGER.info("Evaluating the %s model on %d test songs", name, len(data["test"]))
        results[name] = Evaluate.evaluate_model(
            os.path.dirname(state.best_checkpoint),
            data["test"],
            num_workers=eval_workers,
            batch_size=eval_batch_size,
            model_name=name,
            bss_eval=bss_eval,
        )
    return states, results
