"""MMSeg dataset ``SyntheticScenesDataset``: the built-in synthetic street scenes.

Cityscapes layout (``densessl.synthetic_scenes``): images ``leftImg8bit/<split>/<city>/
*_leftImg8bit.png``, labels ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``, 8 classes,
255 = ignore.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from densessl import synthetic_scenes


@DATASETS.register_module()
class SyntheticScenesDataset(BaseSegDataset):
    METAINFO = dict(classes=synthetic_scenes.CLASSES, palette=[list(p) for p in
                                                               synthetic_scenes.PALETTE])

    def __init__(self, img_suffix='_leftImg8bit.png', seg_map_suffix='_gtFine_labelTrainIds.png',
                 **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=False, **kwargs)

    def load_data_list(self):
        folder = self.data_prefix.get('img_path', '')
        if not osp.isdir(folder):
            root = self.data_root or osp.dirname(osp.dirname(folder))
            raise FileNotFoundError(
                f'SyntheticScenesDataset: image folder {folder} does not exist. Generate the '
                f'data set with: python tools/gen_synthetic_scenes.py --out {root}')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(f'SyntheticScenesDataset: no *{self.img_suffix} images in '
                                    f'{folder}')
        return data_list
