"""Pixelwise structural tasks on NYU Depth v2, the original ViRB's layout under a
configurable data root::

    nyu/{train,test}/images/*.png      RGB frames
    nyu/{train,test}/depths/*.tiff     depth in metres (float32), 0 = no measurement
    nyu/{train,test}/walkable/*.png    walkable-surface masks (non-zero = walkable)

Files are paired by sorted order (as the original) after checking the counts agree. The
train images are augmented as the original's NYU readers do (``virb.tasks.augment``):
colour jitter (brightness, contrast, saturation 0.4, hue 0.2) and grayscale with p = 0.2,
the image only (the targets are not moved); task option ``augment: false`` turns it off.
``NYUDepth``: PixelShuffle decoder to 1 channel, L1 loss over pixels with depth, metric the
mean L1 error, LOWER IS BETTER. ``NYUWalkable``: 2 classes (not walkable / walkable), cross
entropy, metric the walkable class's IoU (the original: BCE and a thresholded IoU).
"""
import glob
import os.path as osp

import numpy as np
import torch
from PIL import Image

from virb.errors import VirbError
from virb.metrics import DepthL1, ForegroundIoU
from virb.tasks.augment import PixelAugmentation
from virb.tasks.base import Task
from virb.tasks.datasets import PairedDataset, read_label_map
from virb.tasks.pixel_semantic import SegmentationTask
from virb.tasks.registry import register_task

NYU_COLOR_JITTER, NYU_GRAYSCALE_P = (0.4, 0.4, 0.4, 0.2), 0.2
NYU_SOURCE = ('NYU Depth v2 comes from https://cs.nyu.edu/~silberman/datasets/'
              'nyu_depth_v2.html (the labelled set exported to {train,test}/images/*.png, '
              'depths/*.tiff and walkable/*.png).')


def nyu_pairs(task, split, target_dir, pattern):
    base = task.require(osp.join(task.root, split))
    images = sorted(glob.glob(osp.join(task.require(osp.join(base, 'images')), '*.png')))
    targets = sorted(glob.glob(osp.join(task.require(osp.join(base, target_dir)), pattern)))
    if len(images) != len(targets):
        raise VirbError(f'task {task.name}: {len(images)} images in {base}/images but '
                        f'{len(targets)} files in {base}/{target_dir}')
    return list(zip(images, targets))


def read_depth(path, size):
    """A float TIFF resized (bilinear) to ``size`` -> (1, H, W) float32."""
    with Image.open(path) as img:
        depth = img.convert('F').resize((size[1], size[0]), Image.BILINEAR)
    return torch.from_numpy(np.array(depth, dtype=np.float32))[None]


def nyu_augmentation(task):
    """The NYU tasks' train augmentation (photometric only), or None with ``augment: false``."""
    if not task.opts['augment']:
        return None
    return PixelAugmentation(color_jitter=NYU_COLOR_JITTER, grayscale_p=NYU_GRAYSCALE_P)


@register_task('NYUDepth')
class NYUDepth(Task):
    level, head, data_subdir, source = 'pixel', 'pixel_shuffle', 'nyu', NYU_SOURCE
    options = {'image_size': (224, 224), 'augment': True}

    def datasets(self):
        size = self.opts['image_size']
        return (PairedDataset(nyu_pairs(self, 'train', 'depths', '*.tiff'), read_depth, size,
                              self.train_augmentation()),
                PairedDataset(nyu_pairs(self, 'test', 'depths', '*.tiff'), read_depth, size))

    def train_augmentation(self):
        return nyu_augmentation(self)

    def num_outputs(self):
        return 1

    def loss(self, pred, target):
        valid = target > 0
        return (pred - target).abs()[valid].mean() if valid.any() else pred.sum() * 0

    def new_metric(self):
        return DepthL1()


@register_task('NYUWalkable')
class NYUWalkable(SegmentationTask):
    head, data_subdir, num_classes, source = 'pixel_shuffle', 'nyu', 2, NYU_SOURCE
    options = {'image_size': (224, 224), 'augment': True}
    _table = np.ones(256, dtype=np.int64)

    def pairs(self, split):
        return nyu_pairs(self, split, 'walkable', '*.png')

    def train_augmentation(self):
        return nyu_augmentation(self)

    def read_target(self, path, size):
        table = self._table.copy()
        table[0] = 0
        return read_label_map(path, size, table)

    def new_metric(self):
        return ForegroundIoU(self.ignore_index)
