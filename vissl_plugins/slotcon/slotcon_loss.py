"""Loss ``slotcon_loss``: SlotCon's grouping + slot-contrastive loss (Wen et al. 2022) in VISSL.

Spec: shared/specs/pretrain.md 2(a), 6.7; the math is densessl.slotcon.slotcon_loss (its
module docstring has the equations). Inputs, for B images and their two views:

    output  [slots (2B, K, D), dots (2B, K, H, W)]   student, view-major rows (slotcon_head
                                                      through slotcon_model)
    target  (B, 2, 5) float: per image and view (x1, y1, x2, y2, flipped); the box is the
            views' overlap in that view's normalised coordinates, already mirrored if the
            view was flipped (slotcon_collator)

and, set by ``SlotConTeacherHook`` before every loss call: the teacher's [slots, dots] of the
same images (``set_teacher_output``) and the student's slot predictor (``set_student_
predictor``). Per step: both branches' dots are aligned to the overlap (align_to_overlap),
L = slotcon_loss(student, teacher, predictor, center), then the centre moves AFTER the loss:

    center <- 0.9 center + 0.1 batch_center(teacher dots of both views, all processes)

State (checkpointed by VISSL under ``loss`` and ``classy_state_dict.loss``) — a contract
with converters/ (reader ``slotcon``), keep it exactly:

    center                                      (1, K)
    momentum_teacher.trunk._feature_blocks.*    the teacher ResNet, torchvision names
                                                (conv1, bn1, layer1.0.conv1, ...)
    momentum_teacher.heads.0.projector.mlp.*    the teacher projector
    momentum_teacher.heads.0.grouping.prototypes.weight   (K, D)

The teacher (a VISSL model, no predictor) is built by the hook at the first forward, as
VISSL's DINO does. VISSL restores the loss before that, so ``load_state_dict`` keeps the
teacher's part and the hook loads it into the teacher it builds; every key is checked.
"""
import torch
from classy_vision.losses import ClassyLoss, register_loss

from densessl.slotcon import (SlotConViewOutputs, align_to_overlap, batch_center, slotcon_loss,
                              updated_center)

TEACHER_PREFIX = 'momentum_teacher.'
DEFAULTS = {'num_prototypes': 256, 'group_loss_weight': 0.5, 'student_temp': 0.1,
            'teacher_temp': 0.07, 'contrast_temp': 0.2, 'center_momentum': 0.9,
            'teacher_momentum': 0.99}


class SlotConConfigError(ValueError):
    """A LOSS.slotcon_loss key (or a part of the config SlotCon needs) that is unusable."""


class SlotConCheckpointError(KeyError):
    """A checkpointed loss state that does not fit this run's SlotCon loss / teacher."""

    def __str__(self):
        return self.args[0]


def checked_loss_config(loss_config):
    """LOSS.slotcon_loss with the defaults filled in; unknown keys and bad values refused."""
    config = dict(DEFAULTS)
    for key, value in dict(loss_config or {}).items():
        if key == 'name':  # VISSL's build_loss adds the loss name
            continue
        if key not in DEFAULTS:
            raise SlotConConfigError(
                f'unknown key config.LOSS.slotcon_loss.{key}; known keys: {", ".join(DEFAULTS)}'
                f' (see vissl_plugins/slotcon/slotcon_loss.py)')
        config[key] = value
    for key in ('student_temp', 'teacher_temp', 'contrast_temp'):
        if not float(config[key]) > 0:
            raise SlotConConfigError(f'config.LOSS.slotcon_loss.{key}={config[key]} must be > 0')
    for key in ('group_loss_weight', 'center_momentum', 'teacher_momentum'):
        if not 0 <= float(config[key]) <= 1:
            raise SlotConConfigError(
                f'config.LOSS.slotcon_loss.{key}={config[key]} must be in [0, 1]')
    if int(config['num_prototypes']) < 1:
        raise SlotConConfigError(
            f'config.LOSS.slotcon_loss.num_prototypes={config["num_prototypes"]} must be >= 1')
    return config


def split_target(target, num_images):
    """target (B, 2, 5) -> [(boxes (B, 4), flipped (B,) bool) for view 1, view 2]."""
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != (num_images, 2, 5):
        raise ValueError(
            f'slotcon_loss: the target must be a (B, 2, 5) tensor of overlap boxes and flip '
            f'flags with B = {num_images} (slotcon_collator), got '
            f'{type(target).__name__} {tuple(getattr(target, "shape", ()))}')
    target = target.float()
    return [(target[:, v, :4], target[:, v, 4] > 0.5) for v in range(2)]


def view_outputs(slots, dots, views):
    """Stacked two-view head outputs (2B rows) -> two SlotConViewOutputs with aligned dots."""
    return [SlotConViewOutputs(s, d, align_to_overlap(d, boxes.to(d.device), flipped.to(d.device)))
            for s, d, (boxes, flipped) in zip(slots.chunk(2), dots.chunk(2), views)]


@register_loss('slotcon_loss')
class SlotConLoss(ClassyLoss):
    """See the module docstring. Attributes: ``momentum_teacher`` (None until the hook builds
    it), buffer ``center`` (1, K), ``last_terms`` (the last step's terms, for logging)."""

    def __init__(self, num_prototypes=256, group_loss_weight=0.5, student_temp=0.1,
                 teacher_temp=0.07, contrast_temp=0.2, center_momentum=0.9,
                 teacher_momentum=0.99):
        super().__init__()
        self.num_prototypes = int(num_prototypes)
        self.group_loss_weight = float(group_loss_weight)
        self.student_temp, self.teacher_temp = float(student_temp), float(teacher_temp)
        self.contrast_temp = float(contrast_temp)
        self.center_momentum = float(center_momentum)
        self.teacher_momentum = float(teacher_momentum)  # base m_0 of the EMA schedule
        self.register_buffer('center', torch.zeros(1, self.num_prototypes))
        self.momentum_teacher = None
        self.pending_teacher_state = None  # teacher part of a checkpoint, until the hook builds it
        self.teacher_output = None
        self._predictor = None
        self.last_terms = {}
        self.last_teacher_momentum = None  # m of the last EMA update (set by the hook)

    @classmethod
    def from_config(cls, loss_config):
        return cls(**checked_loss_config(loss_config))

    # ---- set by SlotConTeacherHook every step -----------------------------------------------
    def set_teacher_output(self, output):
        """The teacher's [slots (2B, K, D), dots (2B, K, H, W)] for the coming loss call."""
        self.teacher_output = output

    def set_student_predictor(self, predictor):
        """The student's slot predictor (a module of the model, not of the loss: kept out of
        the loss's parameters and state dict)."""
        object.__setattr__(self, '_predictor', predictor)

    # ---- checkpoint -------------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict=True):
        """Restore ``center`` now and the teacher now or, before it exists, when the hook
        builds it. Fails naming missing or unknown keys."""
        state = dict(state_dict)
        unknown = sorted(k for k in state if k != 'center' and not k.startswith(TEACHER_PREFIX))
        teacher_state = {k[len(TEACHER_PREFIX):]: v for k, v in state.items()
                         if k.startswith(TEACHER_PREFIX)}
        if 'center' not in state or unknown or not teacher_state:
            raise SlotConCheckpointError(
                f'slotcon_loss checkpoint state: missing {"center" if "center" not in state else ""}'
                f'{" teacher (momentum_teacher.*)" if not teacher_state else ""}'
                f'{" unknown keys " + str(unknown[:10]) if unknown else ""}; expected center and '
                f'momentum_teacher.* (vissl_plugins/slotcon/slotcon_loss.py). Is this a SlotCon '
                f'checkpoint of this configuration?')
        if tuple(state['center'].shape) != tuple(self.center.shape):
            raise SlotConCheckpointError(
                f'slotcon_loss checkpoint: center has shape {tuple(state["center"].shape)}, this '
                f'run needs {tuple(self.center.shape)} (num_prototypes={self.num_prototypes})')
        self.center.copy_(state['center'])
        if self.momentum_teacher is None:
            self.pending_teacher_state = teacher_state
        else:
            self.load_teacher_state(teacher_state)

    def load_teacher_state(self, teacher_state):
        """Load a teacher state dict (keys without ``momentum_teacher.``); every key and shape
        is checked first, and a mismatch fails naming the keys."""
        own = self.momentum_teacher.state_dict()
        missing = sorted(set(own) - set(teacher_state))
        unexpected = sorted(set(teacher_state) - set(own))
        mismatched = sorted(f'{TEACHER_PREFIX}{k} {tuple(teacher_state[k].shape)} vs '
                            f'{tuple(own[k].shape)}' for k in set(own) & set(teacher_state)
                            if tuple(own[k].shape) != tuple(teacher_state[k].shape))
        if missing or unexpected or mismatched:
            raise SlotConCheckpointError(
                f'slotcon_loss checkpoint: the teacher does not fit this run\'s model: missing '
                f'{[TEACHER_PREFIX + k for k in missing][:10]} ({len(missing)}), unexpected '
                f'{[TEACHER_PREFIX + k for k in unexpected][:10]} ({len(unexpected)}), shape '
                f'(checkpoint vs model) {mismatched[:10]} ({len(mismatched)})')
        self.momentum_teacher.load_state_dict(teacher_state)
        self.pending_teacher_state = None

    # ---- loss -------------------------------------------------------------------------------
    def forward(self, output, target):
        if not isinstance(output, (list, tuple)) or len(output) != 2:
            raise ValueError('slotcon_loss: the model output must be [slots, dots] of '
                             'slotcon_head (MODEL.HEAD.PARAMS: [["slotcon_head", {...}]])')
        if self.teacher_output is None or self._predictor is None:
            raise RuntimeError('slotcon_loss: no teacher output for this step; the hook '
                               'SlotConTeacherHook must run on_forward (tools/'
                               'run_distributed_engines.py adds it via densessl_hook_generator)')
        slots, dots = output
        if slots.shape[0] % 2 or slots.shape[1] != self.num_prototypes:
            raise ValueError(f'slotcon_loss: slots {tuple(slots.shape)} must be (2B, '
                             f'{self.num_prototypes}, D)')
        views = split_target(target, slots.shape[0] // 2)
        student = view_outputs(slots, dots, views)
        teacher = view_outputs(*self.teacher_output, views)
        self.teacher_output = None  # one use per step
        loss, terms = slotcon_loss(student, teacher, self._predictor, self.center,
                                   group_loss_weight=self.group_loss_weight,
                                   student_temp=self.student_temp,
                                   teacher_temp=self.teacher_temp,
                                   contrast_temp=self.contrast_temp)
        with torch.no_grad():  # spec 6.7: the loss used the centre from before this update
            self.center.copy_(updated_center(self.center, batch_center([t.dots for t in teacher]),
                                             self.center_momentum))
        self.last_terms = terms
        return loss

    def extra_repr(self):
        return (f'num_prototypes={self.num_prototypes}, group_loss_weight='
                f'{self.group_loss_weight}, student_temp={self.student_temp}, teacher_temp='
                f'{self.teacher_temp}, contrast_temp={self.contrast_temp}, center_momentum='
                f'{self.center_momentum}, teacher_momentum={self.teacher_momentum}')
