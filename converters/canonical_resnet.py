"""The canonical form's key lists: torchvision ResNet state dicts, arch detection, checks.

The canonical form of a ResNet is torchvision's state dict naming::

    conv1.weight                                   (64, 3, 7, 7)
    bn1.{weight,bias,running_mean,running_var}     (64,)
    bn1.num_batches_tracked                        ()
    layer{1..4}.{i}.conv{1,2[,3]}.weight, .bn{1,2[,3]}.*
    layer{1..4}.0.downsample.0.weight, .downsample.1.*   (where the block changes shape)
    fc.weight (num_classes, C), fc.bias (num_classes,)   optional

Shapes come from torchvision's own models built once on the meta device (no memory, ~ms).
A *shape pattern* is a tuple whose ``None`` entries match any size (used for ``fc``, whose
number of classes depends on the source).
"""
import functools
import re

import torch
import torchvision

ARCHS = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')

# block type and blocks per layer, as torchvision builds them
STRUCTURES = {
    'resnet18': ('basic', (2, 2, 2, 2)),
    'resnet34': ('basic', (3, 4, 6, 3)),
    'resnet50': ('bottleneck', (3, 4, 6, 3)),
    'resnet101': ('bottleneck', (3, 4, 23, 3)),
    'resnet152': ('bottleneck', (3, 8, 36, 3)),
}

FC_PREFIX = 'fc.'


def is_fc(key):
    """True for the classifier keys ``fc.weight`` / ``fc.bias`` (not part of a backbone)."""
    return key.startswith(FC_PREFIX)


def check_arch(arch):
    if arch not in STRUCTURES:
        raise ValueError(f'unknown arch {arch!r}; one of {", ".join(ARCHS)}')
    return arch


@functools.lru_cache(maxsize=None)
def _shapes(arch):
    with torch.device('meta'):
        model = getattr(torchvision.models, check_arch(arch))(weights=None)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def expected_shapes(arch):
    """Every key of torchvision's ``arch`` state dict -> shape, in torchvision's order."""
    return dict(_shapes(arch))


def backbone_shapes(arch):
    """``expected_shapes`` without ``fc.*``: every conv / bn key of the arch."""
    return {k: s for k, s in _shapes(arch) if not is_fc(k)}


def fc_patterns(arch):
    """``fc.*`` shape patterns: any number of classes, the arch's feature width."""
    width = dict(_shapes(arch))['fc.weight'][1]
    return {'fc.weight': (None, width), 'fc.bias': (None,)}


def shape_matches(shape, pattern):
    return len(shape) == len(pattern) and all(p is None or p == s
                                              for s, p in zip(shape, pattern))


def _fmt(shape):
    return '(' + ', '.join('*' if s is None else str(s) for s in shape) + ')'


def compare(state_dict, expected, optional=None):
    """Compare a state dict with a full key list.

    ``expected``: key -> shape pattern, every key required; ``optional``: key -> pattern,
    allowed but not required. Returns ``{'matched': [keys], 'missing': [keys],
    'unexpected': [keys], 'mismatched': [{'key', 'shape', 'expected'}]}``; ``missing`` in
    the order of ``expected``, the others in the order of ``state_dict``.
    """
    optional = optional or {}
    allowed = {**expected, **optional}
    result = {'matched': [], 'missing': [k for k in expected if k not in state_dict],
              'unexpected': [], 'mismatched': []}
    for key, value in state_dict.items():
        if key not in allowed:
            result['unexpected'].append(key)
            continue
        shape = tuple(value.shape)
        if shape_matches(shape, allowed[key]):
            result['matched'].append(key)
        else:
            result['mismatched'].append({'key': key, 'shape': _fmt(shape),
                                         'expected': _fmt(allowed[key])})
    return result


def verify(state_dict, arch):
    """Check a canonical state dict against ``arch``: every conv/bn key required, fc optional.

    Returns ``compare``'s dict (``matched``, ``missing``, ``unexpected``, ``mismatched``).
    """
    return compare(state_dict, backbone_shapes(arch), fc_patterns(arch))


_BLOCK_KEY = re.compile(r'^layer([1-4])\.(\d+)\.(conv[1-3])\.weight$')


def describe_structure(state_dict):
    """What the keys look like, e.g. ``'basic blocks 2-2-2-2'`` (for reports)."""
    counts, convs = [0, 0, 0, 0], set()
    for key in state_dict:
        m = _BLOCK_KEY.match(key)
        if m:
            layer, index = int(m.group(1)), int(m.group(2))
            counts[layer - 1] = max(counts[layer - 1], index + 1)
            convs.add(m.group(3))
    if not convs:
        return 'no ResNet blocks (no layerN.M.convK.weight keys)'
    kind = 'bottleneck' if 'conv3' in convs else 'basic'
    return f'{kind} blocks ' + '-'.join(str(c) for c in counts)


def detect_arch(state_dict):
    """The arch whose key list fits ``state_dict`` best.

    Returns ``(arch, exact)``: ``exact`` is True when every key and shape matches (fc
    optional); otherwise ``arch`` is the closest one (fewest missing + unexpected +
    mismatched keys) and the differences are for the caller to report. Returns
    ``(None, False)`` when no key matches any ResNet.
    """
    best, best_cost = None, None
    for arch in ARCHS:
        diff = verify(state_dict, arch)
        cost = len(diff['missing']) + len(diff['unexpected']) + len(diff['mismatched'])
        if diff['matched'] and (best_cost is None or cost < best_cost):
            best, best_cost = arch, cost
    return best, best_cost == 0
