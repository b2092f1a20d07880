"""``LossTermsHook``: a loss's named terms in the log and in TensorBoard.

A loss that keeps ``last_terms`` (name -> number, set by its forward) gets them written every
step to TensorBoard as ``Losses/<prefix>_<name>`` and every ``LOG_FREQUENCY`` iterations to the
log as ``<prefix>_loss terms: name value, ...`` (primary process only). ``terms`` may be
overridden to add numbers that live elsewhere (SlotCon's teacher momentum).
"""
import logging

from classy_vision.generic.distributed_util import is_primary
from classy_vision.hooks.classy_hook import ClassyHook
from vissl.models.model_helpers import get_no_ddp_model


class LossTermsHook(ClassyHook):
    on_start = on_phase_start = on_forward = on_loss_and_meter = ClassyHook._noop
    on_backward = on_update = on_phase_end = on_end = ClassyHook._noop

    def __init__(self, prefix, log_frequency, value_format='.4f'):
        super().__init__()
        self.prefix = prefix
        self.log_frequency = max(int(log_frequency), 1)
        self.value_format = value_format

    def terms(self, task):
        """name -> float of this step's loss terms (empty when the loss has none)."""
        loss = get_no_ddp_model(task.loss)
        return {name: float(value) for name, value in getattr(loss, 'last_terms', {}).items()}

    def on_step(self, task) -> None:
        terms = self.terms(task)
        if not terms or not is_primary():
            return
        iteration = task.iteration
        writer = next((h.tb_writer for h in task.hooks if hasattr(h, 'tb_writer')), None)
        if writer is not None:
            for name, value in terms.items():
                writer.add_scalar(f'Losses/{self.prefix}_{name}', value, global_step=iteration)
        if iteration % self.log_frequency == 0:
            logging.info(f'{self.prefix}_loss terms: ' + ', '.join(
                f'{name} {value:{self.value_format}}' for name, value in terms.items()))
