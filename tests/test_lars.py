"""densessl's LARS (SlotCon / Barlow Twins style) against a per-parameter reference written
from the spec, directly and as VISSL's ``slotcon_lars`` optimizer."""
import copy
import math

import pytest
import torch
import torch.nn as nn

from densessl.optim import LARS


def reference_lars_steps(params, grads_per_step, lr, weight_decay, momentum, eta):
    """Plain-Python LARS: lists of floats, one parameter at a time (spec 2(a))."""
    weights = [p.detach().flatten().tolist() for p in params]
    ndims = [p.ndim for p in params]
    buffers = [[0.0] * len(w) for w in weights]
    for grads in grads_per_step:
        for i, (w, g) in enumerate(zip(weights, grads)):
            g = g.flatten().tolist()
            if ndims[i] == 1:
                u = g
            else:
                u = [gj + weight_decay * wj for gj, wj in zip(g, w)]
                w_norm = math.sqrt(sum(x * x for x in w))
                u_norm = math.sqrt(sum(x * x for x in u))
                q = eta * w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
                u = [q * x for x in u]
            buffers[i] = [momentum * b + x for b, x in zip(buffers[i], u)]
            weights[i] = [wj - lr * b for wj, b in zip(w, buffers[i])]
    return [torch.tensor(w, dtype=torch.float64).view_as(p) for w, p in zip(weights, params)]


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g, dtype=torch.float64),      # weight: wd + trust
            torch.randn(5, generator=g, dtype=torch.float64),         # bias / BN: neither
            torch.zeros(2, 2, dtype=torch.float64),                   # ||w|| = 0: trust 1
            torch.randn(3, 2, 1, 1, generator=g, dtype=torch.float64)]  # conv weight


def _grads(params, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    grads = [[torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
             for _ in range(steps)]
    grads[1][3] = torch.zeros_like(params[3])  # ||u|| = ||wd * w|| only
    return grads


def test_three_steps_match_the_per_parameter_reference():
    params = [nn.Parameter(p.clone()) for p in _params()]
    grads = _grads(params, 3)
    expected = reference_lars_steps(params, grads, lr=0.5, weight_decay=1e-2, momentum=0.9,
                                    eta=0.001)
    optimizer = LARS(params, lr=0.5, weight_decay=1e-2, momentum=0.9, eta=0.001)
    for step_grads in grads:
        for p, grad in zip(params, step_grads):
            p.grad = grad.clone()
        optimizer.step()
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-12)
    # the rule is by shape: the 1-D parameter moved by plain momentum SGD on its gradient
    plain = _params()[1] - 0.5 * (grads[0][1] * (1 + 0.9 + 0.81) + grads[1][1] * 1.9 + grads[2][1])
    torch.testing.assert_close(params[1].detach(), plain)


def test_zero_weight_and_zero_update_get_trust_one():
    w = nn.Parameter(torch.zeros(3, 3))
    w.grad = torch.ones(3, 3)
    LARS([w], lr=1.0, weight_decay=0.1, momentum=0.0, eta=0.001).step()
    torch.testing.assert_close(w.detach(), -torch.ones(3, 3))  # q = 1, not eta * 0 / 3


@pytest.mark.parametrize('kwargs,message', [({'lr': -1.0}, 'lr'), ({'momentum': 1.0}, 'momentum'),
                                            ({'eta': -0.1}, 'eta')])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LARS([nn.Parameter(torch.zeros(2, 2))], **kwargs)


def _vissl_optimizer(name, model, weight_decay, **options):
    import vissl_plugins  # noqa: F401  (registers slotcon_lars)
    from classy_vision.optim import build_optimizer
    from classy_vision.optim.param_scheduler import build_param_scheduler
    from vissl.config import AttrDict
    from vissl.optimizers import get_optimizer_param_groups
    config = AttrDict({'name': name, 'momentum': 0.9, 'weight_decay': weight_decay,
                       'num_epochs': 1, 'regularize_bn': options.pop('regularize_bn', True),
                       'regularize_bias': options.pop('regularize_bias', True),
                       'construct_single_param_group_only': False,
                       'non_regularized_parameters': [],
                       'head_optimizer_params': {'use_different_lr': False,
                                                 'weight_decay': weight_decay}, **options})
    optimizer = build_optimizer(config)
    constant = {'name': 'constant', 'value': 0.3, 'update_interval': 'step'}
    schedulers = {'lr': build_param_scheduler(constant), 'lr_head': build_param_scheduler(constant)}
    groups = get_optimizer_param_groups(model, AttrDict({'NON_TRAINABLE_PARAMS': []}), config,
                                        schedulers)
    optimizer.set_param_groups(groups)
    return optimizer


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.GroupNorm(2, 4),
                         nn.Conv2d(4, 2, 1, bias=False))


def _train_three_steps(model, optimizer):
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        optimizer.step(where=0.5)


def test_vissl_slotcon_lars_is_the_reference_with_vissl_param_groups():
    """VISSL's param groups with regularize_bn/regularize_bias True give every parameter the
    weight decay; slotcon_lars still exempts all 1-D ones, GroupNorm's included."""
    model = _model()
    params = [p.detach().double() for p in model.parameters()]
    g = torch.Generator().manual_seed(3)
    grads = [[torch.randn(p.shape, generator=g).double() for p in params] for _ in range(3)]
    expected = reference_lars_steps(params, grads, lr=0.3, weight_decay=0.05, momentum=0.9,
                                    eta=0.001)
    _train_three_steps(model, _vissl_optimizer('slotcon_lars', model, 0.05))
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach().double(), e, rtol=1e-5, atol=1e-6)


def test_vissl_own_lars_differs_on_groupnorm_parameters():
    """Why slotcon_lars exists: VISSL's ``lars`` (exclude_bias_and_norm, no bias/BN decay)
    agrees on Conv and BatchNorm parameters but decays GroupNorm's 1-D parameters."""
    ours, theirs = _model(), _model()
    _train_three_steps(ours, _vissl_optimizer('slotcon_lars', ours, 0.05))
    _train_three_steps(theirs, _vissl_optimizer('lars', theirs, 0.05, exclude_bias_and_norm=True,
                                                regularize_bn=False, regularize_bias=False))
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        if name.startswith('2.'):  # GroupNorm
            assert not torch.allclose(p, named[name]), name
        else:
            torch.testing.assert_close(p, named[name])
