"""MMSeg dataset ``COCOStuffCoarseDataset``: COCO-Stuff-27 (27 supercategories), ViCE's layout.

Written by ``tools/convert_datasets/coco_stuff164k_coarse.py`` (see docs/datasets.md)::

    ROOT/images_coarse/{train2017,val2017}/<id>.jpg                      (links)
    ROOT/annotations_coarse/{train2017,val2017}/<id>_labelTrainIds_27.png  (links)

Labels: train ids 0-26 (``densessl.coco_stuff_coarse_classes.CLASSES``: 12 thing then 15 stuff
supercategories), 255 = ignore.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from densessl import coco_stuff_coarse_classes as coarse
from mmseg_plugins.datasets.synthetic_scenes import DatasetNotFoundError

HOW_TO_CREATE = ('Create it with: python tools/convert_datasets/coco_stuff164k_coarse.py '
                 '<coco_stuff164k root> --train-list <curated train list> --val-list '
                 '<curated val list> -o {root} (docs/datasets.md, "COCO-Stuff-27")')


@DATASETS.register_module()
class COCOStuffCoarseDataset(BaseSegDataset):
    METAINFO = dict(classes=coarse.CLASSES, palette=[list(p) for p in coarse.PALETTE])

    def __init__(self, img_suffix='.jpg', seg_map_suffix=coarse.LABEL_SUFFIX,
                 ignore_index=coarse.IGNORE_INDEX, **kwargs):
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, **kwargs)

    def _error(self, what):
        root = osp.abspath(self.data_root) if self.data_root else 'ROOT'
        return DatasetNotFoundError(f'COCOStuffCoarseDataset: {what}. '
                                    + HOW_TO_CREATE.format(root=root)
                                    + ' (or set data_root in the config / with --cfg-options).')

    def load_data_list(self):
        root = self.data_root or ''
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = self.data_prefix.get('seg_map_path')  # None: images only (no labels)
        if root and not osp.isdir(root):
            raise self._error(f'data root {osp.abspath(root)} does not exist')
        if not osp.isdir(img_dir):
            raise self._error(f'image folder {osp.abspath(img_dir)} does not exist')
        if seg_dir is not None and not osp.isdir(seg_dir):
            raise self._error(f'label folder {osp.abspath(seg_dir)} does not exist')
        data_list = super().load_data_list()
        if not data_list:
            raise self._error(f'no *{self.img_suffix} images under {osp.abspath(img_dir)}')
        # isfile follows links: a dangling link (label map deleted) counts as missing
        missing = [info['seg_map_path'] for info in data_list
                   if 'seg_map_path' in info and not osp.isfile(info['seg_map_path'])]
        if missing:
            raise self._error(
                f'{len(missing)} of {len(data_list)} images have no label file (or a broken '
                f'link), e.g. {missing[0]}; an interrupted conversion? Re-run the converter')
        return data_list
