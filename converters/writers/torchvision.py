"""Writer ``torchvision``: a plain torchvision ResNet state dict (``torch.save`` of a dict
``{'conv1.weight': tensor, ...}``), loadable with ``torchvision.models.resnetNN().load_state_dict``.

Every conv / bn key of the arch is required. ``fc.*`` is written only when the source had
it (any number of classes); without it the file is backbone-only, which the report says:
load it after replacing ``model.fc`` with ``nn.Identity()``, so every key is still checked.
Method-specific parts (``ckpt.extras``, e.g. ViCE's ASPP + decoder) are dropped and reported.
"""
from converters.canonical_resnet import backbone_shapes, fc_patterns, is_fc
from converters.writers import WriterOutput, register_writer


@register_writer('torchvision')
def write_torchvision(ckpt):
    state_dict = dict(ckpt.state_dict)
    notes = []
    if not any(is_fc(k) for k in state_dict):
        notes.append('fc.* absent in the source: the output is backbone-only (set '
                     'model.fc = nn.Identity() before load_state_dict)')
    dropped = ckpt.extra_keys()
    notes += [f'{part}: not part of a torchvision ResNet; dropped ({len(extra)} tensors)'
              for part, extra in ckpt.extras.items()]
    return WriterOutput(state_dict, state_dict, backbone_shapes(ckpt.arch),
                        optional=fc_patterns(ckpt.arch), dropped_keys=dropped, notes=notes)
