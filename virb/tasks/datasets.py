"""Generic datasets the readers build on: a list of (image file, class id) and a list of
(image file, target file) pairs, read with PIL."""
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from virb.tasks.base import normalize_image, unit_image_transform


class ImageClassDataset(Dataset):
    """items [(image path, class id)] -> (image tensor, class id)."""

    def __init__(self, items, transform):
        self.items, self.transform = list(items), transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with Image.open(path) as img:
            return self.transform(img.convert('RGB')), torch.tensor(label, dtype=torch.long)


class ArrayClassDataset(Dataset):
    """images uint8 (N, H, W, 3), labels (N,) -> (image tensor, class id) (CIFAR)."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return self.transform(img), torch.tensor(int(self.labels[i]), dtype=torch.long)


class PairedDataset(Dataset):
    """pairs [(image path, target path)] -> (image (3, h, w) float, ImageNet-normalised,
    target). The image is resized to ``size`` (H, W); ``load_target(path, size) -> tensor``
    reads the target resized to ``size`` ((H, W) int64 ids or (1, H, W) float).
    ``augment`` (the train split only; ``virb.tasks.augment.PixelAugmentation``):
    ``(image (3, H, W) in [0, 1], target) -> (image (3, h, w), target (.., h, w))``, applied
    before the image is normalised."""

    def __init__(self, pairs, load_target, size, augment=None):
        self.pairs, self.load_target, self.size = list(pairs), load_target, tuple(size)
        self.to_tensor, self.augment = unit_image_transform(self.size), augment

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        image_path, target_path = self.pairs[i]
        with Image.open(image_path) as img:
            image = self.to_tensor(img.convert('RGB'))
        target = self.load_target(target_path, self.size)
        if self.augment is not None:
            image, target = self.augment(image, target)
        return normalize_image(image), target


def read_label_map(path, size, lookup=None):
    """A label PNG resized (nearest) to ``size`` (H, W) -> (H, W) int64; ``lookup`` (an
    int array indexed by the file's values) maps ids (e.g. Cityscapes labelIds -> trainIds)."""
    with Image.open(path) as img:
        arr = np.array(img.resize((size[1], size[0]), Image.NEAREST)).astype(np.int64)
    if lookup is not None:
        arr = lookup[np.clip(arr, 0, len(lookup) - 1)]
    return torch.from_numpy(arr)
