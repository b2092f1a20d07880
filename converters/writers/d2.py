"""Writer ``d2``: a detectron2 backbone checkpoint, the pickle detectron2's model zoo uses::

    {'model': {'stem.conv1.weight': numpy array, 'stem.conv1.norm.weight': ..., ...,
               'res5.2.conv3.norm.running_var': ...},
     '__author__': 'densessl', 'matching_heuristics': True}

detectron2's ``DetectionCheckpointer`` reads a file as this pickle only when its name ends
in ``.pkl`` (other names go to ``torch.load``), so the output must be ``*.pkl``; use it as
``MODEL.WEIGHTS``. ``matching_heuristics`` makes detectron2 match the names as suffixes of
its own (``backbone.bottom_up.res2.0.conv1.weight``).

Names (torchvision -> detectron2, ``ResNet`` of ``detectron2/modeling/backbone/resnet.py``)::

    conv1.weight                      -> stem.conv1.weight
    bn1.{weight,bias,running_mean,running_var} -> stem.conv1.norm.*
    layerL.i.convK.weight             -> res{L+1}.i.convK.weight        (K = 1, 2[, 3])
    layerL.i.bnK.*                    -> res{L+1}.i.convK.norm.*
    layerL.i.downsample.0.weight      -> res{L+1}.i.shortcut.weight
    layerL.i.downsample.1.*           -> res{L+1}.i.shortcut.norm.*

``fc.*`` is dropped (the backbone has no classifier), and so is every
``num_batches_tracked``: detectron2's ResNet norms are ``FrozenBatchNorm2d`` by default,
which has no such buffer (VISSL's ``convert_vissl_to_detectron2.py`` leaves them out too; a
``BN`` / ``SyncBN`` backbone starts that counter at 0, which changes nothing with a fixed
momentum). ``fc.*`` is listed as dropped; the counters are one note with their number.
Method-specific parts (``ckpt.extras``, e.g. ViCE's
DeepLabV3+ head) have no place here and are dropped and reported.

The target's key list, ``d2_resnet_shapes(arch)``, is built from detectron2's construction
rules, not by renaming torchvision's: ``BasicStem`` (7x7 conv, 64 channels);
per stage ``res2..res5`` blocks of ``BasicBlock`` (R18/34: ``conv1``, ``conv2``, 3x3) or
``BottleneckBlock`` (R50+: ``conv1`` 1x1, ``conv2`` 3x3, ``conv3`` 1x1, bottleneck width
64 * 2^stage, out width 4x that); a ``shortcut`` conv + norm where a block's in and out
channels differ; every conv has ``bias=False`` and a norm with ``weight``, ``bias``,
``running_mean``, ``running_var``. Shapes match torchvision's weights as they are
(detectron2's ``STRIDE_IN_1X1`` moves a stride, not a weight): use
``MODEL.RESNETS.STRIDE_IN_1X1 False``, ``INPUT.FORMAT RGB`` and torchvision's mean / std in
0-255 (``PIXEL_MEAN [123.675, 116.28, 103.53]``, ``PIXEL_STD [58.395, 57.12, 57.375]``), as
SlotCon's and MoCo's detection configs do.
"""
import functools
import pickle
import re

import torch

from densessl.atomic_io import atomic_write

from converters.canonical_resnet import STRUCTURES, check_arch, is_fc
from converters.writers import WriterOutput, register_writer

AUTHOR = 'densessl'
SUFFIX = '.pkl'
NORM_KEYS = ('weight', 'bias', 'running_mean', 'running_var')  # FrozenBatchNorm2d buffers
STEM_WIDTH = 64

_STEM = re.compile(r'^(conv1|bn1)\.(\w+)$')
_BLOCK = re.compile(r'^layer([1-4])\.(\d+)\.(conv|bn)([1-3])\.(\w+)$')
_SHORTCUT = re.compile(r'^layer([1-4])\.(\d+)\.downsample\.([01])\.(\w+)$')


@functools.lru_cache(maxsize=None)
def _d2_shapes(arch):
    kind, blocks = STRUCTURES[check_arch(arch)]
    shapes = {}

    def conv(name, out_ch, in_ch, kernel):
        shapes[f'{name}.weight'] = (out_ch, in_ch, kernel, kernel)
        shapes.update({f'{name}.norm.{key}': (out_ch,) for key in NORM_KEYS})

    conv('stem.conv1', STEM_WIDTH, 3, 7)
    in_ch = STEM_WIDTH
    for stage, num_blocks in enumerate(blocks):
        width = STEM_WIDTH * 2 ** stage
        out_ch = width if kind == 'basic' else 4 * width
        for index in range(num_blocks):
            block = f'res{stage + 2}.{index}'
            block_in = in_ch if index == 0 else out_ch
            if block_in != out_ch:  # module order of detectron2: shortcut first
                conv(f'{block}.shortcut', out_ch, block_in, 1)
            if kind == 'basic':
                conv(f'{block}.conv1', out_ch, block_in, 3)
                conv(f'{block}.conv2', out_ch, out_ch, 3)
            else:
                conv(f'{block}.conv1', width, block_in, 1)
                conv(f'{block}.conv2', width, width, 3)
                conv(f'{block}.conv3', out_ch, width, 1)
        in_ch = out_ch
    return tuple(shapes.items())


def d2_resnet_shapes(arch):
    """Every key of detectron2's ResNet backbone for ``arch`` -> shape (FrozenBN norms)."""
    return dict(_d2_shapes(arch))


def d2_name(key):
    """The detectron2 name of a torchvision ResNet key; None for what d2 has no place for
    (``fc.*``, ``num_batches_tracked``); other keys come back unchanged (and then fail the
    target's check as unexpected)."""
    if is_fc(key) or key.endswith('.num_batches_tracked'):
        return None
    m = _STEM.match(key)
    if m:
        return 'stem.conv1.weight' if m.group(1) == 'conv1' else f'stem.conv1.norm.{m.group(2)}'
    m = _BLOCK.match(key)
    if m:
        layer, index, kind, k, param = m.groups()
        norm = '.norm' if kind == 'bn' else ''
        return f'res{int(layer) + 1}.{index}.conv{k}{norm}.{param}'
    m = _SHORTCUT.match(key)
    if m:
        layer, index, part, param = m.groups()
        norm = '.norm' if part == '1' else ''
        return f'res{int(layer) + 1}.{index}.shortcut{norm}.{param}'
    return key


def save_d2_pickle(payload, path):
    """Pickle ``payload`` to ``path`` atomically (detectron2 reads it with pickle.load)."""
    atomic_write(path, lambda f: pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL),
                 'wb')


@register_writer('d2', required_suffix=SUFFIX)
def write_d2(ckpt):
    model, fc, counters, widened = {}, [], [], []
    for key, value in ckpt.state_dict.items():
        name = d2_name(key)
        if name is None:
            (fc if is_fc(key) else counters).append(key)
            continue
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16
            value = value.float()
            widened.append(key)
        model[name] = value.detach().cpu().numpy()
    notes = []
    if widened:
        notes.append(f'{len(widened)} bfloat16 tensors written as float32 (numpy has no '
                     f'bfloat16), e.g. {widened[0]}')
    if fc:
        notes.append(f'fc.* dropped ({len(fc)} tensors): a detectron2 backbone has no '
                     f'classifier')
    if counters:
        notes.append(f'num_batches_tracked dropped ({len(counters)} tensors): detectron2\'s '
                     f'ResNet norms (FrozenBatchNorm2d by default) have no such buffer '
                     f'(counters, not weights: noted here, not listed as dropped)')
    dropped = fc + ckpt.extra_keys()
    notes += [f'{part}: not part of a detectron2 ResNet; dropped ({len(extra)} tensors)'
              for part, extra in ckpt.extras.items()]
    notes.append('detectron2: MODEL.WEIGHTS=<this .pkl>; torchvision-style weights want '
                 'MODEL.RESNETS.STRIDE_IN_1X1 False, INPUT.FORMAT RGB and torchvision\'s '
                 'mean/std in 0-255')
    if STRUCTURES[ckpt.arch][0] == 'basic':
        notes.append(f'detectron2 builds {ckpt.arch} with MODEL.RESNETS.DEPTH '
                     f'{ckpt.arch[len("resnet"):]} and MODEL.RESNETS.RES2_OUT_CHANNELS 64')
    payload = {'model': model, '__author__': AUTHOR, 'matching_heuristics': True}
    return WriterOutput(payload, model, d2_resnet_shapes(ckpt.arch), dropped_keys=dropped,
                        notes=notes, save=save_d2_pickle)
