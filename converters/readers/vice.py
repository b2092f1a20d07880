"""Reader ``vice``: a VISSL checkpoint of ViCE's ``deeplabv3plus`` trunk
(``densessl/vice/deeplabv3plus.py``), in any layout the ``vissl`` reader accepts.

Trunk keys ``_feature_blocks.backbone.<torchvision name>`` become the canonical ResNet;
``_feature_blocks.aspp.*`` and ``_feature_blocks.decoder.*`` become the extra
``deeplabv3plus_head`` (``converters.deeplabv3plus_head``), which the ``mmseg`` writer maps to
``DepthwiseSeparableASPPHead`` and the ``torchvision`` writer drops. Heads (the prototypes) are
dropped; other trunk keys are kept and fail the target's key check.
"""
from converters.deeplabv3plus_head import EXTRA
from converters.errors import ConversionError
from converters.readers import register_reader
from converters.readers.common import show_keys
from converters.readers.vissl import read_vissl

BACKBONE = 'backbone.'
HEAD_PARTS = ('aspp.', 'decoder.')


@register_reader('vice')
def read_vice(path, log=print):
    ckpt = read_vissl(path, log=log)
    trunk = ckpt.state_dict
    if not any(k.startswith(BACKBONE) for k in trunk):
        original = any(k.startswith('model.backbone.layer0.') for k in trunk)
        raise ConversionError(
            f'{path}: no ViCE deeplabv3plus trunk keys (_feature_blocks.backbone.*) in the '
            f'trunk (found: {show_keys(trunk)}). '
            + ('This looks like a checkpoint of the original ViCE code (model.backbone.layer0, '
               'model.ASSP), whose layout is not read here. ' if original else '')
            + 'For a plain ResNet trunk use --src-format vissl')
    state_dict, extra = {}, {}
    for key, value in trunk.items():
        if key.startswith(BACKBONE):
            state_dict[key[len(BACKBONE):]] = value
        elif key.startswith(HEAD_PARTS):
            extra[key] = value
        else:
            state_dict[key] = value
    ckpt.state_dict, ckpt.source_format = state_dict, 'vice'
    ckpt.extras[EXTRA] = extra
    return ckpt
