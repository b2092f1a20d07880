"""The registry of image-folder parsers for pretraining file lists.

A ``DatasetParser`` describes one data set: its named splits, each a glob pattern relative
to the data set root, which splits are used by default, and which hold evaluation images
(never used unless asked for by name). ``register`` adds a parser under its name.
"""
import glob
import os.path as osp
from dataclasses import dataclass

PARSERS = {}


class FileListError(ValueError):
    """Bad input for a file list: unknown data set or split, missing root or images."""


@dataclass(frozen=True)
class DatasetParser:
    """name: registry key; splits: {split: glob pattern under the root};
    default_splits: used when none are asked for; eval_splits: splits with evaluation images;
    layout: the expected tree, shown in errors; source: where to download the data set."""
    name: str
    splits: dict
    default_splits: tuple
    eval_splits: tuple
    layout: str
    source: str

    def __post_init__(self):
        unknown = set(self.default_splits) | set(self.eval_splits)
        unknown -= set(self.splits)
        if unknown:
            raise ValueError(f'parser {self.name}: splits {sorted(unknown)} are not in '
                             f'splits {sorted(self.splits)}')
        if any(not any(c in p for c in '*?[') for p in self.splits.values()):
            raise ValueError(f'parser {self.name}: every split pattern needs a wildcard')
        if set(self.default_splits) & set(self.eval_splits):
            raise ValueError(f'parser {self.name}: an evaluation split cannot be a default')

    def split_folder(self, root, split):
        """The folder a split's pattern starts from: its path parts before the first wildcard."""
        parts = []
        for part in self.splits[split].split('/'):
            if any(c in part for c in '*?['):
                break
            parts.append(part)
        return osp.join(root, *parts)

    def list_images(self, root, split):
        """Sorted absolute paths of the images of ``split`` under ``root``."""
        if split not in self.splits:
            raise FileListError(f'{self.name}: unknown split {split!r}; its splits are '
                                f'{", ".join(self.splits)}')
        root = osp.abspath(root)
        if not osp.isdir(root):
            raise FileListError(f'{self.name}: root {root} does not exist. Expected layout:\n'
                                f'{self.layout}\nDownload: {self.source}')
        folder = self.split_folder(root, split)
        if not osp.isdir(folder):
            raise FileListError(
                f'{self.name} split {split!r}: folder {folder} does not exist. Expected '
                f'layout:\n{self.layout}\nDownload: {self.source} (or choose other splits '
                f'with --splits)')
        paths = sorted(p for p in glob.glob(osp.join(root, self.splits[split]))
                       if osp.isfile(p))
        if not paths:
            raise FileListError(f'{self.name} split {split!r}: no images matching '
                                f'{osp.join(root, self.splits[split])}')
        return paths


def register(parser):
    """Add ``parser`` to ``PARSERS`` under ``parser.name``; returns it."""
    if parser.name in PARSERS:
        raise ValueError(f'a file-list parser named {parser.name!r} is already registered')
    PARSERS[parser.name] = parser
    return parser


def get_parser(name):
    if name not in PARSERS:
        raise FileListError(f'no file-list parser for data set {name!r}; registered: '
                            f'{", ".join(sorted(PARSERS))} (docs/datasets.md says how to add one)')
    return PARSERS[name]
