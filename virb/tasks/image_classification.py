"""Image-level classification tasks (linear head on the embedding, cross entropy, top-1),
reading the original ViRB's on-disk layouts under a configurable data root:

==============  =================  ===============================================================
task            folder             layout
==============  =================  ===============================================================
Imagenet        imagenet/          {train,val}/<class>/*.JPEG
Pets            pets/              {train,test}/<class>/*.jpg
CalTech-101     caltech-101/       <class>/*.jpg + caltech101_{train,test}.json (lists of
                                   '<class>/<file>.jpg')
CIFAR-100       cifar-100/         train, test: the python pickles of cifar-100-python
                                   (b'data' (N, 3072) uint8, b'fine_labels')
SUN397          SUN397/            {train,test}/<class>/*.jpg
Eurosat         eurosat/           {train,test}/<class>/*.jpg
dtd             dtd/               {train,test}/<class>/*.jpg
==============  =================  ===============================================================

Class ids are the sorted class folder names of the train split (a test folder of a class
not in train is an error naming it). Images are resized to ``image_size`` (default 224 x
224, no crop, as the original) and ImageNet-normalised.
"""
import glob
import json
import os
import os.path as osp
import pickle

import numpy as np

from virb.errors import VirbError
from virb.metrics import Top1
from virb.tasks.base import Task, image_transform
from virb.tasks.datasets import ArrayClassDataset, ImageClassDataset
from virb.tasks.registry import register_task

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


class ImageClassificationTask(Task):
    """Base of the image-level classification readers: ``split_items(split)`` -> [(path,
    class id)]; the rest (datasets, head, metric) is shared."""
    level, head = 'image', 'linear'
    splits = ('train', 'test')

    def split_items(self, split):
        raise NotImplementedError

    def datasets(self):
        transform = image_transform(self.opts['image_size'])
        train, test = (self.split_items(s) for s in self.splits)
        for split, items in zip(self.splits, (train, test)):
            if not items:
                raise VirbError(f'task {self.name}: no images in the {split} split under '
                                f'{self.root}. {self.source}')
        self._num_classes = 1 + max(label for _, label in train)
        return ImageClassDataset(train, transform), ImageClassDataset(test, transform)

    def num_outputs(self):
        if not hasattr(self, '_num_classes'):
            self.datasets()
        return self._num_classes

    def new_metric(self):
        return Top1()


class ClassFolderTask(ImageClassificationTask):
    """``<root>/<split>/<class>/<image>``, classes from the train split's folder names."""

    def class_names(self):
        train = self.require(osp.join(self.root, self.splits[0]))
        return sorted(d for d in os.listdir(train) if osp.isdir(osp.join(train, d)))

    def split_items(self, split):
        classes = self.class_names()
        index = {c: i for i, c in enumerate(classes)}
        folder = self.require(osp.join(self.root, split))
        items = []
        for name in sorted(os.listdir(folder)):
            if not osp.isdir(osp.join(folder, name)):
                continue
            if name not in index:
                raise VirbError(f'task {self.name}: class folder {osp.join(folder, name)} has '
                                f'no counterpart in {self.splits[0]}/')
            items += [(p, index[name]) for p in sorted(glob.glob(osp.join(folder, name, '*')))
                      if p.lower().endswith(IMAGE_EXTENSIONS)]
        return items


@register_task('Imagenet')
class Imagenet(ClassFolderTask):
    data_subdir, splits = 'imagenet', ('train', 'val')
    source = ('ImageNet (ILSVRC 2012) comes from https://image-net.org (train/ and val/ '
              'sorted into one folder per class, e.g. with the valprep.sh script).')


@register_task('Pets')
class Pets(ClassFolderTask):
    data_subdir = 'pets'
    source = ('Oxford-IIIT Pets comes from https://www.robots.ox.ac.uk/~vgg/data/pets/ '
              '(images sorted into train/<breed>/ and test/<breed>/ by the official split).')


@register_task('SUN397')
class SUN397(ClassFolderTask):
    data_subdir = 'SUN397'
    source = ('SUN397 comes from https://vision.princeton.edu/projects/2010/SUN/ (sorted '
              'into train/<class>/ and test/<class>/ by a partition file).')


@register_task('Eurosat')
class Eurosat(ClassFolderTask):
    data_subdir = 'eurosat'
    source = ('EuroSAT (RGB) comes from https://github.com/phelber/EuroSAT (sorted into '
              'train/<class>/ and test/<class>/).')


@register_task('dtd')
class DTD(ClassFolderTask):
    data_subdir = 'dtd'
    source = ('DTD comes from https://www.robots.ox.ac.uk/~vgg/data/dtd/ (sorted into '
              'train/<class>/ and test/<class>/ by the split files).')


@register_task('CalTech-101')
class CalTech101(ImageClassificationTask):
    data_subdir = 'caltech-101'
    source = ('CalTech-101 comes from https://data.caltech.edu/records/mzrjq-6wc02 '
              '(101_ObjectCategories/* as caltech-101/<class>/, with the split lists '
              'caltech101_train.json / caltech101_test.json of \'<class>/<file>\' entries).')

    def split_items(self, split):
        list_file, names = self._split_names(split)
        classes = sorted({n.split('/')[0] for n in self._split_names('train')[1]})
        index = {c: i for i, c in enumerate(classes)}
        items = []
        for name in sorted(names):
            path = osp.join(self.root, name)
            if not osp.isfile(path):
                raise VirbError(f'task {self.name}: {list_file} lists {name}, but {path} '
                                f'does not exist')
            cls = name.split('/')[0]
            if cls not in index:
                raise VirbError(f'task {self.name}: {list_file}: class {cls!r} is not in '
                                f'the train list')
            items.append((path, index[cls]))
        return items

    def _split_names(self, split):
        """(the split's list file, its '<class>/<file>' entries)."""
        list_file = self.require(osp.join(self.root, f'caltech101_{split}.json'))
        with open(list_file) as f:
            return list_file, json.load(f)


@register_task('CIFAR-100')
class CIFAR100(ImageClassificationTask):
    data_subdir = 'cifar-100'
    source = ('CIFAR-100 comes from https://www.cs.toronto.edu/~kriz/cifar.html '
              '(cifar-100-python.tar.gz: its train and test pickles).')

    def _load(self, split):
        path = self.require(osp.join(self.root, split))
        with open(path, 'rb') as f:
            batch = pickle.load(f, encoding='bytes')
        try:
            data, labels = batch[b'data'], batch[b'fine_labels']
        except (KeyError, TypeError) as e:
            raise VirbError(f'task {self.name}: {path} is not a CIFAR-100 python pickle '
                            f"(no b'data' / b'fine_labels')") from e
        images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, np.asarray(labels, dtype=np.int64)

    def datasets(self):
        transform = image_transform(self.opts['image_size'])
        (xa, ya), (xb, yb) = self._load('train'), self._load('test')
        self._num_classes = int(ya.max()) + 1
        return ArrayClassDataset(xa, ya, transform), ArrayClassDataset(xb, yb, transform)
