"""Build a VISSL ``disk_filelist``: one .npy array of absolute image paths from several sources.

``collect_images([('coco', '/data/coco'), ('cityscapes', '/data/cs')], splits)`` lists the
images of each source's chosen splits; ``write_filelist`` writes the array and a summary
(count per source and split) atomically.

Splits: each entry of ``splits`` is ``SPLIT`` (for every source) or ``NAME:SPLIT`` (for that
data set only). A source's splits are its ``NAME:SPLIT`` entries if any, else the plain
entries if any, else its parser's defaults. Evaluation splits are never defaults; asking for
one gives an ``EvalSplitWarning``.
"""
import os.path as osp
import warnings

import numpy as np

from densessl.atomic_io import atomic_write, atomic_write_json
from densessl.dataset_filelists.registry import FileListError, get_parser


class EvalSplitWarning(UserWarning):
    """A file list for pretraining includes evaluation images."""


def parse_source(text):
    """``'NAME=ROOT'`` -> ``(NAME, ROOT)``."""
    name, sep, root = text.partition('=')
    if not sep or not name or not root:
        raise FileListError(f'--dataset {text!r}: expected NAME=ROOT, e.g. coco=/data/coco')
    return name.strip(), root.strip()


def choose_splits(parser, splits=()):
    """The splits of ``parser`` selected by ``splits`` (see the module docstring)."""
    own = [s.split(':', 1)[1] for s in splits if ':' in s and s.split(':', 1)[0] == parser.name]
    plain = [s for s in splits if ':' not in s]
    chosen = tuple(own or plain or parser.default_splits)
    unknown = [s for s in chosen if s not in parser.splits]
    if unknown:
        raise FileListError(f'{parser.name} has no split {unknown[0]!r}; its splits are '
                            f'{", ".join(parser.splits)} (default: '
                            f'{", ".join(parser.default_splits)})')
    return tuple(dict.fromkeys(chosen))


def collect_images(sources, splits=()):
    """``sources``: [(name, root)]. Returns (paths, rows): all image paths, sorted per
    source and split, and one summary row per (source, split)."""
    if not sources:
        raise FileListError('no data sets given: pass --dataset NAME=ROOT at least once')
    names = {name for name, _ in sources}
    for entry in splits:
        if ':' in entry and entry.split(':', 1)[0] not in names:
            raise FileListError(f'--splits {entry}: {entry.split(":", 1)[0]} is not one of the '
                                f'given data sets ({", ".join(sorted(names))})')
    paths, rows = [], []
    for name, root in sources:
        parser = get_parser(name)
        for split in choose_splits(parser, splits):
            images = parser.list_images(root, split)
            is_eval = split in parser.eval_splits
            if is_eval:
                warnings.warn(f'{name} split {split!r} ({len(images)} images) holds evaluation '
                              f'images: a model pretrained on this list must not be evaluated '
                              f'on them.', EvalSplitWarning, stacklevel=2)
            paths += images
            rows.append(dict(dataset=name, root=osp.abspath(root), split=split,
                             count=len(images), eval_split=is_eval))
    if len(set(paths)) != len(paths):
        seen, duplicate = set(), None
        for p in paths:
            if p in seen:
                duplicate = p
                break
            seen.add(p)
        raise FileListError(f'{len(paths) - len(set(paths))} images are listed more than once '
                            f'(e.g. {duplicate}): the same root or split given twice?')
    return paths, rows


def summary_path(out):
    return osp.splitext(out)[0] + '.summary.json'


def write_filelist(paths, rows, out):
    """Write ``out`` (.npy, array of str) and ``<out stem>.summary.json``, both atomically."""
    if not out.endswith('.npy'):
        raise FileListError(f'--out {out}: VISSL reads disk_filelist paths by extension; use a '
                            f'.npy file name')
    array = np.array(paths, dtype=str)
    atomic_write(out, lambda f: np.save(f, array, allow_pickle=False), 'wb')
    summary = dict(filelist=osp.abspath(out), total=len(paths), sources=rows)
    atomic_write_json(summary, summary_path(out))
    return summary


def format_summary(summary):
    """A plain-text table of the summary."""
    lines = [f'{"dataset":<14} {"split":<12} {"images":>9}  root']
    for row in summary['sources']:
        flag = '  (EVALUATION SPLIT)' if row['eval_split'] else ''
        lines.append(f'{row["dataset"]:<14} {row["split"]:<12} {row["count"]:>9}  '
                     f'{row["root"]}{flag}')
    lines.append(f'{"total":<27} {summary["total"]:>9}  -> {summary["filelist"]}')
    return '\n'.join(lines)


