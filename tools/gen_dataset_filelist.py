#!/usr/bin/env python
"""Write a VISSL disk_filelist (.npy of absolute image paths) for pretraining, plus a summary.

    python tools/gen_dataset_filelist.py --dataset coco=/data/coco --out filelists/coco.npy
    python tools/gen_dataset_filelist.py --dataset coco=/data/coco \\
        --dataset cityscapes=/data/cityscapes --out filelists/road_mix.npy --splits train
    python tools/gen_dataset_filelist.py --list-datasets

--splits: each entry is SPLIT (every data set) or NAME:SPLIT (that data set only); without
it each data set uses its defaults (coco: train unlabeled; cityscapes: train). Evaluation
splits (val, test) are only included when named, with a warning. The summary (count per data
set and split) is printed and written to <out stem>.summary.json. See docs/datasets.md.
"""
import argparse
import sys
import warnings

from densessl import dataset_filelists as fl


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', action='append', default=[], metavar='NAME=ROOT',
                        help='a data set and its root folder (repeat for a mix)')
    parser.add_argument('--out', help='output .npy file')
    parser.add_argument('--splits', nargs='+', default=[], metavar='[NAME:]SPLIT',
                        help='splits to include instead of the defaults')
    parser.add_argument('--list-datasets', action='store_true',
                        help='print the registered data sets and their splits, then exit')
    args = parser.parse_args(argv)
    if not args.list_datasets and (not args.dataset or not args.out):
        parser.error('--dataset NAME=ROOT (at least once) and --out FILE.npy are required')
    return args


def list_datasets():
    for name, p in sorted(fl.PARSERS.items()):
        print(f'{name}: splits {", ".join(p.splits)}; default {", ".join(p.default_splits)}; '
              f'evaluation {", ".join(p.eval_splits) or "-"}\n{p.layout}')


def main(argv=None):
    args = parse_args(argv)
    if args.list_datasets:
        list_datasets()
        return 0
    warnings.simplefilter('always', fl.EvalSplitWarning)
    warnings.formatwarning = lambda message, category, *rest: f'WARNING: {message}\n'
    try:
        sources = [fl.parse_source(text) for text in args.dataset]
        paths, rows = fl.collect_images(sources, args.splits)
        summary = fl.write_filelist(paths, rows, args.out)
    except fl.FileListError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(fl.format_summary(summary))
    print(f'summary: {fl.summary_path(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
