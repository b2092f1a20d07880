"""Cityscapes for pretraining: leftImg8bit/train by default (2,975 images).

ViCE's original parser globbed ``leftImg8bit/*/*/*.png``, i.e. train + val + test, so the
500 validation images it is evaluated on were seen during pretraining. Here val and test are
evaluation splits, used only when asked for by name; ``train_extra`` (the 19,998 coarse
images of leftImg8bit_trainextra.zip) can be added with ``--splits train train_extra``.
"""
from densessl.dataset_filelists.registry import DatasetParser, register

PARSER = register(DatasetParser(
    name='cityscapes',
    splits={split: f'leftImg8bit/{split}/*/*_leftImg8bit.png'
            for split in ('train', 'train_extra', 'val', 'test')},
    default_splits=('train',),
    eval_splits=('val', 'test'),
    layout='  ROOT/leftImg8bit/{train,train_extra,val,test}/<city>/*_leftImg8bit.png',
    source='https://www.cityscapes-dataset.com/downloads/ (leftImg8bit_trainvaltest.zip; '
           'leftImg8bit_trainextra.zip for train_extra)',
))
