"""COCO 2017 for pretraining: train2017 + unlabeled2017 by default (ViCE exp27's ~241.7k images).

val2017 holds the COCO-Stuff-27 evaluation images and test2017 the test-dev images: both are
evaluation splits, used only when asked for by name.
"""
from densessl.dataset_filelists.registry import DatasetParser, register

PARSER = register(DatasetParser(
    name='coco',
    splits={'train': 'train2017/*.jpg', 'unlabeled': 'unlabeled2017/*.jpg',
            'val': 'val2017/*.jpg', 'test': 'test2017/*.jpg'},
    default_splits=('train', 'unlabeled'),
    eval_splits=('val', 'test'),
    layout='  ROOT/train2017/*.jpg  ROOT/unlabeled2017/*.jpg  (ROOT/val2017, ROOT/test2017)',
    source='https://cocodataset.org/#download (2017 Train images, 2017 Unlabeled images)',
))
