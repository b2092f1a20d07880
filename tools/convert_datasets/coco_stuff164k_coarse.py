#!/usr/bin/env python
"""COCO-Stuff-164k -> COCO-Stuff-27 (ViCE / IIC "coarse" protocol), the layout that
COCOStuffCoarseDataset and configs/mmseg/vice/fcn_linear_coco-stuff164k.py read.

    python tools/convert_datasets/coco_stuff164k_coarse.py data/coco_stuff164k \\
        --train-list data/curated/train2017/Coco164kFull_Stuff_Coarse_7.txt \\
        --val-list data/curated/val2017/Coco164kFull_Stuff_Coarse_7.txt \\
        -o data/coco_stuff164k_coarse --nproc 8

Input (mmseg's COCO-Stuff-164k layout)::

    ROOT/images/{train2017,val2017}/<id>.jpg
    ROOT/annotations/{train2017,val2017}/<id>.png     (stuffthingmaps: 0-181, 255 unlabelled)

Output (OUT = -o, default ROOT)::

    OUT/annotations/{split}/<id>_labelTrainIds_27.png         every label map, mapped to 0-26/255
    OUT/images_coarse/{split}/<id>.jpg                         links to ROOT/images/{split}
    OUT/annotations_coarse/{split}/<id>_labelTrainIds_27.png   links to OUT/annotations/{split}

The links hold exactly the ids of the curated lists (IIC's Coco164kFull_Stuff_Coarse_7.txt,
49,629 train / 2,175 val; see docs/datasets.md for where to get them). Re-runs are
idempotent: label maps newer than their source are kept (--overwrite rewrites them), correct
links are kept, links to ids no longer listed are removed. Label maps are written atomically.
"""
import argparse
import glob
import multiprocessing
import os
import os.path as osp
import sys
from functools import partial

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from densessl import coco_stuff_coarse_classes as coarse
from densessl.atomic_io import atomic_write

SPLITS = ('train2017', 'val2017')
LABEL_SUFFIX = coarse.LABEL_SUFFIX
IMAGE_SUFFIX = '.jpg'


class ConversionError(RuntimeError):
    """Bad input to the conversion: a missing folder, list, image or label file."""


def fine_label_files(root, split):
    """The COCO-Stuff label PNGs of one split (not files written by this or mmseg's converter)."""
    folder = osp.join(root, 'annotations', split)
    if not osp.isdir(folder):
        raise ConversionError(
            f'label folder {folder} does not exist. Unzip stuffthingmaps_trainval2017.zip into '
            f'{osp.join(root, "annotations")} (docs/datasets.md, "COCO-Stuff-27").')
    files = sorted(f for f in glob.glob(osp.join(folder, '*.png'))
                   if '_labelTrainIds' not in osp.basename(f))
    if not files:
        raise ConversionError(f'no COCO-Stuff label PNGs in {folder}: is the stuffthingmaps '
                              f'archive unzipped there?')
    return files


def coarse_label_path(out_dir, split, image_id):
    return osp.join(out_dir, 'annotations', split, image_id + LABEL_SUFFIX)


def convert_file(src, dst, overwrite=False):
    """Map one label PNG to train ids 0-26/255 and write ``dst`` atomically.

    Returns 'skipped' when ``dst`` is already newer than ``src`` (and not ``overwrite``)."""
    if not overwrite and osp.isfile(dst) and osp.getmtime(dst) >= osp.getmtime(src):
        return 'skipped'
    try:
        with Image.open(src) as img:
            if img.mode not in ('L', 'P'):
                raise ConversionError(
                    f'{src}: mode {img.mode}, expected a single-channel label PNG (mode L) with '
                    f'values 0-181/255. A colour visualisation is not a label map.')
            fine = np.array(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ConversionError(f'{src}: cannot decode the label PNG ({e}); the file is corrupt '
                              f'or truncated: download / unzip it again.') from e
    labels = coarse.to_coarse(fine, source=src)
    atomic_write(dst, lambda f: Image.fromarray(labels).save(f, format='PNG'), 'wb')
    return 'converted'


def _convert_pair(pair, overwrite):
    return convert_file(*pair, overwrite=overwrite)


def convert_split(root, out_dir, split, nproc, overwrite=False):
    """Convert every label map of ``split``; returns {'converted': n, 'skipped': m}."""
    pairs = [(src, coarse_label_path(out_dir, split, osp.splitext(osp.basename(src))[0]))
             for src in fine_label_files(root, split)]
    os.makedirs(osp.join(out_dir, 'annotations', split), exist_ok=True)
    work = partial(_convert_pair, overwrite=overwrite)
    counts = {'converted': 0, 'skipped': 0}
    progress = tqdm(total=len(pairs), desc=f'convert {split}', unit='file', mininterval=1.0)
    if nproc > 1:
        with multiprocessing.Pool(nproc) as pool:
            for outcome in pool.imap_unordered(work, pairs, chunksize=32):
                counts[outcome] += 1
                progress.update()
    else:
        for pair in pairs:
            counts[work(pair)] += 1
            progress.update()
    progress.close()
    return counts


def read_id_list(path, flag):
    """Image ids of a curated list file: one id per line (a trailing .jpg is allowed)."""
    if not osp.isfile(path):
        raise ConversionError(
            f'{flag} {path}: no such file. The curated lists (Coco164kFull_Stuff_Coarse_7.txt) '
            f'come with IIC\'s COCOStuff164kCurated.tar.gz; docs/datasets.md says where to get '
            f'them.')
    with open(path) as f:
        ids = [line.strip() for line in f if line.strip()]
    ids = [i[:-len(IMAGE_SUFFIX)] if i.endswith(IMAGE_SUFFIX) else i for i in ids]
    bad = [i for i in ids if '/' in i or os.sep in i]
    if bad:
        raise ConversionError(f'{flag} {path}: entries must be image ids such as 000000000139, '
                              f'found {bad[0]!r}')
    if not ids:
        raise ConversionError(f'{flag} {path} lists no image ids')
    duplicates = len(ids) - len(set(ids))
    if duplicates:
        raise ConversionError(f'{flag} {path}: {duplicates} duplicate ids (a corrupted list?)')
    return ids


def _link(target, link_path, out_dir):
    """Make ``link_path`` a symlink to ``target``, atomically; 'kept' if already so.

    Relative when ``target`` lies inside ``out_dir`` (the tree can be moved as a whole),
    absolute otherwise (``out_dir`` can be moved apart from the source tree)."""
    target = osp.abspath(target)
    inside = osp.commonpath([target, osp.abspath(out_dir)]) == osp.abspath(out_dir)
    relative = osp.relpath(target, osp.dirname(osp.abspath(link_path))) if inside else target
    if osp.islink(link_path) and os.readlink(link_path) == relative:
        return 'kept'
    if osp.lexists(link_path) and not osp.islink(link_path):
        raise ConversionError(f'{link_path} exists and is not a link; this folder holds only '
                              f'links made by the converter. Move the file away and re-run.')
    tmp = f'{link_path}.tmp{os.getpid()}'
    if osp.lexists(tmp):
        os.remove(tmp)
    os.symlink(relative, tmp)
    os.replace(tmp, link_path)
    return 'linked'


def check_listed_files(paths, ids, kind, split, flag):
    """Raise a ConversionError naming the first missing file of a curated list."""
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise ConversionError(
            f'{flag}: {len(missing)} of {len(ids)} listed ids have no {kind} file, e.g. '
            f'{missing[0]}. Is the list for {split} (train list -> train2017, val list -> '
            f'val2017), and are all COCO-Stuff-164k {kind}s in place?')


def listed_images(root, split, ids):
    return [osp.join(root, 'images', split, i + IMAGE_SUFFIX) for i in ids]


def link_split(root, out_dir, split, ids, flag):
    """Link the listed images and their coarse labels into images_coarse/ and
    annotations_coarse/; remove links of ids not listed. Returns counts."""
    images = listed_images(root, split, ids)
    labels = [coarse_label_path(out_dir, split, i) for i in ids]
    check_listed_files(images, ids, 'image', split, flag)
    check_listed_files(labels, ids, 'label', split, flag)
    counts = {'linked': 0, 'kept': 0, 'removed': 0}
    for folder, targets, names in (
            (osp.join(out_dir, 'images_coarse', split), images, [i + IMAGE_SUFFIX for i in ids]),
            (osp.join(out_dir, 'annotations_coarse', split), labels,
             [i + LABEL_SUFFIX for i in ids])):
        os.makedirs(folder, exist_ok=True)
        for target, name in zip(targets, names):
            counts[_link(target, osp.join(folder, name), out_dir)] += 1
        for stale in sorted(set(os.listdir(folder)) - set(names)):
            if osp.islink(osp.join(folder, stale)):
                os.remove(osp.join(folder, stale))
                counts['removed'] += 1
    return counts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('coco_stuff_root', help='COCO-Stuff-164k root (images/, annotations/)')
    parser.add_argument('-o', '--out-dir', help='output root (default: coco_stuff_root)')
    parser.add_argument('--train-list', help='curated train2017 id list '
                        '(Coco164kFull_Stuff_Coarse_7.txt); without it nothing is linked for '
                        'train2017')
    parser.add_argument('--val-list', help='curated val2017 id list; without it nothing is '
                        'linked for val2017')
    parser.add_argument('--nproc', type=int, default=min(8, os.cpu_count() or 1),
                        help='worker processes for the label conversion (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite label maps that are already converted')
    args = parser.parse_args(argv)
    if args.nproc < 1:
        parser.error(f'--nproc must be >= 1, got {args.nproc}')
    return args


def main(argv=None):
    args = parse_args(argv)
    root = args.coco_stuff_root
    out_dir = args.out_dir or root
    lists = {'train2017': ('--train-list', args.train_list),
             'val2017': ('--val-list', args.val_list)}
    try:
        if not osp.isdir(root):
            raise ConversionError(f'COCO-Stuff-164k root {osp.abspath(root)} does not exist '
                                  f'(docs/datasets.md, "COCO-Stuff-27", says how to download it)')
        id_lists = {split: read_id_list(path, flag)
                    for split, (flag, path) in lists.items() if path}
        for split, ids in id_lists.items():  # fail before the long conversion, not after it
            check_listed_files(listed_images(root, split, ids), ids, 'image', split,
                               lists[split][0])
        for split in SPLITS:
            counts = convert_split(root, out_dir, split, args.nproc, args.overwrite)
            print(f'{split}: {counts["converted"]} label maps converted, {counts["skipped"]} '
                  f'already up to date')
        for split, ids in id_lists.items():
            counts = link_split(root, out_dir, split, ids, lists[split][0])
            print(f'{split}: {len(ids)} listed ids; links: {counts["linked"]} new, '
                  f'{counts["kept"]} kept, {counts["removed"]} stale removed')
        missing = [flag for split, (flag, path) in lists.items() if not path]
        if missing:
            print(f'note: no {" / ".join(missing)} given, so nothing was linked for it; '
                  f'COCOStuffCoarseDataset needs both splits.')
    except (ConversionError, coarse.LabelValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'done: data root for COCOStuffCoarseDataset: {osp.abspath(out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
