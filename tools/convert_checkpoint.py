#!/usr/bin/env python
"""Convert a ResNet checkpoint between formats (readers -> canonical torchvision ResNet ->
writers; one command per format pair).

    # densessl VISSL pretraining checkpoint -> MMSeg backbone / detectron2 / torchvision
    python tools/convert_checkpoint.py work_dirs/simclr/model_final_checkpoint_phase24.torch \\
        work_dirs/simclr_r18_mmseg.pth --src-format vissl --dst-format mmseg
    python tools/convert_checkpoint.py IN r50_d2.pkl --src-format vissl --dst-format d2
    python tools/convert_checkpoint.py IN OUT.pth --src-format vissl --dst-format torchvision
    # SlotCon (original ckpt_epoch_800.pth or densessl VISSL): the teacher, like SlotCon's
    # own transfer scripts; --use-student for the student encoder
    python tools/convert_checkpoint.py slotcon_coco_r50_800ep.pth slotcon_r50.pkl \\
        --src-format slotcon --dst-format d2
    # MoCo v1/v2/v3 (query encoder), SwAV (heads dropped), torchvision, ViCE
    python tools/convert_checkpoint.py moco_v2_800ep_pretrain.pth.tar moco_r50.pkl \\
        --src-format moco --dst-format d2
    python tools/convert_checkpoint.py swav_800ep_pretrain.pth.tar swav_r50_mmseg.pth \\
        --src-format swav --dst-format mmseg
    # don't know the format? auto tells it from the keys (and says what it found)
    python tools/convert_checkpoint.py IN OUT.pkl --src-format auto --dst-format d2

Source formats: auto, torchvision, vissl, moco, swav, simsiam, slotcon, vice, virb.
Targets: torchvision, mmseg, d2 (a detectron2 .pkl: the name must end in .pkl), virb (the
original ViRB's model.-prefixed encoder file, docs/virb.md). Prints a report (detected format,
arch, tensors matched, dropped / missing / unexpected / mismatched keys, notes). A result that
does not match the target's full key list is refused (exit 1, nothing written) unless
--allow-missing is given; unusable input (missing or corrupt file, a --src-format the keys do
not fit, no teacher in a SlotCon file) exits 2. SlotCon's and MoCo forks' files pickle
argparse.Namespace and are loaded with weights_only=False (trusted input; the report says
so), as is any such file under --src-format auto. See docs/converters.md.
"""
import argparse
import sys

from converters import READERS, WRITERS, ConversionError, ConversionRefused, convert
from converters.canonical_resnet import ARCHS
from converters.pipeline import AUTO


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='checkpoint file to read')
    parser.add_argument('output', help='file to write (atomically)')
    parser.add_argument('--src-format', required=True, choices=(AUTO,) + tuple(READERS),
                        help='format of the input; auto: detected from the keys')
    parser.add_argument('--dst-format', required=True, choices=tuple(WRITERS))
    parser.add_argument('--arch', default='auto', choices=('auto',) + ARCHS,
                        help='ResNet architecture (default: detected from the keys)')
    parser.add_argument('--use-student', action='store_true',
                        help='SlotCon: convert the student encoder (default: the teacher)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='write even if keys are missing, unexpected or mismatched (warns)')
    parser.add_argument('--report-json', metavar='PATH', help='also write the report as JSON')
    args = parser.parse_args(argv)
    try:
        convert(args.input, args.output, args.src_format, args.dst_format, arch=args.arch,
                allow_missing=args.allow_missing, report_json=args.report_json,
                use_student=args.use_student)
    except ConversionRefused as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
