"""The mean teacher of ReCo and U2PL: momentum schedule and parameter-only EMA.
Spec: shared/specs/semisup.md 1(a) "EMA teacher", 2(a) "EMA teacher", 3.3 and 4.3.

Both originals update the teacher after every optimiser step of the semi-supervised phase:

    m_t = min(1 - 1 / (t + 1), m_max)          m_max = 0.99
    theta_teacher <- m_t theta_teacher + (1 - m_t) theta_student     (parameters only)

``t`` counts the EMA updates already done: 0 at the first semi-supervised iteration, so
``m_0 = 0`` and the first update copies the student; ``m_1 = 0.5``, ``m_2 = 2/3``, ...,
``m_t = 0.99`` from ``t = 99`` on. ReCo keeps ``t`` in its EMA object (starting at 0,
incremented after each update; there is no supervised-only phase). U2PL computes it from the
global iteration ``i`` as ``t = i - sup_only_epoch * iters_per_epoch``. Here the caller passes
``t = iteration - first_semi_iteration`` taken from the runner's iteration counter (mmengine
restores it on resume), so the momentum after a resume is the one the uninterrupted run
would have used; a counter kept inside a hook or model that is not checkpointed would restart
at 0 and copy the student again.

**Buffers.** Only parameters are averaged. The teacher's BatchNorm running statistics are its
own: they are updated by the teacher's train-mode forward passes (ReCo's pseudo-labelling,
U2PL's entropy / feature pass). mmengine's ``ExponentialMovingAverage`` with
``update_buffers=False`` instead *copies* the student's buffers into the average every step,
so its BN statistics are the student's: not what either original does. (mmdet's
``MeanTeacherHook(skip_buffer=True)`` matches, with the opposite naming:
its ``momentum`` is the student weight ``1 - m_t``.)
"""
import torch


def mean_teacher_momentum(step, max_momentum=0.99):
    """``m_t = min(1 - 1/(t + 1), max_momentum)`` for the ``t``-th EMA update (``t`` >= 0
    counts from the first semi-supervised iteration; module docstring). The weight of the
    teacher: ``m_0 = 0`` copies the student."""
    if step < 0:
        raise ValueError(f'mean_teacher_momentum: step {step} < 0 (steps count from the first '
                         'semi-supervised iteration)')
    if not 0.0 <= max_momentum <= 1.0:
        raise ValueError(f'mean_teacher_momentum: max_momentum {max_momentum} not in [0, 1]')
    return min(1.0 - 1.0 / (step + 1), max_momentum)


@torch.no_grad()
def ema_update_parameters_(teacher, student, momentum):
    """``t <- momentum t + (1 - momentum) s`` for every parameter, matched by name; buffers
    are left alone (module docstring). Teacher and student must have the same parameter names
    and shapes (KeyError / ValueError naming them). ``momentum == 0`` copies the student
    exactly. One fused (``torch._foreach``) update per call."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f'ema_update_parameters_: momentum {momentum} not in [0, 1]')
    mine = dict(teacher.named_parameters())
    theirs = dict(student.named_parameters())
    if mine.keys() != theirs.keys():
        raise KeyError('ema_update_parameters_: teacher and student parameters differ; only '
                       f'in the teacher: {sorted(mine.keys() - theirs.keys())}, only in the '
                       f'student: {sorted(theirs.keys() - mine.keys())}')
    names = list(mine)
    for name in names:
        if mine[name].shape != theirs[name].shape:
            raise ValueError(f'ema_update_parameters_: {name} is {tuple(mine[name].shape)} in '
                             f'the teacher and {tuple(theirs[name].shape)} in the student')
    targets = [mine[name] for name in names]
    sources = [theirs[name].detach() for name in names]
    if not targets:
        return
    if momentum == 0.0:
        torch._foreach_copy_(targets, sources)
    elif momentum != 1.0:
        torch._foreach_mul_(targets, momentum)
        torch._foreach_add_(targets, sources, alpha=1.0 - momentum)
