#!/usr/bin/env python
"""Convert a ResNet checkpoint between formats (one command per format pair).

    python tools/convert_checkpoint.py work_dirs/simclr/model_final_checkpoint_phase24.torch \\
        work_dirs/simclr_r18_mmseg.pth --src-format vissl --dst-format mmseg
    python tools/convert_checkpoint.py IN OUT --src-format vissl --dst-format torchvision
    python tools/convert_checkpoint.py IN OUT --src-format torchvision --dst-format mmseg
    python tools/convert_checkpoint.py IN OUT --src-format torchvision --dst-format torchvision

Prints a report (arch, tensors matched, dropped / missing / unexpected / mismatched keys).
A result that does not match the target's full key list is refused (exit 1, nothing
written) unless --allow-missing is given; unusable input exits 2. See docs/converters.md.
"""
import argparse
import sys

from converters import READERS, WRITERS, ConversionError, ConversionRefused, convert
from converters.canonical_resnet import ARCHS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='checkpoint file to read')
    parser.add_argument('output', help='file to write (atomically)')
    parser.add_argument('--src-format', required=True, choices=sorted(READERS))
    parser.add_argument('--dst-format', required=True, choices=sorted(WRITERS))
    parser.add_argument('--arch', default='auto', choices=('auto',) + ARCHS,
                        help='ResNet architecture (default: detected from the keys)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='write even if keys are missing, unexpected or mismatched (warns)')
    parser.add_argument('--report-json', metavar='PATH', help='also write the report as JSON')
    args = parser.parse_args(argv)
    try:
        convert(args.input, args.output, args.src_format, args.dst_format, arch=args.arch,
                allow_missing=args.allow_missing, report_json=args.report_json)
    except ConversionRefused as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
