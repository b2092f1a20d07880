"""MMSeg dataset ``SyntheticScenesDataset``: densessl's built-in synthetic street scenes.

The layout is Cityscapes' (written by ``densessl.synthetic_scenes``)::

    ROOT/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png

8 classes (``densessl.synthetic_scenes.CLASSES`` / ``PALETTE``), label 255 = ignore.
Create the set with ``python tools/gen_synthetic_scenes.py --out ROOT``.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from densessl import synthetic_scenes


class DatasetNotFoundError(FileNotFoundError):
    """The data set folder is missing or holds no images."""


@DATASETS.register_module()
class SyntheticScenesDataset(BaseSegDataset):
    METAINFO = dict(classes=tuple(synthetic_scenes.CLASSES),
                    palette=[list(p) for p in synthetic_scenes.PALETTE])

    def __init__(self, img_suffix='_leftImg8bit.png', seg_map_suffix='_gtFine_labelTrainIds.png',
                 ignore_index=synthetic_scenes.IGNORE_INDEX, **kwargs):
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, **kwargs)

    def _how_to_create(self, root):
        return f'Create it with: python tools/gen_synthetic_scenes.py --out {root}'

    def load_data_list(self):
        root = self.data_root or ''
        folder = self.data_prefix.get('img_path', '')
        if root and not osp.isdir(root):
            raise DatasetNotFoundError(
                f'SyntheticScenesDataset: data root {osp.abspath(root)} does not exist. '
                f'{self._how_to_create(root)} (or set data_root in the config / with '
                f'--cfg-options).')
        if not osp.isdir(folder):
            raise DatasetNotFoundError(
                f'SyntheticScenesDataset: image folder {osp.abspath(folder)} does not exist '
                f'(an incomplete data set?). {self._how_to_create(root or "ROOT")}')
        data_list = super().load_data_list()
        if not data_list:
            raise DatasetNotFoundError(
                f'SyntheticScenesDataset: no *{self.img_suffix} images under '
                f'{osp.abspath(folder)}. {self._how_to_create(root or "ROOT")}')
        return data_list
