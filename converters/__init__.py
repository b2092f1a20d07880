"""Checkpoint converters: N readers and M writers around one canonical form (a
torchvision-named ResNet state dict, ``converters.canonical_resnet``).

    from converters import convert
    report = convert('model_final_checkpoint_phase24.torch', 'r18_mmseg.pth',
                     src_format='vissl', dst_format='mmseg')

Command line: ``python tools/convert_checkpoint.py IN OUT --src-format vissl --dst-format mmseg``.
"""
from converters.checkpoint_file import ConversionError
from converters.convert import convert

__all__ = ['convert', 'ConversionError']
