"""ViCE on the MMSeg side: the frozen ``ViCEBackbone`` (linear probe of the 128-d embedding).

Fine-tuning the whole DeepLabV3+ needs no plugin: convert the VISSL checkpoint with
``tools/convert_checkpoint.py IN OUT --src-format vice --dst-format mmseg`` and use mmseg's
``ResNet`` + ``DepthwiseSeparableASPPHead`` (configs/mmseg/vice/).
"""
from mmseg_plugins.vice.vice_backbone import ViCEBackbone  # noqa: F401  (registration)
