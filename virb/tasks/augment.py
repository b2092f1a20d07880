"""Training-time augmentation of pixelwise tasks: an image and its dense target transformed
together (the target with nearest-neighbour resampling), as the original ViRB's pixelwise
data sets do. The test split is never augmented.

``PixelAugmentation`` is applied to one sample after it was resized to the task's
``image_size`` and before the image is normalised:

    image (3, H, W) float in [0, 1], target (H, W) int64 ids | (1, H, W) float
        -> image (3, h, w), target (h, w) | (1, h, w)

with ``(h, w) = crop_size`` when a crop is set, else ``(H, W)``. Steps, in the original's
order:

1. ``scale_range`` (lo, hi): rescale by one factor drawn uniformly from [lo, hi] (image
   bilinear, target nearest);
2. ``flip``: mirror left-right with probability 0.5;
3. ``crop_size`` (h, w): a random window of that size. Its origin is drawn over the scaled
   size, and where the scaled sample is smaller than the window it is padded: the image
   with 0 (black), the target with ``target_fill`` (the task's ignore index, so padding is
   not trained). ``crop_origin_unscaled`` draws the origin over the size before step 1
   instead: the original Cityscapes reader's behaviour (a scale > 1 then only ever crops
   the top-left part; a scale < 1 pads); used by its ``bug_compat`` switch.
   ``min_target_values``: draw the window again (at most ``max_tries`` times, then keep
   the last) until the target holds at least that many distinct values besides the fill
   (the original EgoHands reader re-draws until a crop holds more than background);
4. ``color_jitter`` (brightness, contrast, saturation, hue) and ``grayscale_p``: photometric
   changes of the image only (the original NYU readers: (0.4, 0.4, 0.4, 0.2), p = 0.2).

Random numbers come from torch's global generator, which the training loop seeds.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2 as T

from virb.errors import VirbError


@dataclass(frozen=True)
class PixelAugmentation:
    scale_range: tuple = None          # (lo, hi) or None
    flip: bool = False
    crop_size: tuple = None            # (h, w) or None
    crop_origin_unscaled: bool = False
    target_fill: float = 255
    min_target_values: int = 1
    max_tries: int = 10
    color_jitter: tuple = None         # (brightness, contrast, saturation, hue) or None
    grayscale_p: float = 0.0

    def __call__(self, image, target):
        size = tuple(image.shape[-2:])
        if self.scale_range is not None:
            lo, hi = self.scale_range
            factor = lo + (hi - lo) * float(torch.rand(()))
            image, target = rescale(image, target, factor)
        if self.flip and float(torch.rand(())) < 0.5:
            image, target = image.flip(-1), target.flip(-1)
        if self.crop_size is not None:
            image, target = self._crop(image, target, size)
        return self._photometric(image), target

    def _crop(self, image, target, unscaled_size):
        origin_room = unscaled_size if self.crop_origin_unscaled else tuple(image.shape[-2:])
        h, w = self.crop_size
        for _ in range(max(1, self.max_tries)):
            top = int(torch.randint(0, max(0, origin_room[0] - h) + 1, ()))
            left = int(torch.randint(0, max(0, origin_room[1] - w) + 1, ()))
            image_crop = crop_padded(image, top, left, h, w, 0.0)
            target_crop = crop_padded(target, top, left, h, w, self.target_fill)
            values = target_crop.unique()
            if int((values != self.target_fill).sum()) >= self.min_target_values:
                break
        return image_crop, target_crop

    def _photometric(self, image):
        if self.color_jitter is not None:
            image = T.ColorJitter(*self.color_jitter)(image)
        if self.grayscale_p > 0 and float(torch.rand(())) < self.grayscale_p:
            image = T.functional.rgb_to_grayscale(image, num_output_channels=3)
        return image


def option_pair(value, where, cast=int):
    """A task option that is two numbers (``crop_size: [h, w]``, ``scale_range: [lo, hi]``)
    -> a tuple of ``cast``; ``VirbError`` naming ``where`` otherwise."""
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                       for v in value)):
        example = '[112, 112]' if cast is int else '[0.5, 2.0]'
        raise VirbError(f'{where}: two positive numbers, e.g. {example} (found {value!r})')
    return tuple(cast(v) for v in value)


def rescale(image, target, factor):
    """image (3, H, W) bilinear, target (H, W) / (1, H, W) nearest, both to
    ``round(factor * (H, W))`` (at least 1 x 1)."""
    height, width = image.shape[-2:]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    image = F.interpolate(image[None], size=size, mode='bilinear', align_corners=False,
                          antialias=factor < 1)[0]
    squeeze = target.dim() == 2
    resized = F.interpolate((target[None, None] if squeeze else target[None]).float(),
                            size=size, mode='nearest-exact')[0]
    resized = resized[0] if squeeze else resized
    return image, resized.to(target.dtype)


def crop_padded(tensor, top, left, height, width, fill):
    """The window [top, top + height) x [left, left + width) of a (..., H, W) tensor; the
    part outside the tensor is ``fill``."""
    out = torch.full((*tensor.shape[:-2], height, width), fill, dtype=tensor.dtype)
    src = tensor[..., top:top + height, left:left + width]
    out[..., :src.shape[-2], :src.shape[-1]] = src
    return out
