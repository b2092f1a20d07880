"""The canonical form every converter goes through: a torchvision-named ResNet state dict.

Keys as in ``torchvision.models.resnetXX().state_dict()``: ``conv1.weight``,
``bn1.{weight,bias,running_mean,running_var,num_batches_tracked}``,
``layer{1-4}.{i}.{conv,bn}{1,2,3}.*``, ``layer{1-4}.0.downsample.{0,1}.*`` and optionally
``fc.*``. Readers produce it, writers consume it; each side checks it against the full key
list of the architecture.
"""
import functools

import torch
import torchvision

ARCHS = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')
# blocks per stage, and whether blocks are Bottlenecks (conv3 present)
_LAYOUT = {'resnet18': ((2, 2, 2, 2), False), 'resnet34': ((3, 4, 6, 3), False),
           'resnet50': ((3, 4, 6, 3), True), 'resnet101': ((3, 4, 23, 3), True),
           'resnet152': ((3, 8, 36, 3), True)}


@functools.lru_cache(maxsize=None)
def expected_shapes(arch):
    """{key: shape} of the backbone (no ``fc``) of ``arch``, built on the meta device."""
    if arch not in ARCHS:
        raise ValueError(f'unknown architecture {arch!r}; one of {ARCHS}')
    with torch.device('meta'):
        net = getattr(torchvision.models, arch)(weights=None)
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith('fc.')}


def detect_arch(state_dict):
    """The ResNet whose block layout matches ``state_dict``'s keys, or None."""
    bottleneck = any(k.endswith('.conv3.weight') for k in state_dict)
    blocks = tuple(len({k.split('.')[1] for k in state_dict if k.startswith(f'layer{i}.')})
                   for i in range(1, 5))
    for arch, layout in _LAYOUT.items():
        if layout == (blocks, bottleneck):
            return arch
    return None


def verify(state_dict, arch):
    """(missing, unexpected, mismatched) keys of a backbone state dict (``fc.*`` ignored)."""
    expected = expected_shapes(arch)
    given = {k: tuple(v.shape) for k, v in state_dict.items() if not k.startswith('fc.')}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = sorted(f'{k}: {given[k]} != expected {expected[k]}'
                        for k in set(expected) & set(given) if given[k] != expected[k])
    return missing, unexpected, mismatched
