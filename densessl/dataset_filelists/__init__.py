"""Pretraining file lists (VISSL ``disk_filelist`` .npy) from image folders of public data sets.

One module per data set registers a ``DatasetParser`` (``registry.py``); ``builder.py``
collects the images of the chosen splits and writes the list. CLI:
``python tools/gen_dataset_filelist.py --dataset coco=/data/coco --out filelists/coco.npy``.

Registered: ``coco`` (train + unlabeled by default), ``cityscapes`` (train by default).

Adding a data set (e.g. Mapillary Vistas):

1. create ``densessl/dataset_filelists/mapillary_vistas.py`` with::

       from densessl.dataset_filelists.registry import DatasetParser, register

       PARSER = register(DatasetParser(
           name='mapillary_vistas',
           splits={'train': 'training/images/*.jpg', 'val': 'validation/images/*.jpg'},
           default_splits=('train',), eval_splits=('val',),
           layout='  ROOT/training/images/*.jpg  ROOT/validation/images/*.jpg',
           source='https://www.mapillary.com/dataset/vistas'))

   (a data set whose images cannot be described by one glob per split subclasses
   ``DatasetParser`` and overrides ``list_images``);
2. import the module below;
3. add a fake tree for it to tests/test_dataset_filelist.py.
"""
from densessl.dataset_filelists import cityscapes, coco  # noqa: F401  (registration)
from densessl.dataset_filelists.builder import (EvalSplitWarning, choose_splits,  # noqa: F401
                                                collect_images, format_summary, parse_source,
                                                summary_path, write_filelist)
from densessl.dataset_filelists.registry import (PARSERS, DatasetParser,  # noqa: F401
                                                 FileListError, get_parser, register)

__all__ = ['PARSERS', 'DatasetParser', 'EvalSplitWarning', 'FileListError', 'choose_splits',
           'collect_images', 'format_summary', 'get_parser', 'parse_source', 'register',
           'summary_path', 'write_filelist']
