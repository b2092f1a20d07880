"""Hooks of a ``slotcon_loss`` run (added by ``densessl_hook_generator``).

- ``SlotConTeacherHook`` (on_forward: after the student's forward, before the loss), VISSL's
  DINO pattern:
    1. first call of a run: build the teacher = the student's VISSL model without the slot
       predictor (``vissl.models.build_model`` on MODEL with the head's ``with_predictor:
       False``), SyncBN-converted exactly when VISSL converts the student, no gradients,
       stored on the loss as ``momentum_teacher``; its weights come from the checkpoint the
       loss holds on resume, else from the student (parameters only: the teacher's BN
       statistics start fresh and follow its own forwards, as in the original);
    2. in training phases the EMA step of spec 2(a)
           m = teacher_momentum(task.iteration, task.max_iteration, base)   (0.99 -> 1)
           teacher <- m teacher + (1 - m) student      (densessl.slotcon.ema_update_)
       task.iteration counts every training step from 0 and comes from the checkpoint on
       resume, so m is the original's (its k, re-initialised on resume);
    3. the teacher's forward on the same images (no_grad; under torch.autocast when
       VISSL's AMP is ``pytorch`` on GPU; train mode in training phases, so its BatchNorm
       uses batch statistics, per view, like the student's), handed to the loss with the
       student's slot predictor.
  The original runs the EMA at the start of its forward; here it runs after the student's
  forward, which changes nothing: the student's weights do not change in between.
- ``SlotConLossTermsHook`` (on_step): the loss terms (grouping, contrastive, per direction,
  query counts) and the teacher momentum, in the log every ``LOG_FREQUENCY`` iterations and
  in TensorBoard (``Losses/slotcon_*``).
"""
import contextlib
import copy
import logging

import torch
from classy_vision.hooks.classy_hook import ClassyHook
from vissl.models import build_model, convert_sync_bn
from vissl.models.model_helpers import get_no_ddp_model
from classy_vision.tasks.classification_task import AmpType
from vissl.config import AttrDict

from densessl.slotcon import ema_update_, teacher_momentum
from vissl_plugins.hooks.loss_terms_hook import LossTermsHook


def teacher_model_config(model_config):
    """MODEL config of the teacher: the student's with ``with_predictor: False`` in its head."""
    plain = model_config.to_dict() if isinstance(model_config, AttrDict) else model_config
    config = AttrDict(copy.deepcopy(dict(plain)))
    name, params = config['HEAD']['PARAMS'][0]
    config['HEAD']['PARAMS'] = [[name, {**dict(params), 'with_predictor': False}]]
    return config


def build_teacher(task):
    """The teacher model for ``task`` (see the module docstring, step 1); not yet initialised."""
    config = task.config
    teacher = build_model(teacher_model_config(config['MODEL']), config['OPTIMIZER'])
    if config['MODEL']['SYNC_BN_CONFIG']['CONVERT_BN_TO_SYNC_BN'] and \
            config['MACHINE']['DEVICE'] == 'gpu':  # the student's condition (train_task.py)
        teacher = convert_sync_bn(config, teacher)
    teacher = teacher.to(task.device)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


class SlotConTeacherHook(ClassyHook):
    on_start = on_phase_start = on_loss_and_meter = on_backward = ClassyHook._noop
    on_update = on_step = on_phase_end = on_end = ClassyHook._noop

    @torch.no_grad()
    def on_forward(self, task) -> None:
        loss = get_no_ddp_model(task.loss)
        student = get_no_ddp_model(task.model)
        if loss.momentum_teacher is None:
            logging.info('slotcon: building the momentum teacher')
            loss.momentum_teacher = build_teacher(task)
            if loss.pending_teacher_state is not None:
                loss.load_teacher_state(loss.pending_teacher_state)
                logging.info('slotcon: teacher restored from the checkpoint')
            else:
                ema_update_(loss.momentum_teacher, student, 0.0)  # a copy of the student
        teacher = loss.momentum_teacher
        if task.train:
            momentum = teacher_momentum(task.iteration, task.max_iteration,
                                        loss.teacher_momentum)
            ema_update_(teacher, student, momentum)
            loss.last_teacher_momentum = momentum
        teacher.train(task.train)
        images = task.last_batch.sample['input']
        autocast = (torch.autocast(device_type='cuda')
                    if getattr(task, 'amp_type', None) == AmpType.PYTORCH and images.is_cuda
                    else contextlib.nullcontext())
        with autocast:
            output = teacher(images)
        loss.set_teacher_output(output[0] if len(output) == 1 else output)
        loss.set_student_predictor(student.heads[0].predictor)


class SlotConLossTermsHook(LossTermsHook):
    """The loss terms and the teacher momentum of the step (``Losses/slotcon_*``)."""

    def __init__(self, log_frequency):
        super().__init__('slotcon', log_frequency, value_format='.6g')

    def terms(self, task):
        terms = super().terms(task)
        momentum = getattr(get_no_ddp_model(task.loss), 'last_teacher_momentum', None)
        if momentum is not None:
            terms['teacher_momentum'] = momentum
        return terms


def slotcon_hooks(cfg):
    """The hooks a config needs when ``LOSS.name`` is ``slotcon_loss``, else none."""
    if cfg['LOSS']['name'] != 'slotcon_loss':
        return []
    return [SlotConTeacherHook(), SlotConLossTermsHook(cfg.get('LOG_FREQUENCY', 10))]
