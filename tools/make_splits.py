#!/usr/bin/env python
"""Write a semi-supervised split: OUT/labeled.txt, OUT/unlabeled.txt and OUT/split_info.json.

    python tools/make_splits.py --dataset synthetic_scenes --root data/synthetic_scenes \\
        --labelled-fraction 0.05 --out splits/synthetic_scenes/5pct
    python tools/make_splits.py --dataset cityscapes --root data/cityscapes \\
        --labelled-count 20 --class-balanced --seed 0 --out splits/cityscapes/reco_20_seed0
    python tools/make_splits.py --dataset pascal_voc --root data/VOCdevkit/VOC2012 \\
        --labelled-pool data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt \\
        --labelled-fraction 0.0625 --out splits/pascal_classic/92
    python tools/make_splits.py --dataset pascal_voc --root data/VOCdevkit/VOC2012 \\
        --id-list train_aug.txt --labelled-count 60 --class-balanced --seed 0 \\
        --out splits/pascal/reco_60_seed0
    python tools/make_splits.py --dataset sun_rgbd --root data/sun_rgbd --labelled-count 50 \\
        --class-balanced --min-classes 1 --seed 0 --out splits/sun/reco_50_seed0
    python tools/make_splits.py --ids my_ids.txt --labelled-count 50 --out splits/mine/50

Ids: ``--dataset`` lists them from ROOT (Cityscapes layout, i.e. cityscapes and the
built-in synthetic scenes: the stems of ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png``;
pascal_voc: the stems of ``SegmentationClassAug/*.png``; sun_rgbd, ReCo's preprocessed layout:
the stems ``img-NNNNNN`` of ``SUNRGBD-train_images/*.jpg``, labels in
``sunrgbd_train_test_labels/``, 0 = void), ``--ids`` reads them from a file (one per line).
``--id-list FILE`` keeps only the listed ids of ``--dataset`` (e.g. VOC's 10,582 train_aug
ids: ``SegmentationClassAug`` also holds the val labels, which must not become unlabelled
training images). The labelled images are drawn from ``--labelled-pool`` (default: all ids);
every other id is unlabelled (U2PL's "classic" Pascal: 1/16 of the 1,464 train images
labelled, the rest of the 10,582 unlabelled).

Selection (densessl/semisup/label_subsets.py): ``--labelled-count N`` or
``--labelled-fraction F`` (``ceil(F * pool size)``, U2PL's rounding); uniformly at random
by default, or ReCo's class-balanced sampler (``--class-balanced``: needs label maps, i.e.
``--dataset``; ``--min-classes`` defaults to ReCo's 12 for Cityscapes, 1 for sun_rgbd, 3
otherwise; on SUN RGB-D this is the Pascal / Cityscapes acceptance rule, not ReCo's own SUN
sampler, which takes images from per-class lists and is not implemented). The
result depends only on the ids and ``--seed``, not on the file-system order. Both files are
sorted. An existing split with different contents is kept unless ``--force``.
"""
import argparse
import glob
import os.path as osp
import sys

import numpy as np
from PIL import Image

from densessl.atomic_io import atomic_write_json
from densessl.semisup import label_subsets

CITYSCAPES_LABEL_SUFFIX = '_gtFine_labelTrainIds.png'
DEFAULT_MIN_CLASSES = {'cityscapes': label_subsets.RECO_MIN_CLASSES['cityscapes'],
                       'pascal_voc': label_subsets.RECO_MIN_CLASSES['pascal'],
                       'synthetic_scenes': 3, 'sun_rgbd': 1}


def cityscapes_layout(root, split):
    """{id: label path} of a Cityscapes-layout set."""
    suffix = label_subsets.CITYSCAPES_IMAGE_SUFFIX
    found = {}
    for path in glob.glob(osp.join(root, 'leftImg8bit', split, '*', '*' + suffix)):
        city = osp.basename(osp.dirname(path))
        stem = osp.basename(path)[:-len(suffix)]
        found[stem] = osp.join(root, 'gtFine', split, city, stem + CITYSCAPES_LABEL_SUFFIX)
    return found


def pascal_layout(root, split):
    """{id: label path} of VOC with SegmentationClassAug (``split`` unused)."""
    return {osp.splitext(osp.basename(p))[0]: p
            for p in glob.glob(osp.join(root, 'SegmentationClassAug', '*.png'))}


def sun_layout(root, split):
    """{id: label path} of SUN RGB-D after ReCo's preprocessing (``split`` unused: the train
    images)."""
    return {osp.splitext(osp.basename(p))[0]: osp.join(
        root, 'sunrgbd_train_test_labels', osp.splitext(osp.basename(p))[0] + '.png')
        for p in glob.glob(osp.join(root, 'SUNRGBD-train_images', '*.jpg'))}


LAYOUTS = {'cityscapes': cityscapes_layout, 'synthetic_scenes': cityscapes_layout,
           'pascal_voc': pascal_layout, 'sun_rgbd': sun_layout}
DEFAULT_IGNORE_INDEX = {'sun_rgbd': 0}  # raw SUN labels: 0 = void, 1..37 the classes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--dataset', choices=sorted(LAYOUTS), help='list ids (and labels) '
                        'from --root')
    source.add_argument('--ids', help='file with one image id per line')
    parser.add_argument('--root', help='data set root (with --dataset)')
    parser.add_argument('--id-list', help='with --dataset: keep only the ids listed in this file '
                        '(e.g. VOC train_aug); one that is not in --root is an error')
    parser.add_argument('--split', default='train', help='image folder of a Cityscapes-layout '
                        'set (default: train)')
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument('--labelled-count', type=int)
    size.add_argument('--labelled-fraction', type=float, help='of the labelled pool, rounded up')
    parser.add_argument('--labelled-pool', help='file of ids the labelled images are drawn '
                        'from (default: all ids)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--class-balanced', action='store_true',
                        help="ReCo's class-balanced sampler (needs --dataset)")
    parser.add_argument('--min-classes', type=int,
                        help='class-balanced: classes an image needs (default: '
                             f'{DEFAULT_MIN_CLASSES})')
    parser.add_argument('--ignore-index', type=int, default=None,
                        help=f'label value that is not a class (default 255; '
                             f'{DEFAULT_IGNORE_INDEX})')
    parser.add_argument('--out', required=True, help='split folder to write')
    parser.add_argument('--force', action='store_true', help='replace a different split')
    args = parser.parse_args(argv)
    if args.dataset and not args.root:
        parser.error('--dataset needs --root')
    if args.class_balanced and not args.dataset:
        parser.error('--class-balanced needs label maps: use --dataset and --root')
    if args.id_list and not args.dataset:
        parser.error('--id-list filters the ids of --dataset (use --ids otherwise)')
    if args.ignore_index is None:
        args.ignore_index = DEFAULT_IGNORE_INDEX.get(args.dataset, 255)
    return args


def list_ids(args):
    """(sorted ids, {id: label path} or None)."""
    if args.ids:
        return sorted(label_subsets.read_split(args.ids)), None
    labels = LAYOUTS[args.dataset](args.root, args.split)
    if not labels:
        sys.exit(f'make_splits: no images of {args.dataset} under {args.root} '
                 f'(split {args.split!r})')
    if args.id_list:
        try:
            keep = label_subsets.read_split(args.id_list, set(labels))
        except label_subsets.SplitError as error:
            sys.exit(f'make_splits: {error}')
        labels = {i: labels[i] for i in keep}
    return sorted(labels), labels


def main(argv=None):
    args = parse_args(argv)
    ids, labels = list_ids(args)
    pool = ids
    if args.labelled_pool:
        try:
            pool = sorted(label_subsets.read_split(args.labelled_pool, set(ids)))
        except label_subsets.SplitError as error:
            sys.exit(f'make_splits: {error}')
    if args.labelled_count is not None:
        num = args.labelled_count
    else:
        num = label_subsets.count_for_fraction(len(pool), args.labelled_fraction)
    if not 0 <= num <= len(pool):
        sys.exit(f'make_splits: cannot label {num} of {len(pool)} images')

    if args.class_balanced:
        min_classes = (args.min_classes if args.min_classes is not None
                       else DEFAULT_MIN_CLASSES[args.dataset])
        missing = [i for i in pool if not osp.isfile(labels[i])]
        if missing:
            sys.exit(f'make_splits: no label map for {missing[0]!r}: {labels[missing[0]]}')
        class_sets = {i: label_subsets.image_classes(np.asarray(Image.open(labels[i])),
                                                     args.ignore_index) for i in pool}
        try:
            labelled = label_subsets.class_balanced_subset(class_sets, num, args.seed,
                                                           min_classes)
        except ValueError as error:
            sys.exit(f'make_splits: {error}')
        method = 'reco_class_balanced'
    else:
        min_classes = None
        labelled = label_subsets.random_subset(pool, num, args.seed)
        method = 'random'
    labelled = sorted(labelled)
    chosen = set(labelled)
    unlabelled = [i for i in ids if i not in chosen]

    old = [osp.join(args.out, name) for name in (label_subsets.LABELLED_FILE,
                                                  label_subsets.UNLABELLED_FILE)]
    if any(osp.isfile(p) for p in old) and not args.force:
        if not all(osp.isfile(p) for p in old) or [
                label_subsets.read_split(p) for p in old] != [labelled, unlabelled]:
            sys.exit(f'make_splits: {args.out} holds a different split; use --force to '
                     'replace it')
    label_subsets.write_split_dir(args.out, labelled, unlabelled)
    info = dict(method=method, seed=args.seed, num_labelled=len(labelled),
                num_unlabelled=len(unlabelled), num_ids=len(ids), labelled_pool=len(pool),
                labelled_fraction=args.labelled_fraction, min_classes=min_classes,
                dataset=args.dataset, root=args.root, split=args.split if args.dataset else None,
                ids_file=args.ids, id_list_file=args.id_list,
                labelled_pool_file=args.labelled_pool, ignore_index=args.ignore_index)
    atomic_write_json(info, osp.join(args.out, 'split_info.json'))
    print(f'{args.out}: {len(labelled)} labelled, {len(unlabelled)} unlabelled ({method}, '
          f'seed {args.seed})')


if __name__ == '__main__':
    main()
