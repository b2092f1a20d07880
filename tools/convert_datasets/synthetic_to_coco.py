#!/usr/bin/env python
"""Synthetic scenes -> COCO instance JSONs of the thing classes (car, person, pole), the
files detectron2 reads (d2_plugins/datasets.py).

    python tools/convert_datasets/synthetic_to_coco.py data/synthetic_scenes
    python tools/convert_datasets/synthetic_to_coco.py data/synthetic_scenes --splits val \\
        --out-dir /tmp/annotations

Input: a complete set written by tools/gen_synthetic_scenes.py (generator version >= 5, which
writes the instance maps; an older set is rewritten with ``--force``)::

    ROOT/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/<stem>_gtFine_{labelTrainIds,instanceIds}.png
    ROOT/meta.json

Output (OUT = --out-dir, default ROOT/annotations), written atomically::

    OUT/instances_{train,val}.json

The generator writes the same JSONs itself; this tool rewrites them for an existing set.
See densessl/synthetic_instances_coco.py for the format.
"""
import argparse
import os.path as osp
import sys

from densessl import synthetic_instances_coco as coco
from densessl import synthetic_scenes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', help='synthetic scenes root (leftImg8bit/, gtFine/, meta.json)')
    parser.add_argument('--splits', nargs='+', default=list(synthetic_scenes.LABELLED_SPLITS),
                        choices=synthetic_scenes.LABELLED_SPLITS,
                        help='splits to convert (default: %(default)s)')
    parser.add_argument('--out-dir', help='folder of the JSONs (default: ROOT/annotations)')
    return parser.parse_args(argv)


def describe(split, path, counts):
    per_category = ', '.join(f'{name} {n}' for name, n in counts['per_category'].items())
    return (f'{split}: {counts["images"]} images, {counts["annotations"]} instances '
            f'({per_category}; {counts["small_instances_skipped"]} under '
            f'{coco.MIN_INSTANCE_AREA} px skipped) -> {path}')


def main(argv=None):
    args = parse_args(argv)
    try:
        if not osp.isdir(args.root):
            raise FileNotFoundError(f'{args.root}: no such folder. Generate the set with '
                                    f'python tools/gen_synthetic_scenes.py --out {args.root}')
        for split in args.splits:
            out_path = (osp.join(args.out_dir, f'instances_{split}.json') if args.out_dir
                        else None)
            path, counts = coco.write_coco_json(args.root, split, out_path)
            print(describe(split, path, counts))
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
