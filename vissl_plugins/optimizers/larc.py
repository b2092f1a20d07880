"""LARC (You et al. 2017, "Large Batch Training of Convolutional Networks") without apex.

VISSL and classy_vision import LARC from NVIDIA apex, which is not installable here (the
PyPI package named ``apex`` is an unrelated web toolkit). This is the same algorithm in
plain PyTorch. For every parameter ``w`` with gradient ``g`` and weight decay ``wd``::

    local_lr = trust_coefficient * ||w|| / (||g|| + wd * ||w|| + eps)
    clip=False (scaling):  g <- (g + wd * w) * local_lr
    clip=True  (clipping): g <- (g + wd * w) * min(local_lr / lr, 1)

then the wrapped optimizer steps with its weight decay switched off (LARC applied it).
Parameters with ||w|| = 0 or ||g|| = 0 keep their gradient unchanged (as in apex).
"""
import torch
from classy_vision.optim import SGD, register_optimizer


class LARC:
    """Wraps a torch optimizer; ``step`` rescales gradients per parameter, then steps."""

    def __init__(self, optimizer, trust_coefficient=0.02, clip=True, eps=1e-8):
        self.optim = optimizer
        self.trust_coefficient = trust_coefficient
        self.clip = clip
        self.eps = eps

    # the wrapped optimizer's interface, as apex's LARC exposes it
    param_groups = property(lambda self: self.optim.param_groups)
    state = property(lambda self: self.optim.state)
    defaults = property(lambda self: self.optim.defaults)

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        return f'LARC(trust_coefficient={self.trust_coefficient}, clip={self.clip}, ' \
               f'eps={self.eps}, optimizer={self.optim!r})'

    def state_dict(self):
        return self.optim.state_dict()

    def load_state_dict(self, state_dict):
        self.optim.load_state_dict(state_dict)

    def zero_grad(self, set_to_none=True):
        self.optim.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group):
        self.optim.add_param_group(param_group)

    @torch.no_grad()
    def _rescale_gradients(self):
        weight_decays = []
        for group in self.optim.param_groups:
            weight_decay = group.get('weight_decay', 0.0)
            weight_decays.append(weight_decay)
            group['weight_decay'] = 0.0
            for p in group['params']:
                if p.grad is None:
                    continue
                param_norm = torch.linalg.vector_norm(p)
                grad_norm = torch.linalg.vector_norm(p.grad)
                if param_norm == 0 or grad_norm == 0:
                    continue
                local_lr = self.trust_coefficient * param_norm / (
                    grad_norm + param_norm * weight_decay + self.eps)
                if self.clip:
                    local_lr = torch.clamp(local_lr / group['lr'], max=1.0)
                p.grad.add_(p, alpha=weight_decay).mul_(local_lr)
        return weight_decays

    def step(self, closure=None):
        weight_decays = self._rescale_gradients()
        try:
            return self.optim.step(closure)
        finally:
            for group, weight_decay in zip(self.optim.param_groups, weight_decays):
                group['weight_decay'] = weight_decay


@register_optimizer('sgd_larc')
class SGDWithLARC(SGD):
    """classy_vision's SGD whose ``use_larc`` uses :class:`LARC` above instead of apex."""

    def prepare(self, param_groups):
        self.optimizer = torch.optim.SGD(param_groups, lr=self._lr, nesterov=self._nesterov,
                                         momentum=self._momentum,
                                         weight_decay=self._weight_decay)
        if self._use_larc:
            self.optimizer = LARC(self.optimizer, **self._larc_config)
