"""Checkpoint converters: readers and writers around one canonical ResNet state dict.

    from converters import convert
    report = convert('model_final_checkpoint_phase24.torch', 'r18_mmseg.pth',
                     src_format='vissl', dst_format='mmseg')

Command line: ``python tools/convert_checkpoint.py IN OUT --src-format vissl --dst-format mmseg``.
``READERS`` / ``WRITERS``: format name -> function (``register_reader`` /
``register_writer`` add one). See docs/converters.md.
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError, ConversionRefused
from converters.pipeline import convert
from converters.readers import READERS, register_reader
from converters.writers import WRITERS, WriterOutput, register_writer

__all__ = ['convert', 'ConversionError', 'ConversionRefused', 'CanonicalCheckpoint',
           'READERS', 'register_reader', 'WRITERS', 'WriterOutput', 'register_writer']
