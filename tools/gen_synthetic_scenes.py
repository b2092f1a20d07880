#!/usr/bin/env python
"""Generate the built-in synthetic street-scenes data set (Cityscapes layout).

    python tools/gen_synthetic_scenes.py --out data/synthetic_scenes
    python tools/gen_synthetic_scenes.py --out /tmp/tiny --num-train 8 --num-val 4 --num-unlabeled 16

Writes images, semantic label maps (labelTrainIds), Cityscapes-style instance maps
(``*_gtFine_instanceIds.png``, 16-bit: train_id * 1000 + k on car / person / pole pixels)
and the COCO instance JSONs ``ROOT/annotations/instances_{train,val}.json`` that detectron2
reads (rewrite only those for an existing set: tools/convert_datasets/synthetic_to_coco.py).

Deterministic: the same arguments give byte-identical PNGs. An existing complete set with
the same arguments is kept (``--force`` rewrites it; a set from an older generator version,
e.g. one without instance maps, counts as incomplete and is rewritten anyway). See
densessl/synthetic_scenes.py.
"""
import argparse
import os
import time

from densessl import synthetic_scenes


def main():
    defaults = synthetic_scenes.SyntheticScenesConfig()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/synthetic_scenes', help='output root')
    parser.add_argument('--num-train', type=int, default=defaults.num_train)
    parser.add_argument('--num-val', type=int, default=defaults.num_val)
    parser.add_argument('--num-unlabeled', type=int, default=defaults.num_unlabeled)
    parser.add_argument('--height', type=int, default=defaults.height)
    parser.add_argument('--width', type=int, default=defaults.width)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--force', action='store_true', help='rewrite a complete set')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='processes rendering images (default: one per CPU core; the '
                             'files do not depend on it)')
    args = parser.parse_args()
    config = synthetic_scenes.SyntheticScenesConfig(
        num_train=args.num_train, num_val=args.num_val, num_unlabeled=args.num_unlabeled,
        height=args.height, width=args.width, seed=args.seed)
    start = time.time()
    if not args.force and synthetic_scenes.is_complete(args.out, config):
        print(f'{args.out}: complete set with these settings already there (use --force)')
        return
    synthetic_scenes.generate(args.out, config, workers=max(1, args.workers))
    print(f'wrote {args.out} in {time.time() - start:.1f} s: {config}')


if __name__ == '__main__':
    main()
