"""ReCo's / U2PL's strong view of an unlabelled batch: mixing after teacher inference, then
(ReCo only) colour, blur and flip. Spec: shared/specs/semisup.md 1(a) "Mixing strategies",
1(b) step 3, 2(a) "Strong view", 4.2 and 5.7.

The teacher labels the *un-mixed* batch first: images (B, 3, H, W), pseudo-labels
``y`` (B, H, W) long (argmax) and confidence ``c`` (B, H, W) float (max probability). The
three are then mixed together, so a pixel's label and confidence travel with its colour.
Image ``i`` is mixed with its partner ``pi(i)`` (both originals: ``pi(i) = (i + 1) mod B``,
:func:`neighbour_partners`; any index tensor may be injected) through a keep-mask
``M_i`` (H, W) bool:

    x'_i = M_i ? x_i : x_pi(i)      (the same for y and c; partners are the un-mixed inputs)

- **CutOut** (``cutout``): one box per image (:func:`sample_cutout_boxes`). Inside it the
  image and the confidence are set to 0 and the label to ``ignore_index``; no partner.
  (The images are normalised, so 0 is the mean colour.)
- **CutMix** (``cutmix``): the same box generator; ``M_i`` is False inside the box, so the
  box shows the partner and the rest image ``i``.
- **ClassMix** (``classmix``): ``M_i = y_i in S_i`` where ``S_i`` holds ``floor(n_i / 2)`` of
  the ``n_i`` classes present in ``y_i``, chosen by a uniformly random permutation
  (:func:`sample_classmix_classes`). Pixels of those classes keep image ``i``, all others
  (including ignored pixels) come from the partner. ``n_i = 1`` keeps nothing.

**Box generator** (both originals, ``ratio`` 2): area ``A = H W / 2``; width
``w ~ U{floor(W/2 + 1), ..., W - 1}``, height ``h = round(A / w)`` (round half to even, as
``np.round``), top-left ``x0 ~ U{0..W-w}``, ``y0 ~ U{0..H-h}``. So ``W/2 < w < W``,
``h <= H`` and the box area ``w h`` is ``H W / 2`` up to rounding, ``|w h - H W / 2| <= w / 2``.
Needs ``W >= 3``.

**ReCo vs U2PL.** ReCo: any of the three modes on every batch (the scripts default to
``cutout``, the README runs use ``classmix``), ignore label -1, then
:func:`reco_strong_augment`. U2PL: ``cutmix`` on a batch with probability 0.5 (one coin for
the whole batch, :data:`U2PL_MIX_PROBABILITY`), ignore label 255, no colour augmentation.
Here ``ignore_index`` defaults to 255 (the project's and mmseg's ignore label); pass -1 for
ReCo's own convention.

**ReCo's colour augmentation** (``batch_transform(..., aug=True)`` after mixing; per image, in
this order): ColorJitter with probability 0.8, brightness / contrast / saturation factors
``U(0.75, 1.25)`` and hue shift ``U(-0.25, 0.25)``, the four adjustments in a random order;
Gaussian blur with probability 0.5, ``sigma ~ U(0.15, 1.15)``; horizontal flip with
probability 0.5. Jitter and blur touch only the image (:func:`strong_colour_augment`); the
flip moves image, label and confidence together (:func:`hflip`).
Differences from the original, which runs these through 8-bit PIL images:

- here on float tensors, so neither the image nor the confidence is quantised to k/255
  (the original's confidence passes through an 8-bit image before the 0.7 / 0.97
  thresholds, spec 1(a) "Quantisation detail");
- the adjustments follow torchvision's tensor definitions (each clamps to [0, 1]); the blur is
  a separable Gaussian of standard deviation ``sigma`` (PIL's ``radius``) truncated at
  ``ceil(3 sigma_max)`` with replicated borders, where PIL uses box-blur passes;
- the jitter order is random per image (torchvision >= 0.10's ``ColorJitter``, the fix the
  spec names for the original's ``get_params`` crash).

**Randomness.** Every choice comes from a ``sample_*`` function drawing from the
``torch.Generator`` passed in (drawn on the generator's device, then moved to the data) or is
injected, so ``cutout`` / ``cutmix`` / ``classmix`` / ``strong_colour_augment`` / ``hflip`` are
deterministic. Draws are vectorised over the batch, so the stream differs from the
original's per-image ``np.random`` calls; the distributions are the same.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
MIX_MODES = ('none', 'cutout', 'cutmix', 'classmix')
U2PL_MIX_PROBABILITY = 0.5  # U2PL: one coin per batch decides whether CutMix is applied
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
BLUR_TRUNCATE = 3.0  # Gaussian kernel radius = ceil(3 * sigma_max)


# ----------------------------------------------------------------------------- draws
def _uniform(shape, generator):
    """float64 U[0, 1) of ``shape``, drawn on the generator's device (CPU without one)."""
    device = generator.device if generator is not None else 'cpu'
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=device)


def _randint(low, high, generator):
    """Integers uniform in ``[low, high)`` elementwise; low, high (B,) long, high > low."""
    span = (high - low).to(torch.float64)
    offset = (_uniform(low.shape, generator).to(span.device) * span).floor().long()
    return low + torch.minimum(offset, (high - low) - 1)  # guard float rounding up to span


def neighbour_partners(batch_size, device=None):
    """(B,) long ``(i + 1) mod B``: both originals' mixing partner of image ``i``."""
    return torch.roll(torch.arange(batch_size, device=device), -1)


def sample_cutout_boxes(batch_size, height, width, generator=None, device=None):
    """(B, 4) long boxes ``(x0, y0, x1, y1)`` (exclusive ends) by the box generator of the
    module docstring: area ``H W / 2``, ``w ~ U{floor(W/2+1)..W-1}``, ``h = round(A / w)``,
    uniform position. The draws are ``w``, then ``x0``, then ``y0`` (each (B,))."""
    if width < 3 or height < 1:
        raise ValueError(f'sample_cutout_boxes: need width >= 3 and height >= 1, got '
                         f'{height}x{width}')
    full = torch.full((batch_size,), 1, dtype=torch.long)
    w = _randint(full * (width // 2 + 1), full * width, generator).cpu()
    # round half to even like np.round: torch.round does the same
    h = torch.round(torch.full((batch_size,), height * width / 2.0, dtype=torch.float64)
                    / w.to(torch.float64)).long()
    x0 = _randint(full * 0, width - w + 1, generator).cpu()
    y0 = _randint(full * 0, height - h + 1, generator).cpu()
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1).to(device)


def box_masks(boxes, height, width):
    """(B, H, W) bool, True inside box ``b`` = ``(x0, y0, x1, y1)`` (exclusive ends)."""
    ys = torch.arange(height, device=boxes.device)[None, :, None]
    xs = torch.arange(width, device=boxes.device)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, k, None, None] for k in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def class_presence(labels, num_classes, ignore_index=IGNORE_INDEX):
    """(B, C) bool: class ``c`` occurs in ``labels[b]`` (values outside 0..C-1 or equal to
    ``ignore_index`` are no class)."""
    batch = labels.shape[0]
    flat = labels.reshape(batch, -1).long()
    valid = (flat >= 0) & (flat < num_classes) & (flat != ignore_index)
    index = torch.arange(batch, device=labels.device)[:, None] * num_classes + flat
    counts = torch.bincount(index[valid], minlength=batch * num_classes)
    return counts.reshape(batch, num_classes) > 0


def sample_classmix_classes(labels, num_classes=None, generator=None,
                            ignore_index=IGNORE_INDEX):
    """(B, C) bool ``S``: for each image, ``floor(n_b / 2)`` of its ``n_b`` present classes.

    One U[0,1) key per (image, class) is drawn; the present classes sorted by key are a
    uniformly random permutation, and the first ``floor(n_b / 2)`` are chosen. ``num_classes``
    defaults to ``max(valid label) + 1`` (a host sync).
    """
    if num_classes is None:
        valid = labels[(labels >= 0) & (labels != ignore_index)]
        num_classes = int(valid.max()) + 1 if valid.numel() else 1
    present = class_presence(labels, num_classes, ignore_index)
    keys = _uniform(present.shape, generator).to(labels.device)
    keys = torch.where(present, keys, torch.full_like(keys, 2.0))  # absent classes sort last
    rank = keys.argsort(dim=1).argsort(dim=1)
    keep = present.sum(dim=1, keepdim=True) // 2
    return present & (rank < keep)


def classmix_masks(labels, chosen):
    """(B, H, W) bool keep-mask: ``labels[b]`` is one of the classes ``chosen[b]`` (B, C)."""
    batch, num_classes = chosen.shape
    labels = labels.long()
    valid = (labels >= 0) & (labels < num_classes)
    flat = torch.arange(batch, device=labels.device)[:, None, None] * num_classes + labels
    return valid & chosen.reshape(-1)[torch.where(valid, flat, 0)]


# ----------------------------------------------------------------------------- mixing
def _check(images, labels, confidence):
    if images.dim() != 4 or labels.dim() != 3 or confidence.shape != labels.shape:
        raise ValueError(f'images (B, 3, H, W), labels and confidence (B, H, W) expected; got '
                         f'{tuple(images.shape)}, {tuple(labels.shape)}, '
                         f'{tuple(confidence.shape)}')
    if images.shape[0] != labels.shape[0] or images.shape[2:] != labels.shape[1:]:
        raise ValueError(f'images {tuple(images.shape)} and labels {tuple(labels.shape)} '
                         'differ in batch or size')


def mix_with_partner(images, labels, confidence, keep, partners=None):
    """``x'_i = keep_i ? x_i : x_partners[i]`` for image, label and confidence (new tensors).

    keep (B, H, W) bool; partners (B,) long, default :func:`neighbour_partners`.
    """
    _check(images, labels, confidence)
    if partners is None:
        partners = neighbour_partners(images.shape[0], images.device)
    partners = partners.to(images.device)
    return (torch.where(keep[:, None], images, images[partners]),
            torch.where(keep, labels, labels[partners]),
            torch.where(keep, confidence, confidence[partners]))


def cutout(images, labels, confidence, boxes, ignore_index=IGNORE_INDEX):
    """CutOut with boxes (B, 4) ``(x0, y0, x1, y1)``: inside, image 0, confidence 0, label
    ``ignore_index``. Returns new (images, labels, confidence)."""
    _check(images, labels, confidence)
    inside = box_masks(boxes.to(images.device), *labels.shape[1:])
    return (images.masked_fill(inside[:, None], 0), labels.masked_fill(inside, ignore_index),
            confidence.masked_fill(inside, 0))


def cutmix(images, labels, confidence, boxes, partners=None):
    """CutMix: inside box ``b`` the partner's pixels (image, label, confidence), outside
    image ``b``'s own."""
    inside = box_masks(boxes.to(images.device), *labels.shape[1:])
    return mix_with_partner(images, labels, confidence, ~inside, partners)


def classmix(images, labels, confidence, chosen, partners=None):
    """ClassMix: pixels of image ``b`` whose label is in ``chosen[b]`` (B, C) bool stay,
    all others come from the partner."""
    return mix_with_partner(images, labels, confidence, classmix_masks(labels, chosen),
                            partners)


@dataclass
class MixedBatch:
    """The output of :func:`mix_batch`; ``applied`` is False when the coin skipped mixing."""
    images: torch.Tensor
    labels: torch.Tensor
    confidence: torch.Tensor
    applied: bool


def mix_batch(images, labels, confidence, mode, generator=None, probability=1.0,
              num_classes=None, ignore_index=IGNORE_INDEX):
    """Sample and apply one mixing ``mode`` (``MIX_MODES``) to the whole batch.

    One coin ``U[0,1) < probability`` decides for the batch (always drawn, so a probability of
    1 or 0 does not shift the later draws): ReCo uses 1.0, U2PL ``cutmix`` with
    :data:`U2PL_MIX_PROBABILITY`. Draw order: coin, then the mode's ``sample_*``.
    Partners are the neighbours.
    """
    if mode not in MIX_MODES:
        raise ValueError(f'mix_batch: mode {mode!r} is not one of {MIX_MODES}')
    _check(images, labels, confidence)
    coin = float(_uniform((1,), generator)) < probability
    if mode == 'none' or not coin:
        return MixedBatch(images, labels, confidence, False)
    batch, height, width = labels.shape
    if mode == 'classmix':
        chosen = sample_classmix_classes(labels, num_classes, generator, ignore_index)
        return MixedBatch(*classmix(images, labels, confidence, chosen), True)
    boxes = sample_cutout_boxes(batch, height, width, generator, images.device)
    if mode == 'cutout':
        return MixedBatch(*cutout(images, labels, confidence, boxes, ignore_index), True)
    return MixedBatch(*cutmix(images, labels, confidence, boxes), True)


# ----------------------------------------------------------------------------- colour
@dataclass(frozen=True)
class StrongAugOptions:
    """ReCo's augmentation after mixing (spec 1(a) labelled transform steps 4-6)."""
    jitter_p: float = 0.8
    brightness: tuple = (0.75, 1.25)  # factor range
    contrast: tuple = (0.75, 1.25)
    saturation: tuple = (0.75, 1.25)
    hue: tuple = (-0.25, 0.25)        # shift range, in turns (|shift| <= 0.5)
    blur_p: float = 0.5
    blur_sigma: tuple = (0.15, 1.15)  # PIL GaussianBlur radius = standard deviation (px)
    flip_p: float = 0.5


@dataclass
class StrongAugParams:
    """Per-image draws of :func:`sample_strong_aug` (B images)."""
    jitter: torch.Tensor   # (B,) bool, colour jitter applied
    factors: torch.Tensor  # (B, 4) float: brightness, contrast, saturation factors, hue shift
    order: torch.Tensor    # (B, 4) long, a permutation of 0..3 (indices into ``factors``)
    blur: torch.Tensor     # (B,) bool
    sigma: torch.Tensor    # (B,) float, blur standard deviation (px)
    flip: torch.Tensor     # (B,) bool, horizontal flip


def sample_strong_aug(batch_size, generator=None, options=StrongAugOptions()):
    """Draw :class:`StrongAugParams`; every draw is made for every image (coins included),
    in the order jitter coin, factors, order keys, blur coin, sigma, flip coin."""
    o = options
    jitter = _uniform((batch_size,), generator) < o.jitter_p
    ranges = torch.tensor([o.brightness, o.contrast, o.saturation, o.hue], dtype=torch.float64)
    u = _uniform((batch_size, 4), generator).cpu()
    factors = ranges[:, 0] + u * (ranges[:, 1] - ranges[:, 0])
    order = _uniform((batch_size, 4), generator).argsort(dim=1)
    blur = _uniform((batch_size,), generator) < o.blur_p
    s = _uniform((batch_size,), generator).cpu()
    sigma = o.blur_sigma[0] + s * (o.blur_sigma[1] - o.blur_sigma[0])
    flip = _uniform((batch_size,), generator) < o.flip_p
    return StrongAugParams(jitter=jitter.cpu(), factors=factors, order=order.cpu(),
                           blur=blur.cpu(), sigma=sigma, flip=flip.cpu())


def _gray(images):
    """(B, 1, H, W) luma of RGB images in [0, 1]."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device)
    return (images * w[None, :, None, None]).sum(dim=1, keepdim=True)


def _blend(images, other, factor):
    """clamp(f x + (1 - f) other, 0, 1) with a per-image factor (B,)."""
    f = factor.to(images)[:, None, None, None]
    return (f * images + (1 - f) * other).clamp(0, 1)


def rgb_to_hsv(images):
    """RGB (B, 3, H, W) in [0, 1] -> HSV, hue in [0, 1) turns (0 where grey)."""
    r, g, b = images.unbind(dim=1)
    maxc, argmax = images.max(dim=1)
    minc = images.min(dim=1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                      torch.zeros_like(maxc))
    hue = torch.stack([(g - b) / safe, 2 + (b - r) / safe, 4 + (r - g) / safe])
    hue = hue.gather(0, argmax[None]).squeeze(0)
    hue = torch.where(delta > 0, torch.remainder(hue / 6.0, 1.0), torch.zeros_like(hue))
    return torch.stack([hue, sat, maxc], dim=1)


def hsv_to_rgb(hsv):
    """HSV (B, 3, H, W), hue in turns -> RGB in [0, 1]."""
    hue, sat, val = hsv.unbind(dim=1)
    h6 = torch.remainder(hue, 1.0) * 6.0
    sector = h6.floor()
    frac = h6 - sector
    sector = sector.long() % 6
    p = val * (1 - sat)
    q = val * (1 - sat * frac)
    t = val * (1 - sat * (1 - frac))
    # per sector (0..5): (r, g, b) from (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
    # (v, p, q)
    table = torch.stack([torch.stack(c) for c in (
        (val, q, p, p, t, val), (t, val, val, q, p, p), (p, p, t, val, val, q))])
    return table.gather(1, sector[None, None].expand(3, 1, *sector.shape)).squeeze(1) \
        .permute(1, 0, 2, 3)


def adjust(images, op, factor):
    """One ColorJitter adjustment (op 0..3: brightness, contrast, saturation, hue) of RGB
    images in [0, 1] with per-image factors (B,), torchvision's tensor definitions."""
    if op == 0:
        return _blend(images, torch.zeros_like(images), factor)
    if op == 1:
        mean = _gray(images).mean(dim=(1, 2, 3), keepdim=True)
        return _blend(images, mean, factor)
    if op == 2:
        return _blend(images, _gray(images), factor)
    hsv = rgb_to_hsv(images)
    shift = factor.to(images)[:, None, None]
    hsv = torch.stack([torch.remainder(hsv[:, 0] + shift, 1.0), hsv[:, 1], hsv[:, 2]], dim=1)
    return hsv_to_rgb(hsv).clamp(0, 1)


def colour_jitter(images, params):
    """Images in [0, 1] (B, 3, H, W): where ``params.jitter``, the four adjustments with
    ``params.factors`` in the order ``params.order``; other images unchanged."""
    out = images.clone()
    jitter = params.jitter.to(images.device)
    order = params.order.to(images.device)
    for position in range(4):
        for op in range(4):
            sel = (jitter & (order[:, position] == op)).nonzero().squeeze(1)
            if sel.numel():
                out[sel] = adjust(out[sel], op, params.factors[sel.cpu(), op])
    return out


def gaussian_blur(images, sigma):
    """Separable Gaussian blur, standard deviation ``sigma`` (B,) px per image, kernel radius
    ``ceil(3 max(sigma))``, replicated borders."""
    batch, channels, height, width = images.shape
    sigma = sigma.to(device=images.device, dtype=torch.float64)
    radius = max(1, int(torch.ceil(BLUR_TRUNCATE * sigma.max())))
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float64)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(images.dtype)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B * 3, K)
    x = images.reshape(1, batch * channels, height, width)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode='replicate'),
                 kernel[:, None, None, :], groups=batch * channels)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode='replicate'),
                 kernel[:, None, :, None], groups=batch * channels)
    return x.reshape(batch, channels, height, width)


def strong_colour_augment(images, params, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                          pixel_max=1.0):
    """ReCo's photometric part on normalised images only: de-normalise
    (``raw = x std + mean``, raw in ``[0, pixel_max]``), colour jitter, blur, re-normalise.
    Labels and confidence are not arguments: the colour never moves a pixel. ``mean`` /
    ``std`` in the raw scale (mmseg: 0..255 values with ``pixel_max=255``)."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device)[None, :, None, None]
    s = torch.tensor(std, dtype=images.dtype, device=images.device)[None, :, None, None]
    raw = ((images * s + m) / pixel_max).clamp(0, 1)
    raw = colour_jitter(raw, params)
    blur = params.blur.to(images.device).nonzero().squeeze(1)
    if blur.numel():
        raw[blur] = gaussian_blur(raw[blur], params.sigma[blur.cpu()])
    return (raw * pixel_max - m) / s


def hflip(images, labels, confidence, flip):
    """Mirror image, label and confidence of the images where ``flip`` (B,) bool."""
    _check(images, labels, confidence)
    flip = flip.to(images.device)
    return (torch.where(flip[:, None, None, None], images.flip(-1), images),
            torch.where(flip[:, None, None], labels.flip(-1), labels),
            torch.where(flip[:, None, None], confidence.flip(-1), confidence))


def reco_strong_augment(images, labels, confidence, generator=None,
                        options=StrongAugOptions(), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                        pixel_max=1.0):
    """ReCo's augmentation after mixing: :func:`sample_strong_aug`, colour jitter and blur on
    the image, then the flip on all three. Returns (images, labels, confidence)."""
    params = sample_strong_aug(images.shape[0], generator, options)
    images = strong_colour_augment(images, params, mean, std, pixel_max)
    return hflip(images, labels, confidence, params.flip)
