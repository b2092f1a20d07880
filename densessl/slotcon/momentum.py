"""SlotCon's teacher: an exponential moving average of the student's weights.

Spec: shared/specs/pretrain.md 2(a) "Teacher EMA" and section 6 item 7. At step k of
K_total (k counts every training forward from 0):

    m_k = 1 - (1 - m_0) (cos(pi k / K_total) + 1) / 2        m_0 = 0.99: m rises 0.99 -> 1
    theta_teacher <- m_k theta_teacher + (1 - m_k) theta_student

over the parameters of encoder, projector and grouping (prototypes), matched by name. The
teacher's buffers (BatchNorm running statistics) are not copied: they come from the teacher's
own forward passes. The original updates at the start of each forward, before the teacher
runs, with k then incremented.
"""
import math

import torch


def teacher_momentum(step, total_steps, base=0.99):
    """m_k for 0 <= step <= total_steps (float); see the module docstring."""
    if total_steps <= 0:
        raise ValueError(f'teacher_momentum: total_steps must be > 0, got {total_steps}')
    if not 0 <= step <= total_steps:
        raise ValueError(f'teacher_momentum: step {step} is outside [0, {total_steps}] '
                         '(is total_steps iterations per epoch x epochs?)')
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / total_steps) + 1.0) / 2.0


@torch.no_grad()
def ema_update_(teacher, student, momentum):
    """teacher.p <- momentum * teacher.p + (1 - momentum) * student.p for every parameter of
    the teacher, found in the student under the same name (the student may have more, e.g. its
    predictor). Raises KeyError naming the teacher parameters the student lacks, ValueError on
    a shape mismatch; buffers are left alone. One fused (foreach) update for all parameters."""
    student_params = dict(student.named_parameters())
    names = [name for name, _ in teacher.named_parameters()]
    missing = [name for name in names if name not in student_params]
    if missing:
        raise KeyError(f'ema_update_: teacher parameters missing in the student: {missing}')
    teacher_params = [param for _, param in teacher.named_parameters()]
    sources = [student_params[name].detach() for name in names]
    for name, mine, theirs in zip(names, teacher_params, sources):
        if mine.shape != theirs.shape:
            raise ValueError(f'ema_update_: {name} is {tuple(mine.shape)} in the teacher and '
                             f'{tuple(theirs.shape)} in the student')
    if teacher_params:
        torch._foreach_mul_(teacher_params, momentum)
        torch._foreach_add_(teacher_params, sources, alpha=1.0 - momentum)
