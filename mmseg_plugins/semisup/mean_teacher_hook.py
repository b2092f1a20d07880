"""``MeanTeacherHook``: after every optimiser step, the teacher's parameters move towards
the student's with ReCo's / U2PL's momentum ``min(1 - 1/(t+1), 0.99)``; its BatchNorm
buffers stay its own (``densessl.semisup.mean_teacher``; mmengine's EMA hook copies buffers
and has no such warm-up). ``t`` comes from the runner's iteration counter, which mmengine
checkpoints, so a resumed run continues the schedule::

    custom_hooks = [dict(type='MeanTeacherHook', max_momentum=0.99)]

The model must have ``student`` and ``teacher`` (``SemiSupervisedSegmentor``). ``t`` counts
from the model's ``first_semi_iteration`` (U2PL: its ``u2pl.sup_only_iters``; 0 otherwise),
so the supervised-only warm-up is set in one place; ``first_semi_iteration=N`` given here
must agree with the model's.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from densessl.semisup.mean_teacher import ema_update_parameters_, mean_teacher_momentum


@HOOKS.register_module()
class MeanTeacherHook(Hook):
    """Parameters-only EMA of the student into the teacher (module docstring)."""

    priority = 'ABOVE_NORMAL'  # before checkpointing, after the optimiser step

    def __init__(self, first_semi_iteration=None, max_momentum=0.99):
        self.first_semi_iteration = first_semi_iteration  # None: the model's
        self.max_momentum = max_momentum

    def before_train(self, runner):
        model = self._model(runner)
        for name in ('student', 'teacher'):
            if not hasattr(model, name):
                raise AttributeError(f'MeanTeacherHook: the model ({type(model).__name__}) has '
                                     f'no {name!r}; use SemiSupervisedSegmentor')
        own = getattr(model, 'first_semi_iteration', None)
        if None not in (own, self.first_semi_iteration) and own != self.first_semi_iteration:
            raise ValueError(f'MeanTeacherHook: first_semi_iteration={self.first_semi_iteration}'
                             f' but the model starts its semi-supervised steps at {own} '
                             f'(u2pl.sup_only_iters); leave the hook\'s unset')

    def _first_semi_iteration(self, model):
        if self.first_semi_iteration is not None:
            return self.first_semi_iteration
        return getattr(model, 'first_semi_iteration', 0)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = self._model(runner)
        step = runner.iter - self._first_semi_iteration(model)  # runner.iter: this iteration
        if step < 0:
            return
        momentum = mean_teacher_momentum(step, self.max_momentum)
        ema_update_parameters_(model.teacher, model.student, momentum)
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model
