"""The grid of training configs: one optimizer and one LR scheduler per config.

A training config (a ``training_configs`` entry of a ViRB config file, the original's keys)::

    sgd-0.01-StepLR:
      optimizer: sgd            # adam | sgd
      lr: 0.01
      momentum: 0.9             # sgd only (default 0)
      weight_decay: 0.0001      # new here (default 0): the original had no such option
      scheduler:                # optional
        type: StepLR            # StepLR: step_size (epochs), gamma; every epoch
                                # OneCycle: max_lr = lr, one step per epoch, linear anneal
                                #           (pct_start, default 0.3)
                                # Poly: lr * (1 - it / N) ** exponent, every batch,
                                #       N = num_epochs * batches per epoch

The original's schedulers never step (its ``get_scheduler`` returns the units
``'epochs'`` / ``'batches'``, its training loop tests ``'epoch'`` / ``'batch'``), so every
run it reports used a constant LR. Here they step; ``bug_compat`` (the task key
``bug_compat: [scheduler_never_steps]`` or ``tools/virb.py --bug-compat
scheduler_never_steps``) restores its constant LR to reproduce its numbers: the scheduler
is built (so the LR is its starting value: ``lr``, or ``lr / 25`` for OneCycle, whose
construction sets the LR to ``max_lr / div_factor``) and never stepped.
"""
from dataclasses import dataclass, field

import torch

from virb.errors import VirbError, reject_unknown_keys

OPTIMIZERS = ('adam', 'sgd')
SCHEDULER_KEYS = {'StepLR': {'step_size': True, 'gamma': False},
                  'OneCycle': {'pct_start': False},
                  'Poly': {'exponent': False}}
CONFIG_KEYS = ('optimizer', 'lr', 'momentum', 'weight_decay', 'scheduler')
BUG_SCHEDULER = 'scheduler_never_steps'


@dataclass
class TrainingConfig:
    """One validated ``training_configs`` entry."""
    name: str
    optimizer: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: dict = field(default_factory=dict)  # {} = constant LR

    def as_dict(self):
        return {'optimizer': self.optimizer, 'lr': self.lr, 'momentum': self.momentum,
                'weight_decay': self.weight_decay, 'scheduler': dict(self.scheduler)}


def _number(value, where, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VirbError(f'{where}: {value!r} is not a number')
    if positive and value <= 0:
        raise VirbError(f'{where}: {value!r} must be > 0')
    return float(value)


def parse_training_config(name, raw, where):
    """Validate one entry; ``where`` (e.g. ``'cfg.yaml: Imagenet.training_configs.adam'``)
    prefixes every error."""
    if not isinstance(raw, dict):
        raise VirbError(f'{where}: a training config is a mapping with optimizer, lr, ... '
                        f'(found {type(raw).__name__})')
    reject_unknown_keys(raw, CONFIG_KEYS, where, 'a training config')
    for key in ('optimizer', 'lr'):
        if key not in raw:
            raise VirbError(f'{where}: missing {key!r}')
    optimizer = raw['optimizer']
    if optimizer not in OPTIMIZERS:
        raise VirbError(f'{where}.optimizer: unknown optimizer {optimizer!r}; one of '
                        f'{", ".join(OPTIMIZERS)}')
    lr = _number(raw['lr'], f'{where}.lr', positive=True)
    momentum = _number(raw.get('momentum', 0.0), f'{where}.momentum')
    if momentum and optimizer != 'sgd':
        raise VirbError(f'{where}.momentum: momentum applies to optimizer sgd only')
    weight_decay = _number(raw.get('weight_decay', 0.0), f'{where}.weight_decay')
    scheduler = raw.get('scheduler') or {}
    if scheduler:
        if not isinstance(scheduler, dict) or 'type' not in scheduler:
            raise VirbError(f'{where}.scheduler: a mapping with a type, one of '
                            f'{", ".join(SCHEDULER_KEYS)}')
        kind = scheduler['type']
        if kind not in SCHEDULER_KEYS:
            raise VirbError(f'{where}.scheduler.type: unknown scheduler {kind!r}; one of '
                            f'{", ".join(SCHEDULER_KEYS)}')
        allowed = SCHEDULER_KEYS[kind]
        for key, value in scheduler.items():
            if key == 'type':
                continue
            if key not in allowed:
                raise VirbError(f'{where}.scheduler.{key}: unknown key for {kind}; it takes '
                                f'{", ".join(allowed) or "no keys"}')
            _number(value, f'{where}.scheduler.{key}', positive=True)
        for key, required in allowed.items():
            if required and key not in scheduler:
                raise VirbError(f'{where}.scheduler: {kind} needs {key!r}')
        scheduler = dict(scheduler)
    return TrainingConfig(name, optimizer, lr, momentum, weight_decay, scheduler)


def build_optimizer(params, config):
    """``torch.optim.Adam`` / ``SGD`` (momentum, weight decay) of a ``TrainingConfig``."""
    params = [p for p in params if p.requires_grad]
    if config.optimizer == 'adam':
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


class SchedulerStepper:
    """Steps a config's scheduler at its unit: ``after_batch()`` after every optimizer step,
    ``after_epoch()`` after every epoch; only the matching one steps. ``never_step``: the
    original's behaviour (both do nothing, the LR stays at ``lr``)."""

    def __init__(self, scheduler, unit, never_step=False):
        self.scheduler, self.unit, self.never_step = scheduler, unit, never_step

    def _step(self, unit):
        if self.scheduler is not None and self.unit == unit and not self.never_step:
            self.scheduler.step()

    def after_batch(self):
        self._step('batch')

    def after_epoch(self):
        self._step('epoch')


def build_scheduler(optimizer, config, num_epochs, steps_per_epoch, never_step=False):
    """The ``SchedulerStepper`` of ``config.scheduler`` (module docstring for the formulas)."""
    spec = config.scheduler
    if not spec:
        return SchedulerStepper(None, None)
    kind = spec['type']
    if kind == 'StepLR':
        sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(spec['step_size']),
                                                gamma=float(spec.get('gamma', 0.1)))
        return SchedulerStepper(sched, 'epoch', never_step)
    if kind == 'OneCycle':
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, epochs=max(1, num_epochs), steps_per_epoch=1,
            pct_start=float(spec.get('pct_start', 0.3)), anneal_strategy='linear',
            cycle_momentum=config.optimizer == 'sgd' and config.momentum > 0)
        return SchedulerStepper(sched, 'epoch', never_step)
    total = max(1, num_epochs * steps_per_epoch)
    exponent = float(spec.get('exponent', 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: max(0.0, 1.0 - it / total) ** exponent)
    return SchedulerStepper(sched, 'batch', never_step)
