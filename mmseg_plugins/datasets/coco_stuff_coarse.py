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
from mmseg_plugins.datasets.checked_folders import CheckedFoldersMixin

HOW_TO_CREATE = ('Create it with: python tools/convert_datasets/coco_stuff164k_coarse.py '
                 '<coco_stuff164k root> --train-list <curated train list> --val-list '
                 '<curated val list> -o {root} (docs/datasets.md, "COCO-Stuff-27")')


@DATASETS.register_module()
class COCOStuffCoarseDataset(CheckedFoldersMixin, BaseSegDataset):
    METAINFO = dict(classes=coarse.CLASSES, palette=[list(p) for p in coarse.PALETTE])

    def __init__(self, img_suffix='.jpg', seg_map_suffix=coarse.LABEL_SUFFIX,
                 ignore_index=coarse.IGNORE_INDEX, **kwargs):
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, **kwargs)

    def how_to_create(self, root):
        return HOW_TO_CREATE.format(root=osp.abspath(root) if root else 'ROOT')

    def required_folders(self):
        seg_dir = self.data_prefix.get('seg_map_path')  # None: images only (no labels)
        return super().required_folders() + ([] if seg_dir is None else
                                             [('label folder', seg_dir)])

    def load_data_list(self):
        data_list = super().load_data_list()
        # isfile follows links: a dangling link (label map deleted) counts as missing
        missing = [info['seg_map_path'] for info in data_list
                   if 'seg_map_path' in info and not osp.isfile(info['seg_map_path'])]
        if missing:
            raise self.not_found(
                f'{len(missing)} of {len(data_list)} images have no label file (or a broken '
                f'link), e.g. {missing[0]}; an interrupted conversion? Re-run the converter')
        return data_list
