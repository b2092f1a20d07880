"""MMSeg dataset ``SyntheticScenesDataset``: densessl's built-in synthetic street scenes.

The layout is Cityscapes' (written by ``densessl.synthetic_scenes``)::

    ROOT/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png

8 classes (``densessl.synthetic_scenes.CLASSES`` / ``PALETTE``), label 255 = ignore.
Create the set with ``python tools/gen_synthetic_scenes.py --out ROOT``.

``split_file``: keep only the images whose id (file stem without ``_leftImg8bit.png``) is a
line of that file (``tools/make_splits.py``: ``labeled.txt`` / ``unlabeled.txt``); an id
that is not in the folder is an error naming the file and line.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from densessl import synthetic_scenes
from densessl.semisup.label_subsets import read_split
from mmseg_plugins.datasets.checked_folders import CheckedFoldersMixin
from mmseg_plugins.datasets.checked_folders import DatasetNotFoundError  # noqa: F401 (its old home)


@DATASETS.register_module()
class SyntheticScenesDataset(CheckedFoldersMixin, BaseSegDataset):
    METAINFO = dict(classes=tuple(synthetic_scenes.CLASSES),
                    palette=[list(p) for p in synthetic_scenes.PALETTE])

    def __init__(self, img_suffix='_leftImg8bit.png', seg_map_suffix='_gtFine_labelTrainIds.png',
                 ignore_index=synthetic_scenes.IGNORE_INDEX, split_file=None, **kwargs):
        kwargs.setdefault('reduce_zero_label', False)
        self.split_file = split_file
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, **kwargs)

    def load_data_list(self):
        data_list = super().load_data_list()
        if self.split_file is None:
            return data_list
        by_id = {osp.basename(d['img_path'])[:-len(self.img_suffix)]: d for d in data_list}
        return [by_id[i] for i in read_split(self.split_file, available_ids=by_id)]

    def how_to_create(self, root):
        return f'Create it with: python tools/gen_synthetic_scenes.py --out {root or "ROOT"}'
