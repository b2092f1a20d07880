"""Writer ``mmseg``: a checkpoint for an MMSeg ResNet backbone (``mmseg_plugins``'
``FrozenResNet``, or ``load_from`` / ``init_cfg=dict(type='Pretrained')`` of mmseg's ResNet,
whose parameter names are torchvision's)::

    {'state_dict': {'backbone.conv1.weight': tensor, ..., 'backbone.layer4.1.bn2.bias': ...},
     'meta': {'source_format', 'source_path', 'arch', 'converter': 'densessl',
              'dropped_keys': [...]}}

Every conv / bn key of the arch is required; ``fc.*`` has no place in a backbone and is
dropped (listed in ``meta['dropped_keys']``).
"""
from converters.canonical_resnet import backbone_shapes, is_fc
from converters.writers import WriterOutput, register_writer

PREFIX = 'backbone.'


@register_writer('mmseg')
def write_mmseg(ckpt):
    fc_keys = [k for k in ckpt.state_dict if is_fc(k)]
    state_dict = {PREFIX + k: v for k, v in ckpt.state_dict.items() if not is_fc(k)}
    expected = {PREFIX + k: shape for k, shape in backbone_shapes(ckpt.arch).items()}
    meta = ckpt.meta()
    meta['dropped_keys'] += fc_keys
    notes = ([f'fc.* dropped ({len(fc_keys)} tensors): a backbone has no classifier']
             if fc_keys else [])
    return WriterOutput({'state_dict': state_dict, 'meta': meta}, state_dict, expected,
                        dropped_keys=fc_keys, notes=notes)
