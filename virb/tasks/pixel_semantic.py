"""Pixelwise semantic tasks (cross entropy with the ignore index, dataset-level mIoU from
one confusion matrix), reading the original ViRB's layouts under a configurable data root:

===============================  ============  ====================================================
task                             folder        layout
===============================  ============  ====================================================
CityscapesSemanticSegmentation   cityscapes/   leftImg8bit/{train,val}/<city>/*_leftImg8bit.png,
                                               gtFine/{train,val}/<city>/*_gtFine_labelIds.png
Pets-Detection                   pets/         {train,test}/<breed>/*.jpg,
                                               annotations/trimaps/<stem>.png
EgoHands                         egohands/     images/<video>/*.jpg, labels/<video>/*.png
                                               (first 90% of the sorted files train, rest test)
===============================  ============  ====================================================

Cityscapes: labelIds are mapped to the 19 train ids and every other id (void, licence plate,
...) to the ignore index 255; the original mapped them to a class 0 it trained and
scored. The ``bug_compat`` switch ``cityscapes_void_class`` reproduces that: 20 classes
(void = 0, train id k = k + 1), void trained (no ignore index) and kept in the confusion
matrix but left out of the mean IoU (as the original's metric left class 0 out), crops
padded with void and their origin drawn over the unscaled size (the original's reader).
Pets-Detection: the trimap's pet pixels are class 1, background class 0, the uncertain
border ignored (the original merged the border with the background); the metric is the
pet's IoU. EgoHands: 5 classes (background, your left / right, my left / right), class
weights [0.1, 1, 1, 1, 1] as the original.

Images and labels are resized to ``image_size``; the train split is then augmented as the
original (``virb.tasks.augment``; the test split never is; task option ``augment: false``
turns it off):

- Cityscapes: random scale in ``scale_range`` (0.5, 2), left-right flip, a random
  ``crop_size`` window (default 112 x 112: the original's 450 x 450 crop of 1024 x 2048
  frames at the default ``image_size`` 256 x 512; ``image_size: [1024, 2048], crop_size:
  [450, 450]`` is the original's setting), padded with the ignore index;
- EgoHands: a random ``crop_size`` window (default 182 x 182: the original's 513 x 513 of
  720 x 1280 frames at ``image_size`` 256 x 448), drawn again until it holds more than one
  label (at most 10 times), no scale or flip (the original has them commented out);
- Pets-Detection: none (the original resizes only).
"""
import glob
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F

from virb.errors import VirbError
from virb.metrics import ForegroundIoU, MeanIoU
from virb.tasks.augment import PixelAugmentation, option_pair
from virb.tasks.base import Task
from virb.tasks.datasets import PairedDataset, read_label_map
from virb.tasks.registry import register_task

# Cityscapes labelIds -> train ids (19 classes), everything else ignored
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                        23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
# bug_compat: the original's 20 classes (its mapping_20): void 0, train id k -> k + 1
BUG_CITYSCAPES_VOID = 'cityscapes_void_class'
CITYSCAPES_VOID_CLASS_IDS = {label: train + 1 for label, train in CITYSCAPES_TRAIN_IDS.items()}
NO_IGNORE_INDEX = -100  # a label no pixel has: every pixel is trained and scored


def lookup_table(mapping, size=256, fill=255):
    table = np.full(size, fill, dtype=np.int64)
    for src, dst in mapping.items():
        table[src] = dst
    return table


class SegmentationTask(Task):
    """Base of the pixelwise semantic tasks: ``pairs(split)`` -> [(image, label file)],
    ``read_target(path, size)`` -> (H, W) int64 with ``ignore_index``."""
    level, head = 'pixel', 'deeplab'
    num_classes = None
    splits = ('train', 'test')
    class_weights = None

    def pairs(self, split):
        raise NotImplementedError

    def read_target(self, path, size):
        return read_label_map(path, size)

    def datasets(self):
        size = self.opts['image_size']
        out = []
        for split in self.splits:
            pairs = self.pairs(split)
            if not pairs:
                raise VirbError(f'task {self.name}: no images in the {split} split under '
                                f'{self.root}. {self.source}')
            augment = self.train_augmentation() if split == self.splits[0] else None
            out.append(PairedDataset(pairs, self.read_target, size, augment))
        return tuple(out)

    def num_outputs(self):
        return self.num_classes

    def loss(self, pred, target):
        weight = (None if self.class_weights is None else
                  torch.tensor(self.class_weights, device=pred.device, dtype=pred.dtype))
        return F.cross_entropy(pred, target, weight=weight, ignore_index=self.ignore_index)

    def new_metric(self):
        return MeanIoU(self.num_classes, self.ignore_index)


def matched_pairs(task, images, labels, image_suffix, label_suffix):
    """Pair sorted image and label files by their stem (the name before the suffixes); an
    image without a label is an error naming it."""
    by_stem = {osp.basename(p)[:-len(label_suffix)]: p for p in labels}
    pairs = []
    for image in images:
        stem = osp.basename(image)[:-len(image_suffix)]
        if stem not in by_stem:
            raise VirbError(f'task {task.name}: no label file *{label_suffix} for {image}')
        pairs.append((image, by_stem[stem]))
    return pairs


@register_task('CityscapesSemanticSegmentation')
class CityscapesSemanticSegmentation(SegmentationTask):
    data_subdir, num_classes, splits = 'cityscapes', 19, ('train', 'val')
    source = ('Cityscapes comes from https://www.cityscapes-dataset.com (leftImg8bit_'
              'trainvaltest.zip and gtFine_trainvaltest.zip, unpacked side by side).')
    options = {'image_size': (256, 512), 'augment': True, 'scale_range': (0.5, 2.0),
               'crop_size': (112, 112)}
    bug_switches = (BUG_CITYSCAPES_VOID,)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.void_is_a_class = BUG_CITYSCAPES_VOID in self.bug_compat
        if self.void_is_a_class:
            self.num_classes, self.ignore_index = 20, NO_IGNORE_INDEX
            self._table = lookup_table(CITYSCAPES_VOID_CLASS_IDS, fill=0)
        else:
            self._table = lookup_table(CITYSCAPES_TRAIN_IDS)

    def pairs(self, split):
        images = sorted(glob.glob(osp.join(self.require(
            osp.join(self.root, 'leftImg8bit', split)), '*', '*_leftImg8bit.png')))
        labels = sorted(glob.glob(osp.join(self.require(
            osp.join(self.root, 'gtFine', split)), '*', '*_gtFine_labelIds.png')))
        return matched_pairs(self, images, labels, '_leftImg8bit.png', '_gtFine_labelIds.png')

    def read_target(self, path, size):
        return read_label_map(path, size, self._table)

    def train_augmentation(self):
        if not self.opts['augment']:
            return None
        where = f'{self.where}.options'
        return PixelAugmentation(scale_range=option_pair(self.opts['scale_range'],
                                                         f'{where}.scale_range', float),
                                 flip=True,
                                 crop_size=option_pair(self.opts['crop_size'],
                                                       f'{where}.crop_size'),
                                 crop_origin_unscaled=self.void_is_a_class,
                                 target_fill=0 if self.void_is_a_class else self.ignore_index)

    def new_metric(self):
        return MeanIoU(self.num_classes, self.ignore_index,
                       excluded_classes=(0,) if self.void_is_a_class else ())


@register_task('Pets-Detection')
class PetsDetection(SegmentationTask):
    data_subdir, num_classes, head = 'pets', 2, 'pixel_shuffle'
    source = ('Oxford-IIIT Pets comes from https://www.robots.ox.ac.uk/~vgg/data/pets/ '
              '(images in train/<breed>/, test/<breed>/; annotations/trimaps/ from '
              'annotations.tar.gz).')
    _table = lookup_table({1: 1, 2: 0, 3: 255})  # trimap: 1 pet, 2 background, 3 border

    def pairs(self, split):
        folder = self.require(osp.join(self.root, split))
        trimaps = self.require(osp.join(self.root, 'annotations', 'trimaps'))
        pairs = []
        for image in sorted(glob.glob(osp.join(folder, '*', '*.jpg'))):
            label = osp.join(trimaps, osp.splitext(osp.basename(image))[0] + '.png')
            if not osp.isfile(label):
                raise VirbError(f'task {self.name}: no trimap {label} for {image}')
            pairs.append((image, label))
        return pairs

    def read_target(self, path, size):
        return read_label_map(path, size, self._table)

    def new_metric(self):
        return ForegroundIoU(self.ignore_index)


@register_task('EgoHands')
class EgoHands(SegmentationTask):
    data_subdir, num_classes = 'egohands', 5
    options = {'image_size': (256, 448), 'augment': True, 'crop_size': (182, 182)}
    class_weights = (0.1, 1.0, 1.0, 1.0, 1.0)
    source = ('EgoHands comes from http://vision.soic.indiana.edu/projects/egohands/ '
              '(frames as images/<video>/*.jpg, masks rendered to labels/<video>/*.png with '
              'ids 0 background, 1 your left, 2 your right, 3 my left, 4 my right).')

    def pairs(self, split):
        images = sorted(glob.glob(osp.join(self.require(osp.join(self.root, 'images')),
                                           '*', '*.jpg')))
        labels = sorted(glob.glob(osp.join(self.require(osp.join(self.root, 'labels')),
                                           '*', '*.png')))
        if len(images) != len(labels):
            raise VirbError(f'task {self.name}: {len(images)} images but {len(labels)} '
                            f'label files under {self.root}')
        cut = int(0.9 * len(images))
        pairs = list(zip(images, labels))
        return pairs[:cut] if split == 'train' else pairs[cut:]

    def train_augmentation(self):
        if not self.opts['augment']:
            return None
        return PixelAugmentation(crop_size=option_pair(self.opts['crop_size'],
                                                       f'{self.where}.options.crop_size'),
                                 target_fill=self.ignore_index, min_target_values=2)
