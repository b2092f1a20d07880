"""Hooks of a ``dense_swav_loss`` run (added by ``densessl_hook_generator``).

VISSL's own SwAV hooks do the same for ``swav_loss`` only (they test ``LOSS.name``).

- ``DenseSwAVQueueScoresHook`` (on_forward, before the loss): queue scores = C . queue with the
  current prototypes C, whenever the coming loss uses the queue.
- ``DenseSwAVNormalizePrototypesHook`` (on_update, after the optimizer step): every row of C
  back to unit L2, so scores are cosine similarities.
- ``LossTermsHook('dense_swav')`` (on_step, vissl_plugins/hooks): the two terms of the loss and
  the regions per view, in the log every ``LOG_FREQUENCY`` iterations and in TensorBoard
  (``Losses/dense_swav_*``).
"""
import torch
import torch.nn.functional as F
from classy_vision.hooks.classy_hook import ClassyHook

from vissl_plugins.hooks.loss_terms_hook import LossTermsHook


def dense_swav_prototypes(task):
    """The ``prototypes0`` Linear of the (possibly DDP-wrapped) model's only head."""
    model = task.model.module if hasattr(task.model, 'module') else task.model
    return model.heads[0].prototypes0


class DenseSwAVQueueScoresHook(ClassyHook):
    on_start = on_phase_start = on_loss_and_meter = on_backward = ClassyHook._noop
    on_update = on_step = on_phase_end = on_end = ClassyHook._noop

    def on_forward(self, task) -> None:
        if task.loss.queue_used_this_step():
            task.loss.refresh_queue_scores(dense_swav_prototypes(task).weight.detach())


class DenseSwAVNormalizePrototypesHook(ClassyHook):
    on_start = on_phase_start = on_forward = on_loss_and_meter = ClassyHook._noop
    on_backward = on_step = on_phase_end = on_end = ClassyHook._noop

    def on_update(self, task) -> None:
        with torch.no_grad():
            weight = dense_swav_prototypes(task).weight
            weight.copy_(F.normalize(weight, dim=1, p=2))


def dense_swav_hooks(cfg):
    """The hooks a config needs when ``LOSS.name`` is ``dense_swav_loss``, else none."""
    if cfg['LOSS']['name'] != 'dense_swav_loss':
        return []
    return [DenseSwAVQueueScoresHook(), DenseSwAVNormalizePrototypesHook(),
            LossTermsHook('dense_swav', cfg.get('LOG_FREQUENCY', 10))]
