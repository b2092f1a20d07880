"""SlotCon's two overlapping views of one image: crops, overlap boxes, flips, colour augmentation.

Spec: ../shared/specs/pretrain.md 2(a) "Augmentations" (the original's ``CustomTwoCrop``,
``CustomRandomHorizontalFlip`` and ``CustomDataAugmentation``). One image gives two views:

1. **Crop 1** like torchvision's ``RandomResizedCrop``: up to 10 draws of a target area
   ``A_t = U(scale) * W * H`` and an aspect ratio ``r = exp(U(log ratio))``, giving
   ``w = round(sqrt(A_t r))``, ``h = round(sqrt(A_t / r))``; the first that fits is placed
   uniformly; otherwise the centre crop of the whole image clamped to ``ratio``.
2. **Crop 2** the same, but a fitting draw is accepted only if its intersection with crop 1
   covers ``|c1 & c2| >= min_overlap * A_t`` (``A_t`` of this draw, before rounding; 1 %), for
   up to ``tries`` draws; otherwise crop 2 falls back to an unconstrained crop (step 1).
3. **Overlap box.** With crop ``v`` = ``(x0_v, y0_v, x1_v, y1_v)`` in image pixels and the
   intersection ``(X0, Y0, X1, Y1)``, view ``v``'s box is the intersection in that view's
   normalised coordinates: ``((X0 - x0_v) / w_v, (Y0 - y0_v) / h_v, (X1 - x0_v) / w_v,
   (Y1 - y0_v) / h_v)`` in ``[0, 1]``. Output pixel ``u`` (of ``S``) of view ``v`` shows image
   ``x = x0_v + u * w_v / S``, so box * S is the overlap in view pixels.
4. **Flip** each view with ``flip_p``: the view is mirrored, its box becomes
   ``(1 - x2, y1, 1 - x1, y2)`` and its flag is set (``align_to_overlap`` flips back).
5. **Photometric, per view** (asymmetric by default): ColorJitter(0.4, 0.4, 0.2, 0.1) with
   p 0.8 (the four adjustments in random order), grayscale p 0.2, Gaussian blur sigma
   ``U(0.1, 2)`` with p 1.0 (view 1) / 0.1 (view 2), solarize (threshold 128) p 0 / 0.2,
   ``ToTensor`` and ImageNet normalisation.

**A pair without overlap** (decided here; the original does not handle it): when the
unconstrained fallback of step 2 does not intersect crop 1 at all, the original returns an
inverted box (``x2 < x1``) that ``roi_align`` samples as if it were a region, so the grouping
loss silently compares unrelated pixels. Here such a pair is never returned: the whole pair
(crop 1 and crop 2) is drawn again from the same random stream, up to ``pair_draws`` times,
and after that :class:`NoOverlapError` says which settings to change. (With the defaults on a
640 x 480 image, 6 of 200,000 pairs needed the fallback and all 6 still overlapped, so ten
failed pairs in a row take extreme images or settings.) So every
returned box has ``x1 < x2`` and ``y1 < y2``; the fallback crop may still overlap crop 1 by
less than ``min_overlap`` (as in the original).

**Randomness.** Every decision (crop sizes, positions, flips, jitter factors and order, the
grayscale / blur / solarize coin flips and the blur sigma) is drawn from the one
``numpy.random.Generator`` passed in, in a fixed order; the torchvision / PIL operations
applied are deterministic. A sample is therefore a pure function of the generator's seed
(the data set seeds it with ``(seed, epoch, index)``), and the global RNGs are never touched.
Every coin flip draws ``rng.random()`` even when its probability is 0 or 1, so changing a
probability does not shift the stream of the other decisions.

Differences from the original (CVMI-Lab/SlotCon data/transforms.py), all deliberate:

- a pair without overlap is redrawn instead of returned with an inverted box (above);
- all draws come from the injected generator (the original mixes Python's ``random``,
  torchvision's torch-global draws and ``torch.rand``); the distributions are the same;
- the centre-crop fallback of a crop keeps at least 1 px per side (torchvision's can round a
  side of a very thin image to 0 px).
"""
import dataclasses
import math

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_DRAWS = 10  # torchvision's RandomResizedCrop draws per crop before its centre fallback


class InvalidTwoCropOption(ValueError):
    """An option out of range; ``field`` names it (plugins translate it to their config key)."""

    def __init__(self, field, message):
        super().__init__(f'{field}: {message}')
        self.field = field
        self.reason = message


class NoOverlapError(RuntimeError):
    """No crop pair with a non-empty overlap after ``pair_draws`` draws."""


@dataclasses.dataclass(frozen=True)
class ViewPhotometric:
    """Photometric augmentation of one view; probabilities in [0, 1]."""
    jitter_p: float = 0.8
    brightness: float = 0.4   # factor U(max(0, 1 - b), 1 + b)
    contrast: float = 0.4     # factor U(max(0, 1 - c), 1 + c)
    saturation: float = 0.2   # factor U(max(0, 1 - s), 1 + s)
    hue: float = 0.1          # shift U(-h, h), h <= 0.5
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple = (0.1, 2.0)  # PIL GaussianBlur radius (= standard deviation), U(range)
    solarize_p: float = 0.0
    solarize_threshold: int = 128   # pixels >= threshold are inverted

    def check(self, view):
        def bad(name, why):
            raise InvalidTwoCropOption(f'{view}.{name}', f'{getattr(self, name)!r}: {why}')
        for name in ('jitter_p', 'grayscale_p', 'blur_p', 'solarize_p'):
            if not 0 <= getattr(self, name) <= 1:
                bad(name, 'a probability must lie in [0, 1]')
        for name in ('brightness', 'contrast', 'saturation'):
            if getattr(self, name) < 0:
                bad(name, 'a jitter strength must be >= 0')
        if not 0 <= self.hue <= 0.5:
            bad('hue', 'the hue jitter must lie in [0, 0.5]')
        if len(self.blur_sigma) != 2 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            bad('blur_sigma', 'must be [low, high] with 0 < low <= high')
        if not 0 <= self.solarize_threshold <= 256:
            bad('solarize_threshold', 'must lie in [0, 256] (8-bit pixel values)')


@dataclasses.dataclass(frozen=True)
class TwoCropOptions:
    """SlotCon's two-crop augmentation; defaults = the original's (spec 2(a))."""
    size: int = 224                       # output side S of both views (px)
    scale: tuple = (0.08, 1.0)            # crop area / image area, U(range)
    ratio: tuple = (3 / 4, 4 / 3)         # crop aspect ratio w / h, log-uniform
    min_overlap: float = 0.01             # |crop1 & crop2| >= min_overlap * target area of crop 2
    tries: int = 10                       # constrained draws of crop 2 before the fallback
    pair_draws: int = 10                  # pairs drawn before NoOverlapError (see module doc)
    flip_p: float = 0.5                   # horizontal flip per view
    view1: ViewPhotometric = ViewPhotometric(blur_p=1.0)
    view2: ViewPhotometric = ViewPhotometric(blur_p=0.1, solarize_p=0.2)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def check(self):
        """Raise :class:`InvalidTwoCropOption` for the first option out of range."""
        def bad(name, why):
            raise InvalidTwoCropOption(name, f'{getattr(self, name)!r}: {why}')
        if self.size < 1:
            bad('size', 'must be >= 1 px')
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            bad('scale', 'must be [min, max] with 0 < min <= max <= 1')
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            bad('ratio', 'must be [min, max] with 0 < min <= max')
        if not 0 <= self.min_overlap <= 1:
            bad('min_overlap', 'must lie in [0, 1] (a fraction of crop 2\'s target area)')
        if self.tries < 0:
            bad('tries', 'must be >= 0')
        if self.pair_draws < 1:
            bad('pair_draws', 'must be >= 1')
        if not 0 <= self.flip_p <= 1:
            bad('flip_p', 'a probability must lie in [0, 1]')
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            bad('std', 'mean and std need 3 values each, std > 0')
        self.view1.check('view1')
        self.view2.check('view2')
        return self


@dataclasses.dataclass
class TwoCropViews:
    """The two views of one image."""
    views: torch.Tensor  # (2, 3, S, S) float32, normalised; views[0] = view 1, views[1] = view 2
    boxes: torch.Tensor  # (2, 4) float32, overlap (x1, y1, x2, y2) in each view's [0, 1] coords,
    #                      mirrored where the view is flipped
    flipped: torch.Tensor  # (2,) bool
    crops: np.ndarray      # (2, 4) int64, crops (x0, y0, x1, y1) in image px (exclusive x1, y1)


def _draw_size(width, height, scale, ratio, rng):
    """One draw ``(w, h, target_area)`` of RandomResizedCrop; ``w, h`` may not fit."""
    target_area = width * height * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    return (int(round(math.sqrt(target_area * aspect))),
            int(round(math.sqrt(target_area / aspect))), target_area)


def _place(width, height, w, h, rng):
    """Crop ``(x0, y0, x1, y1)`` of size ``w x h`` placed uniformly in the image."""
    y0 = int(rng.integers(0, height - h + 1))
    x0 = int(rng.integers(0, width - w + 1))
    return (x0, y0, x0 + w, y0 + h)


def sample_crop(width, height, scale, ratio, rng):
    """A RandomResizedCrop crop ``(x0, y0, x1, y1)`` (image px) of a ``width x height`` image."""
    for _ in range(CROP_DRAWS):
        w, h, _ = _draw_size(width, height, scale, ratio, rng)
        if 0 < w <= width and 0 < h <= height:
            return _place(width, height, w, h, rng)
    in_ratio = width / height  # centre crop, aspect clamped to ratio (at least 1 px)
    if in_ratio < min(ratio):
        w, h = width, max(1, int(round(width / min(ratio))))
    elif in_ratio > max(ratio):
        w, h = max(1, int(round(height * max(ratio)))), height
    else:
        w, h = width, height
    x0, y0 = (width - w) // 2, (height - h) // 2
    return (x0, y0, x0 + w, y0 + h)


def intersection_area(a, b):
    """Pixel area of the intersection of crops ``a`` and ``b`` ``(x0, y0, x1, y1)``; 0 if apart."""
    return (max(0, min(a[2], b[2]) - max(a[0], b[0])) *
            max(0, min(a[3], b[3]) - max(a[1], b[1])))


def sample_overlapping_crop(width, height, first, scale, ratio, min_overlap, tries, rng):
    """Crop 2 given crop ``first``: ``(crop, constrained)``.

    Up to ``tries`` draws; a fitting draw with ``intersection >= min_overlap * target_area`` is
    returned with ``constrained=True``. Otherwise (``constrained=False``) an unconstrained
    :func:`sample_crop`, which may overlap ``first`` less, or not at all.
    """
    for _ in range(tries):
        w, h, target_area = _draw_size(width, height, scale, ratio, rng)
        if 0 < w <= width and 0 < h <= height:
            crop = _place(width, height, w, h, rng)
            if intersection_area(crop, first) >= min_overlap * target_area:
                return crop, True
    return sample_crop(width, height, scale, ratio, rng), False


def sample_crop_pair(width, height, options, rng):
    """``(crop1, crop2)`` with a non-empty intersection (module doc: "A pair without overlap").

    Raises :class:`NoOverlapError` after ``options.pair_draws`` pairs without overlap.
    """
    o = options
    for _ in range(o.pair_draws):
        first = sample_crop(width, height, o.scale, o.ratio, rng)
        second, _ = sample_overlapping_crop(width, height, first, o.scale, o.ratio,
                                            o.min_overlap, o.tries, rng)
        if intersection_area(first, second) > 0:
            return first, second
    raise NoOverlapError(
        f'no pair of crops of a {width}x{height} image overlapped in {o.pair_draws} draws '
        f'(scale {tuple(o.scale)}, ratio {tuple(o.ratio)}). Use a larger min scale or more '
        f'pair draws, or drop images with an extreme aspect ratio.')


def overlap_boxes(first, second):
    """(2, 4) float32: the crops' intersection in each crop's normalised coordinates.

    Row ``v`` is ``((X0 - x0_v) / w_v, (Y0 - y0_v) / h_v, (X1 - x0_v) / w_v, (Y1 - y0_v) / h_v)``
    for the intersection ``(X0, Y0, X1, Y1)``. Raises ``ValueError`` if the crops do not overlap.
    """
    inter = (max(first[0], second[0]), max(first[1], second[1]),
             min(first[2], second[2]), min(first[3], second[3]))
    if inter[0] >= inter[2] or inter[1] >= inter[3]:
        raise ValueError(f'crops {tuple(first)} and {tuple(second)} do not overlap')
    boxes = []
    for x0, y0, x1, y1 in (first, second):
        w, h = x1 - x0, y1 - y0
        boxes.append(((inter[0] - x0) / w, (inter[1] - y0) / h,
                      (inter[2] - x0) / w, (inter[3] - y0) / h))
    return np.asarray(boxes, dtype=np.float32)


def mirror_box(box):
    """The normalised box ``(x1, y1, x2, y2)`` of a horizontally flipped view: ``(1-x2, y1, 1-x1, y2)``."""
    x1, y1, x2, y2 = box
    return np.asarray([1 - x2, y1, 1 - x1, y2], dtype=np.float32)


def color_jitter(image, aug, rng):
    """ColorJitter with ``aug``'s strengths: four factors, applied in a random order.

    Strength 0 skips that adjustment (as torchvision's ColorJitter does).
    """
    factors = (rng.uniform(max(0.0, 1 - aug.brightness), 1 + aug.brightness),
               rng.uniform(max(0.0, 1 - aug.contrast), 1 + aug.contrast),
               rng.uniform(max(0.0, 1 - aug.saturation), 1 + aug.saturation),
               rng.uniform(-aug.hue, aug.hue))
    strengths = (aug.brightness, aug.contrast, aug.saturation, aug.hue)
    adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for op in rng.permutation(4):
        if strengths[op] > 0:
            image = adjust[op](image, float(factors[op]))
    return image


def photometric(image, aug, rng):
    """One view's colour augmentation (PIL RGB -> PIL RGB): jitter, grayscale, blur, solarize."""
    if rng.random() < aug.jitter_p:
        image = color_jitter(image, aug, rng)
    if rng.random() < aug.grayscale_p:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    if rng.random() < aug.blur_p:
        image = image.filter(ImageFilter.GaussianBlur(
            radius=float(rng.uniform(aug.blur_sigma[0], aug.blur_sigma[1]))))
    if rng.random() < aug.solarize_p:
        image = TF.solarize(image, aug.solarize_threshold)
    return image


def two_crop_views(image, options, rng):
    """SlotCon's two views of a PIL image (module doc, steps 1-5) -> :class:`TwoCropViews`.

    ``options``: :class:`TwoCropOptions` (checked by the caller: ``options.check()``);
    ``rng``: ``numpy.random.Generator``, the only source of randomness.
    Order of draws: crop pair, flip 1, flip 2, photometric of view 1, of view 2.
    """
    if image.mode != 'RGB':
        image = image.convert('RGB')
    width, height = image.size
    crops = sample_crop_pair(width, height, options, rng)
    boxes = overlap_boxes(*crops)
    flipped = np.asarray([rng.random() < options.flip_p for _ in range(2)])
    size = [options.size, options.size]
    views = []
    for v, ((x0, y0, x1, y1), aug) in enumerate(zip(crops, (options.view1, options.view2))):
        view = TF.resized_crop(image, y0, x0, y1 - y0, x1 - x0, size,
                               InterpolationMode.BICUBIC)
        if flipped[v]:
            view = view.transpose(Image.FLIP_LEFT_RIGHT)
            boxes[v] = mirror_box(boxes[v])
        views.append(view)
    tensors = [TF.normalize(TF.to_tensor(photometric(view, aug, rng)), options.mean, options.std)
               for view, aug in zip(views, (options.view1, options.view2))]
    return TwoCropViews(views=torch.stack(tensors), boxes=torch.from_numpy(boxes),
                        flipped=torch.from_numpy(flipped),
                        crops=np.asarray(crops, dtype=np.int64))
