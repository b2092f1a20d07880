"""``MeanTeacherHook``: after every optimiser step, the teacher's parameters move towards
the student's with ReCo's / U2PL's momentum ``min(1 - 1/(t+1), 0.99)``; its BatchNorm
buffers stay its own (``densessl.semisup.mean_teacher``; mmengine's EMA hook copies buffers
and has no such warm-up). ``t`` comes from the runner's iteration counter, which mmengine
checkpoints, so a resumed run continues the schedule::

    custom_hooks = [dict(type='MeanTeacherHook', first_semi_iteration=0, max_momentum=0.99)]

The model must have ``student`` and ``teacher`` (``SemiSupervisedSegmentor``).
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from densessl.semisup.mean_teacher import ema_update_parameters_, mean_teacher_momentum


@HOOKS.register_module()
class MeanTeacherHook(Hook):
    """Parameters-only EMA of the student into the teacher (module docstring)."""

    priority = 'ABOVE_NORMAL'  # before checkpointing, after the optimiser step

    def __init__(self, first_semi_iteration=0, max_momentum=0.99):
        self.first_semi_iteration = first_semi_iteration
        self.max_momentum = max_momentum

    def before_train(self, runner):
        model = self._model(runner)
        for name in ('student', 'teacher'):
            if not hasattr(model, name):
                raise AttributeError(f'MeanTeacherHook: the model ({type(model).__name__}) has '
                                     f'no {name!r}; use SemiSupervisedSegmentor')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        step = runner.iter - self.first_semi_iteration  # runner.iter: this iteration's index
        if step < 0:
            return
        model = self._model(runner)
        momentum = mean_teacher_momentum(step, self.max_momentum)
        ema_update_parameters_(model.teacher, model.student, momentum)
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model
