"""Writer ``mmseg``: a checkpoint for an MMSeg ResNet backbone, in the layout MMSeg's own
model converters (and SlotCon's ``convert_pretrain_to_mm.py``) write: the backbone's
parameter names WITHOUT a ``backbone.`` prefix (mmseg's ``ResNet`` with ``deep_stem=False``
has torchvision's names)::

    {'state_dict': {'conv1.weight': tensor, ..., 'layer4.1.bn2.bias': tensor},
     'meta': {'source_format', 'source_path', 'arch', 'converter': 'densessl',
              'dropped_keys': [...]}}

That is what a backbone's ``init_cfg=dict(type='CheckedPretrained' (or 'Pretrained'),
checkpoint=FILE)`` reads (mmseg_plugins.checked_pretrained checks every key) and what
``FrozenResNet(checkpoint=FILE)`` reads. Files written before this layout had every key
prefixed ``backbone.``: mmengine's unchecked ``Pretrained`` loaded nothing from them;
FrozenResNet still reads them (with a warning), ``CheckedPretrained`` refuses them.

Every conv / bn key of the arch is required; ``fc.*`` has no place in a backbone and is
dropped (listed in ``meta['dropped_keys']``).

A ViCE source (``--src-format vice``) also carries the DeepLabV3+ ASPP and decoder: they go
into the same ``state_dict`` under the ``decode_head.`` prefix as keys of mmseg's
``DepthwiseSeparableASPPHead`` (every key required except ``conv_seg``; see
``converters/deeplabv3plus_head.py`` for the mapping and what differs). The head loads with
``decode_head.init_cfg=dict(type='CheckedPretrained', checkpoint=FILE,
prefix='decode_head.', allow_missing=['conv_seg.'])``; the backbone's init leaves the
``decode_head.*`` keys aside (configs/mmseg/vice/deeplabv3plus_finetune_cityscapes.py).
"""
from converters import deeplabv3plus_head
from converters.canonical_resnet import backbone_shapes, is_fc
from converters.writers import WriterOutput, register_writer

PREFIX = ''  # backbone keys carry no prefix (init_cfg Pretrained reads them as they are)


@register_writer('mmseg')
def write_mmseg(ckpt):
    fc_keys = [k for k in ckpt.state_dict if is_fc(k)]
    state_dict = {PREFIX + k: v for k, v in ckpt.state_dict.items() if not is_fc(k)}
    expected = {PREFIX + k: shape for k, shape in backbone_shapes(ckpt.arch).items()}
    meta = ckpt.meta()
    notes = ([f'fc.* dropped ({len(fc_keys)} tensors): a backbone has no classifier']
             if fc_keys else [])
    dropped = list(fc_keys)
    for part, extra in ckpt.extras.items():
        if part != deeplabv3plus_head.EXTRA:
            dropped += [f'{part}/{k}' for k in extra]
            notes.append(f'{part}: no place in an mmseg checkpoint; dropped')
            continue
        head, head_expected, head_dropped, head_notes = deeplabv3plus_head.to_mmseg(
            extra, ckpt.arch, ckpt.source_path)
        state_dict.update(head)
        expected.update(head_expected)
        dropped += head_dropped
        notes += head_notes
    meta['dropped_keys'] = list(ckpt.dropped_keys) + dropped
    return WriterOutput({'state_dict': state_dict, 'meta': meta}, state_dict, expected,
                        dropped_keys=dropped, notes=notes)
