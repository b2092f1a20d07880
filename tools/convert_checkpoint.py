#!/usr/bin/env python
"""Convert a checkpoint between formats, checking every key.

    python tools/convert_checkpoint.py IN OUT --src-format vissl --dst-format mmseg
    python tools/convert_checkpoint.py IN OUT --src-format torchvision --dst-format mmseg
    python tools/convert_checkpoint.py IN OUT --src-format vissl --dst-format torchvision

A result with missing, unexpected or mis-shaped backbone keys is refused (exit 1, nothing
written) unless --allow-missing. See docs/converters.md.
"""
import argparse
import json
import sys

from converters import ConversionError, canonical_resnet, convert
from converters.convert import format_report
from converters.readers import READERS
from converters.writers import WRITERS
from densessl.atomic_io import atomic_write_json


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input')
    parser.add_argument('output')
    parser.add_argument('--src-format', required=True, choices=sorted(READERS))
    parser.add_argument('--dst-format', required=True, choices=sorted(WRITERS))
    parser.add_argument('--arch', default='auto', choices=('auto',) + canonical_resnet.ARCHS)
    parser.add_argument('--allow-missing', action='store_true',
                        help='write even when keys are missing / unexpected / mis-shaped')
    parser.add_argument('--report-json', help='also write the report as JSON here')
    args = parser.parse_args()
    try:
        report = convert(args.input, args.output, args.src_format, args.dst_format,
                         arch=args.arch, allow_missing=args.allow_missing)
    except ConversionError as e:
        sys.exit(f'convert_checkpoint: {e}')
    print(format_report(report))
    if args.report_json:
        atomic_write_json(report, args.report_json)


if __name__ == '__main__':
    main()
