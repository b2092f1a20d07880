"""``Task``: what the runner needs from a task, and the data-root check every reader uses.

A task says how to read its data (``datasets()`` -> train and test ``Dataset``s of
``(image (3, H, W) float, target)``), which head to train (``head``, ``num_outputs``), its
loss and its metric (``virb.metrics``), and whether its features can be encoded once
(``level == 'image'``). ``options`` are the task keys a config may set under
``options:`` (e.g. ``image_size``), with their defaults; anything else is an error.
``bug_switches`` are the task-specific ``bug_compat`` switches it takes (e.g. Cityscapes'
``cityscapes_void_class``); ``self.bug_compat`` holds every switch the run was given.
Pixelwise tasks augment their train split (``train_augmentation()``, ``virb.tasks.augment``).
"""
import os.path as osp

import torch
import torch.nn.functional as F
from torchvision.transforms import v2 as T

from virb.errors import VirbError
from virb.heads import build_head

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def unit_image_transform(size):
    """PIL image -> (3, H, W) float in [0, 1], resized to ``size`` (H, W) (not normalised:
    what augmentation works on, ``virb.tasks.augment``)."""
    return T.Compose([T.ToImage(), T.Resize(tuple(size), antialias=True),
                      T.ToDtype(torch.float32, scale=True)])


def normalize_image(image):
    """(3, H, W) float in [0, 1] -> ImageNet-normalised."""
    return T.functional.normalize(image, IMAGENET_MEAN, IMAGENET_STD)


def image_transform(size):
    """PIL image -> (3, H, W) float, resized to ``size`` (H, W), ImageNet-normalised."""
    return T.Compose([unit_image_transform(size), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class Task:
    name = None                 # set by register_task
    level = 'image'             # 'image': features can be encoded once; 'pixel': not
    head = 'linear'
    data_subdir = None          # default folder under the data root
    source = ''                 # where the data set comes from (for the missing-root error)
    options = {'image_size': (224, 224)}
    ignore_index = 255
    bug_switches = ()           # task-specific bug_compat switches this task takes

    def __init__(self, data_root, options=None, data_root_override=None, where='task',
                 bug_compat=()):
        options = dict(options or {})
        unknown = [k for k in options if k not in self.options]
        if unknown:
            raise VirbError(f'{where}.options.{unknown[0]}: unknown option of task '
                            f'{self.name}; it takes {", ".join(self.options) or "none"}')
        self.opts = {**self.options, **options}
        self.bug_compat = frozenset(bug_compat)
        self.where = where
        self.data_root = data_root or 'data'
        self.root = data_root_override or self.default_root()

    def default_root(self):
        """The task's folder when the config gives none: ``<data root>/<data_subdir>``."""
        return osp.join(self.data_root, self.data_subdir or '')

    # ------------------------------------------------------------------ data
    def require(self, *paths):
        """Raise a ``VirbError`` naming the first missing path and where the data comes
        from; returns the first path."""
        for path in paths:
            if not osp.exists(path):
                raise VirbError(
                    f'task {self.name}: {path} not found. {self.source} Put it under '
                    f'--data-root (default data/) as {self.data_subdir}/, or set data_root: '
                    f'for the task in the ViRB config')
        return paths[0]

    def datasets(self):
        """(train Dataset, test Dataset)."""
        raise NotImplementedError

    def num_outputs(self):
        raise NotImplementedError

    def train_augmentation(self):
        """The train split's ``PixelAugmentation`` (``virb.tasks.augment``), or None (the
        default: no augmentation)."""
        return None

    def preprocessing_id(self):
        """What the cached features depend on besides the encoder and the task's files."""
        return (f'{type(self).__name__}:{sorted(self.opts.items())}:'
                f'{sorted(self.bug_compat & set(self.bug_switches))}')

    # ------------------------------------------------------------------ model
    def build_head(self, encoder):
        return build_head(self.head, encoder.channels, self.num_outputs(), encoder=encoder)

    def loss(self, pred, target):
        return F.cross_entropy(pred, target)

    def new_metric(self):
        raise NotImplementedError
