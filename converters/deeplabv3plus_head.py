"""ViCE's DeepLabV3+ ASPP + decoder -> mmseg ``DepthwiseSeparableASPPHead`` (``decode_head.*``).

The canonical extra ``deeplabv3plus_head`` holds the trunk's non-ResNet tensors in the trunk's
own names (``densessl/vice/deeplabv3plus.py`` without ``_feature_blocks.``). With D the
decoder width, R the number of ASPP rates, C5 / C2 the layer4 / layer1 widths of the arch:

    ours                                          mmseg DepthwiseSeparableASPPHead
    aspp.branches.0.{conv,bn}                     aspp_modules.0.{conv,bn}
    aspp.branches.i.{depthwise,pointwise}_conv    aspp_modules.i.{depthwise,pointwise}_conv.conv
    aspp.branches.i.{depthwise,pointwise}_bn      aspp_modules.i.{depthwise,pointwise}_conv.bn
    aspp.image_pool.{conv,bn}                     image_pool.1.{conv,bn}
    aspp.fuse_conv / fuse_bn                      bottleneck.conv / bottleneck.bn   (input
                                                  channels reordered: ours concatenates
                                                  [branches, pool], mmseg [pool, branches])
    decoder.skip_conv / skip_bn                   c1_bottleneck.conv / .bn
    decoder.fuse.j.*                              sep_bottleneck.j.* (j = 0 reordered: ours
                                                  concatenates [skip 48, aspp D], mmseg
                                                  [aspp D, skip 48])
    decoder.projection (D -> 128, with bias)      none: dropped; mmseg's conv_seg (D -> classes)
                                                  is a new classifier, initialised by mmseg

Every tensor is carried over exactly, but three parts compute a different function in mmseg,
so fine-tuning starts near, not at, the pretrained decoder (``SEMANTIC_NOTES``).
"""
import re

import torch

from converters.canonical_resnet import STRUCTURES
from converters.errors import ConversionError

EXTRA = 'deeplabv3plus_head'
PREFIX = 'decode_head.'
SKIP_CHANNELS = 48
BN_STATS = ('weight', 'bias', 'running_mean', 'running_var')

RENAMES = (
    (r'^aspp\.branches\.0\.(conv|bn)\.', r'aspp_modules.0.\1.'),
    (r'^aspp\.branches\.(\d+)\.(depthwise|pointwise)_conv\.', r'aspp_modules.\1.\2_conv.conv.'),
    (r'^aspp\.branches\.(\d+)\.(depthwise|pointwise)_bn\.', r'aspp_modules.\1.\2_conv.bn.'),
    (r'^aspp\.image_pool\.(conv|bn)\.', r'image_pool.1.\1.'),
    (r'^aspp\.fuse_conv\.', 'bottleneck.conv.'),
    (r'^aspp\.fuse_bn\.', 'bottleneck.bn.'),
    (r'^decoder\.skip_conv\.', 'c1_bottleneck.conv.'),
    (r'^decoder\.skip_bn\.', 'c1_bottleneck.bn.'),
    (r'^decoder\.fuse\.(\d+)\.(depthwise|pointwise)_conv\.', r'sep_bottleneck.\1.\2_conv.conv.'),
    (r'^decoder\.fuse\.(\d+)\.(depthwise|pointwise)_bn\.', r'sep_bottleneck.\1.\2_conv.bn.'),
)
DROPPED = ('decoder.projection.weight', 'decoder.projection.bias')

SEMANTIC_NOTES = (
    'deeplabv3plus: ViCE\'s depthwise-separable convs are conv -> ReLU -> BN; mmseg\'s '
    'DepthwiseSeparableConvModule is conv -> BN -> ReLU (aspp_modules.1.., sep_bottleneck.0/1): '
    'weights copied as they are, the function differs',
    'deeplabv3plus: mmseg\'s bottleneck (ViCE\'s ASPP fuse conv) adds a ReLU after its BN; '
    'ViCE has none',
    'deeplabv3plus: decoder.projection (D -> 128-d embedding) has no counterpart and is '
    'dropped; decode_head.conv_seg (D -> num_classes) is not in the file and is initialised '
    'by mmseg (a new task classifier; load with load_from / init_cfg, which allow it missing)',
    'deeplabv3plus: concatenation orders differ; bottleneck.conv input channels and '
    'sep_bottleneck.0 channels were reordered to mmseg\'s order (exact)',
    'deeplabv3plus: the config must match the trunk (not stored in weights): backbone '
    'type=ResNet (torchvision stem; NOT ResNetV1c), style=pytorch, contract_dilation=False, '
    'OS 8: strides (1, 2, 1, 1) dilations (1, 1, 2, 4); head channels=D, dilations=ASPP rates, '
    'c1_in_channels=layer1 width, c1_channels=48, align_corners=True',
)
BASIC_BLOCK_NOTE = ('deeplabv3plus: ViCE dilates both 3x3 convs of a BasicBlock in layer3/4; '
                    'mmseg\'s BasicBlock dilates conv1 only, so layer3/4 features of a '
                    'depth-18/34 backbone differ (weights are the same)')


def widths(arch):
    """(C5, C2): layer4 and layer1 output channels of a torchvision ResNet."""
    return (512, 64) if STRUCTURES[arch][0] == 'basic' else (2048, 256)


def head_size(extra, path):
    """(D, R): decoder width and number of ASPP rates, read from the extra's tensors."""
    key = 'aspp.branches.0.conv.weight'
    if key not in extra:
        raise ConversionError(f'{path}: the DeepLabV3+ trunk has no {key} (found: '
                              f'{", ".join(sorted(extra)[:6])} ...); is it a ViCE '
                              f'deeplabv3plus trunk?')
    branches = {int(m.group(1)) for k in extra
                for m in [re.match(r'^aspp\.branches\.(\d+)\.', k)] if m}
    return extra[key].shape[0], max(branches) + 1


def _bn_shapes(prefix, n):
    shapes = {f'{prefix}.{s}': (n,) for s in BN_STATS}
    shapes[f'{prefix}.num_batches_tracked'] = ()
    return shapes


def _separable_shapes(prefix, c_in, c_out):
    return {f'{prefix}.depthwise_conv.conv.weight': (c_in, 1, 3, 3),
            **_bn_shapes(f'{prefix}.depthwise_conv.bn', c_in),
            f'{prefix}.pointwise_conv.conv.weight': (c_out, c_in, 1, 1),
            **_bn_shapes(f'{prefix}.pointwise_conv.bn', c_out)}


def mmseg_head_shapes(arch, channels, num_rates):
    """Every key of ``DepthwiseSeparableASPPHead`` except ``conv_seg`` -> shape (no prefix),
    for ``in_channels``=C5, ``c1_in_channels``=C2, ``c1_channels``=48, R rates (first 1)."""
    c5, c2 = widths(arch)
    d = channels
    shapes = {'image_pool.1.conv.weight': (d, c5, 1, 1), **_bn_shapes('image_pool.1.bn', d),
              'aspp_modules.0.conv.weight': (d, c5, 1, 1), **_bn_shapes('aspp_modules.0.bn', d)}
    for i in range(1, num_rates):
        shapes.update(_separable_shapes(f'aspp_modules.{i}', c5, d))
    shapes.update({'bottleneck.conv.weight': (d, (num_rates + 1) * d, 3, 3),
                   **_bn_shapes('bottleneck.bn', d),
                   'c1_bottleneck.conv.weight': (SKIP_CHANNELS, c2, 1, 1),
                   **_bn_shapes('c1_bottleneck.bn', SKIP_CHANNELS),
                   **_separable_shapes('sep_bottleneck.0', d + SKIP_CHANNELS, d),
                   **_separable_shapes('sep_bottleneck.1', d, d)})
    return shapes


def _rename(key):
    for pattern, replacement in RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return key  # no rule: stays as it is and shows up as an unexpected key


def _move_last_block_first(tensor, dim, size):
    """[a, b] -> [b, a] along ``dim``, where b is the last ``size`` channels."""
    return torch.cat([tensor.narrow(dim, tensor.shape[dim] - size, size),
                      tensor.narrow(dim, 0, tensor.shape[dim] - size)], dim)


def _reorder(name, tensor, channels):
    """Channel reorders between ViCE's and mmseg's concatenation orders."""
    if name == 'bottleneck.conv.weight':  # [branches..., pool] -> [pool, branches...]
        return _move_last_block_first(tensor, 1, channels)
    if name == 'sep_bottleneck.0.depthwise_conv.conv.weight' or (
            name.startswith('sep_bottleneck.0.depthwise_conv.bn.')
            and name.rsplit('.', 1)[1] in BN_STATS):  # [skip, aspp] -> [aspp, skip]
        return _move_last_block_first(tensor, 0, channels)
    if name == 'sep_bottleneck.0.pointwise_conv.conv.weight':
        return _move_last_block_first(tensor, 1, channels)
    return tensor


def to_mmseg(extra, arch, path):
    """Map the extra to ``decode_head.*``. Returns (state_dict, expected shapes, dropped keys,
    notes); tensors without a rule keep their name and fail the writer's check."""
    channels, num_rates = head_size(extra, path)
    shapes = mmseg_head_shapes(arch, channels, num_rates)
    state_dict = {}
    for key, tensor in extra.items():
        if key in DROPPED:
            continue
        name = _rename(key)
        if tuple(tensor.shape) == shapes.get(name):  # a mismatch is reported as it is
            tensor = _reorder(name, tensor, channels)
        state_dict[PREFIX + name] = tensor
    expected = {PREFIX + k: s for k, s in shapes.items()}
    dropped = [f'{EXTRA}/{k}' for k in DROPPED if k in extra]
    notes = list(SEMANTIC_NOTES)
    if STRUCTURES[arch][0] == 'basic':
        notes.append(BASIC_BLOCK_NOTE)
    notes.append(f'deeplabv3plus: head D={channels}, {num_rates} ASPP rates')
    return state_dict, expected, dropped, notes
