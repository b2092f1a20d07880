"""Trunk ``deeplabv3plus``: ViCE's DeepLabV3+ (``densessl.vice.deeplabv3plus``) in VISSL.

Configured by ``MODEL.TRUNK.DEEPLABV3PLUS`` (every key optional; the network, its shapes and
the state-dict layout are documented in ``densessl/vice/deeplabv3plus.py``)::

    NAME: deeplabv3plus
    DEEPLABV3PLUS: {DEPTH: 50, OUTPUT_STRIDE: 8, ASPP_RATES: [1, 12, 24, 36],
                    DECODER_CHANNELS: 256, OUT_FEAT_DIM: 128, PRETRAINED_PATH: ''}
"""
from vissl.models.trunks import register_model_trunk

from densessl.vice.deeplabv3plus import DeepLabV3Plus, trunk_kwargs


@register_model_trunk('deeplabv3plus')
class DeepLabV3PlusTrunk(DeepLabV3Plus):
    """The VISSL trunk: ``DeepLabV3Plus`` configured by ``MODEL.TRUNK.DEEPLABV3PLUS``."""

    def __init__(self, model_config, model_name: str):
        where = 'MODEL.TRUNK.DEEPLABV3PLUS'
        super().__init__(**trunk_kwargs(model_config.TRUNK.get('DEEPLABV3PLUS'), where),
                         where=where)
