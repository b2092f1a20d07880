"""LARS (You et al. 2017) in the Barlow Twins form that SlotCon pretrains with.

Spec: shared/specs/pretrain.md 2(a) "Optimization". For every parameter w with gradient g,
in a param group with learning rate lr, weight decay wd, momentum mu and coefficient eta::

    if w.ndim > 1:   u = g + wd * w                                  (weight decay)
                     q = eta * ||w|| / ||u||   if ||w|| > 0 and ||u|| > 0, else 1
                     u = q * u                                       (trust ratio)
    else:            u = g                        (biases, BN weights: neither of the two)
    m <- mu * m + u                               (momentum buffer, starts at 0)
    w <- w - lr * m

Norms are L2 over the whole tensor. The 1-D rule is the optimiser's own (SlotCon's), so it
holds whatever weight decay a framework puts in the param groups. Defaults are SlotCon's:
momentum 0.9, eta 0.001; SlotCon sets lr = 1.0 x total_batch / 256 and wd = 1e-5.

Differences from SGD worth knowing: weight decay enters before the trust ratio, so it is
rescaled with the gradient; the momentum buffer holds rescaled updates (no dampening, no
Nesterov).
"""
import torch


class LARS(torch.optim.Optimizer):
    """See the module docstring. ``params``: an iterable of tensors or of param-group dicts
    (each may override ``lr``, ``weight_decay``, ``momentum``, ``eta``)."""

    def __init__(self, params, lr=0.0, weight_decay=0.0, momentum=0.9, eta=0.001):
        for name, value, low in (('lr', lr, 0.0), ('weight_decay', weight_decay, 0.0),
                                 ('eta', eta, 0.0)):
            if value < low:
                raise ValueError(f'LARS {name} must be >= {low}, got {value}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'LARS momentum must be in [0, 1), got {momentum}')
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim != 1:
                    update = update.add(p, alpha=group['weight_decay'])
                    param_norm = torch.linalg.vector_norm(p)
                    update_norm = torch.linalg.vector_norm(update)
                    one = torch.ones_like(param_norm)
                    trust = torch.where((param_norm > 0) & (update_norm > 0),
                                        group['eta'] * param_norm / update_norm, one)
                    update = update.mul(trust)
                state = self.state[p]
                if 'momentum_buffer' not in state:
                    state['momentum_buffer'] = torch.zeros_like(p)
                buffer = state['momentum_buffer']
                buffer.mul_(group['momentum']).add_(update)
                p.add_(buffer, alpha=-group['lr'])
        return loss
