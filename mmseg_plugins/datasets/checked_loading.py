"""Loading transforms that fail with a message naming the file and what to do.

``LoadImageFromFileChecked`` / ``LoadAnnotationsChecked`` replace MMSeg's
``LoadImageFromFile`` / ``LoadAnnotations`` in densessl's configs:

- a missing or undecodable file raises an error naming the file;
- a label value outside ``[0, num_classes)`` that is not the ignore index (255) raises an
  error naming the file, the offending values and the valid range (MMSeg would otherwise
  train on it, or crash much later inside the loss with a CUDA assert).
"""
import os.path as osp

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


class DataFileError(RuntimeError):
    """A data set file is missing, corrupt or holds invalid values."""


def _check_exists(path, what):
    if not osp.isfile(path):
        raise DataFileError(f'{what} not found: {path}. Check data_root / data_prefix in the '
                            f'config, or re-create the data set.')


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    def transform(self, results):
        path = results['img_path']
        _check_exists(path, 'image file')
        try:
            out = super().transform(results)
        except Exception as e:
            raise DataFileError(f'cannot decode image file {path} ({e}). The file is corrupt or '
                                f'truncated: replace it or remove it from the data set.') from e
        if out is None or out.get('img') is None:
            raise DataFileError(f'cannot decode image file {path}: it is empty or corrupt.')
        return out


@TRANSFORMS.register_module()
class LoadAnnotationsChecked(LoadAnnotations):
    """``num_classes`` is checked against every label map; 255 (ignore) is allowed."""

    def __init__(self, num_classes, ignore_index=255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results):
        path = results['seg_map_path']
        _check_exists(path, 'label file')
        try:
            super()._load_seg_map(results)
        except Exception as e:
            raise DataFileError(f'cannot decode label file {path} ({e}). The file is corrupt or '
                                f'truncated: replace it or remove it from the data set.') from e
        seg = results['gt_seg_map']
        values = np.unique(seg)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if (values < 0).any() or bad.size:
            bad = np.concatenate([values[values < 0], bad])
            raise DataFileError(
                f'label file {path} holds value(s) {bad.tolist()[:10]} outside the valid range '
                f'[0, {self.num_classes}) and not the ignore index {self.ignore_index}. Convert '
                f'the labels to train ids (0..{self.num_classes - 1}, {self.ignore_index} = '
                f'ignore) or fix num_classes in the config.')
