"""Writer ``virb``: the encoder weight file of the original ViRB (allenai/ViRB), a flat state
dict whose keys are torchvision ResNet names prefixed ``model.``::

    {'model.conv1.weight': tensor, 'model.bn1.weight': tensor, ...,
     'model.layer4.2.bn3.running_var': tensor[, 'model.fc.weight', 'model.fc.bias']}

That is what ViRB's ``ResNet50Encoder`` (``self.model`` = a torchvision ResNet) and its
``scripts/*_to_virb.py`` produce and what an experiment list names
(``SWAV_800: pretrained_weights/SWAV_800.pt``); densessl's ``virb`` package reads it with
every key checked (``virb.encoders``). Every conv / bn key of the arch is required; ``fc.*``
is kept when the source has it (the original's encoder ignores it). Method-specific parts
(``ckpt.extras``, e.g. ViCE's DeepLabV3+ head) have no place in it and are dropped, reported.
"""
from converters.canonical_resnet import backbone_shapes, fc_patterns
from converters.writers import WriterOutput, register_writer

PREFIX = 'model.'


@register_writer('virb')
def write_virb(ckpt):
    state_dict = {PREFIX + k: v for k, v in ckpt.state_dict.items()}
    expected = {PREFIX + k: s for k, s in backbone_shapes(ckpt.arch).items()}
    optional = {PREFIX + k: s for k, s in fc_patterns(ckpt.arch).items()}
    dropped = ckpt.extra_keys()
    notes = [f'{part}: not part of a ViRB ResNet encoder; dropped ({len(extra)} tensors)'
             for part, extra in ckpt.extras.items()]
    notes.append("ViRB weight file: every key prefixed 'model.' (use it as the value of an "
                 'experiment list entry: python tools/virb.py, docs/virb.md)')
    return WriterOutput(state_dict, state_dict, expected, optional=optional,
                        dropped_keys=dropped, notes=notes)
