"""Data transforms of the semi-supervised protocol configs (ReCo, U2PL) that mmseg's own
cannot express. Spec: shared/specs/semisup.md 1(a) "Data and augmentation", "Partial-label
generation", 2(a) "Config defaults" (train transform order) and 4.2.

- ``PartialLabels``: ReCo's partial labels p0 / p1 / p5 / p25, made from the full label map
  at load time (``densessl.semisup.partial_labels.partial_labels_for_image``).
- ``RandomRescale`` / ``U2PLRandomRescale``: rescale by a random factor of the image's *own*
  size. mmseg's ``RandomResize`` draws a ratio of a fixed target ``scale`` (with
  ``keep_ratio`` the image is fitted into ``scale * ratio``), which is the own-size factor only
  when every image has the same size (not VOC's); ``RandomChoiceResize`` picks from a fixed
  list. Neither draws U2PL's two-piece factor (U[0.5, 1] or U[1, 2] with probability 1/2
  each, so factors below 1 are twice as dense as above).
- ``PadForCrop``: pad to at least the crop size, the image reflected (ReCo) or with a
  constant (U2PL: 0 after normalisation, i.e. the mean colour), the label with 255, at the
  bottom / right (ReCo) or around the centre (U2PL). mmcv's ``Pad`` reflects the label too
  when the image is reflected.
- ``ReCoColourAugment``: ReCo's labelled-image photometric step (ColorJitter with
  probability 0.8, Gaussian blur with probability 0.5), the project's implementation
  (``densessl.semisup.mixing``); mmseg has no ColorJitter (its ``PhotoMetricDistortion``
  draws other distributions).
- ``ResizeAsStored``: ReCo's Cityscapes preprocessing (images bilinear, labels nearest to
  1024 x 512, with Pillow as ReCo) done at load time; the resized image becomes the
  *original* (``ori_shape``), so predictions are scored at that size against the resized
  labels, as ReCo scores them (not the standard full-resolution protocol).
"""
import os.path as osp

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from densessl.semisup.label_subsets import id_from_u2pl_line
from densessl.semisup.mixing import (StrongAugOptions, colour_jitter, gaussian_blur,
                                     sample_strong_aug)
from densessl.semisup.partial_labels import PARTIAL_MODES, partial_labels_for_image


def _generator():
    """A torch Generator seeded from numpy's global stream (which mmengine seeds per
    worker), so these transforms follow the run's ``randomness.seed``."""
    return torch.Generator().manual_seed(int(np.random.randint(0, 2 ** 31 - 1)))


@TRANSFORMS.register_module()
class PartialLabels(BaseTransform):
    """Replace ``gt_seg_map`` by ReCo's partial labels of ``mode`` (``p0``: one pixel per class
    and image; ``p1`` / ``p5`` / ``p25``: a square region grown around it until 1 / 5 / 25 %
    of the class's pixels are labelled; everything else ``ignore_index``).

    Seeded per image: the generator depends only on ``(seed, image id)``, the id being the
    image file name without ``_leftImg8bit.png`` / ``.png`` / ``.jpg`` (the split files' ids),
    so an image gets the same partial label in every epoch, worker and process, and the modes
    are nested. ``seed``: ReCo's 0 / 1 / 2.

    Place it right after ``LoadAnnotations`` (after a fixed resize to the stored resolution,
    e.g. ``ResizeAsStored`` on Cityscapes, as ReCo generates them on its resized labels) and
    before any random geometric transform, in the training pipelines only: the labelled
    data set's, and, in ReCo's partial-label mode (``SemiSupervisedSegmentor(
    partial_labels=True)``, which reads the unlabelled view's sparse labels), the unlabelled
    one's with the same mode and seed. Never in a val / test pipeline.
    """

    def __init__(self, mode='p0', seed=0, ignore_index=255):
        if mode not in PARTIAL_MODES:
            raise ValueError(f'PartialLabels: mode {mode!r} is not one of '
                             f'{sorted(PARTIAL_MODES)}')
        self.mode, self.seed, self.ignore_index = mode, int(seed), ignore_index

    @staticmethod
    def image_id(results):
        return id_from_u2pl_line(osp.basename(results['img_path']))

    def transform(self, results):
        if results.get('gt_seg_map') is None:
            raise KeyError('PartialLabels needs gt_seg_map: put it after LoadAnnotations')
        results['gt_seg_map'] = partial_labels_for_image(
            results['gt_seg_map'], self.mode, self.seed, self.image_id(results),
            self.ignore_index)
        return results

    def __repr__(self):
        return f'{type(self).__name__}(mode={self.mode!r}, seed={self.seed})'


def _resize(results, size, backend):
    """Resize img (bilinear) and every seg field (nearest) to ``size`` (w, h)."""
    results['img'] = mmcv.imresize(results['img'], size, interpolation='bilinear',
                                   backend=backend)
    for key in results.get('seg_fields', []):
        if results.get(key) is not None:
            results[key] = mmcv.imresize(results[key], size, interpolation='nearest',
                                         backend=backend)
    results['img_shape'] = results['img'].shape[:2]


@TRANSFORMS.register_module()
class RandomRescale(BaseTransform):
    """Rescale image (bilinear) and labels (nearest) by a factor ``s`` of their own size:
    ``(h, w) -> (int(h s), int(w s))`` (both originals truncate).

    ``s``: pick range ``k`` of ``scale_ranges`` with probability ``range_probs[k]`` (default
    equal), then ``s ~ U[lo_k, hi_k]``. ReCo: ``scale_ranges=[(0.5, 1.5)]``,
    ``backend='pillow'`` (it resizes PIL images); see ``U2PLRandomRescale`` for U2PL's.
    """

    def __init__(self, scale_ranges=((0.5, 1.5),), range_probs=None, backend='cv2'):
        self.scale_ranges = [tuple(float(v) for v in r) for r in scale_ranges]
        if any(len(r) != 2 or not 0 < r[0] <= r[1] for r in self.scale_ranges):
            raise ValueError(f'{type(self).__name__}: scale_ranges must be (lo, hi) pairs with '
                             f'0 < lo <= hi, got {scale_ranges}')
        probs = range_probs or [1.0] * len(self.scale_ranges)
        if len(probs) != len(self.scale_ranges) or min(probs) < 0 or sum(probs) <= 0:
            raise ValueError(f'{type(self).__name__}: range_probs {range_probs} do not fit '
                             f'{len(self.scale_ranges)} ranges')
        self.range_probs = [p / sum(probs) for p in probs]
        self.backend = backend

    def sample_scale(self):
        k = (np.random.choice(len(self.scale_ranges), p=self.range_probs)
             if len(self.scale_ranges) > 1 else 0)
        lo, hi = self.scale_ranges[k]
        return float(np.random.uniform(lo, hi))

    def transform(self, results):
        scale = self.sample_scale()
        h, w = results['img'].shape[:2]
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        if size != (w, h):
            _resize(results, size, self.backend)
        results['scale_factor'] = (size[0] / w, size[1] / h)
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(scale_ranges={self.scale_ranges}, '
                f'range_probs={self.range_probs}, backend={self.backend!r})')


@TRANSFORMS.register_module()
class U2PLRandomRescale(RandomRescale):
    """U2PL's ``RandResize(scale_range)``: with probability 0.5 ``s ~ U[lo, 1]``, otherwise
    ``s ~ U[1, hi]`` (``scale_range=(0.5, 2.0)`` in its configs), image bilinear, label
    nearest (U2PL: ``F.interpolate``, bilinear without antialiasing: the cv2 backend)."""

    def __init__(self, scale_range=(0.5, 2.0), backend='cv2'):
        lo, hi = scale_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f'U2PLRandomRescale: scale_range must have lo <= 1 <= hi, got '
                             f'{scale_range}')
        super().__init__(scale_ranges=((lo, 1.0), (1.0, hi)), range_probs=(0.5, 0.5),
                         backend=backend)


@TRANSFORMS.register_module()
class PadForCrop(BaseTransform):
    """Pad image and labels to at least ``crop_size`` (h, w) (larger sides are kept).

    Args:
        crop_size: (h, w).
        img_padding_mode: ``'reflect'`` (ReCo) or ``'constant'``.
        img_pad_val: constant image value, a number or one per channel in the image's
            channel order (BGR for mmcv-loaded images; U2PL pads with 0 after normalisation,
            i.e. the mean colour: BGR (103.53, 116.28, 123.675)).
        seg_pad_val: label value (255 = ignore. U2PL's crop pads labels with 0, a bug: the
            padding would be trained as VOC background / Cityscapes road; not reproduced).
        position: ``'bottom_right'`` (ReCo) or ``'center'`` (U2PL: half before, the rest
            after).
    """

    def __init__(self, crop_size, img_padding_mode='constant', img_pad_val=0, seg_pad_val=255,
                 position='bottom_right'):
        if img_padding_mode not in ('constant', 'reflect', 'edge', 'symmetric'):
            raise ValueError(f'PadForCrop: img_padding_mode {img_padding_mode!r}')
        if position not in ('bottom_right', 'center'):
            raise ValueError(f"PadForCrop: position must be 'bottom_right' or 'center', got "
                             f'{position!r}')
        self.crop_size = tuple(int(v) for v in crop_size)
        self.img_padding_mode, self.img_pad_val = img_padding_mode, img_pad_val
        self.seg_pad_val, self.position = seg_pad_val, position

    def transform(self, results):
        h, w = results['img'].shape[:2]
        pad_h, pad_w = max(self.crop_size[0] - h, 0), max(self.crop_size[1] - w, 0)
        if not pad_h and not pad_w:
            return results
        if self.position == 'center':
            top, left = pad_h // 2, pad_w // 2
        else:
            top, left = 0, 0
        padding = (left, top, pad_w - left, pad_h - top)  # mmcv: left, top, right, bottom
        img = results['img']
        pad_val = self.img_pad_val
        if isinstance(pad_val, (list, tuple)):
            pad_val = tuple(pad_val)
        elif img.ndim == 3:
            pad_val = (pad_val,) * img.shape[2]
        results['img'] = mmcv.impad(img, padding=padding, pad_val=pad_val,
                                    padding_mode=self.img_padding_mode)
        for key in results.get('seg_fields', []):
            if results.get(key) is not None:
                results[key] = mmcv.impad(results[key], padding=padding,
                                          pad_val=self.seg_pad_val, padding_mode='constant')
        results['img_shape'] = results['img'].shape[:2]
        results['pad_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(crop_size={self.crop_size}, '
                f'img_padding_mode={self.img_padding_mode!r}, position={self.position!r})')


@TRANSFORMS.register_module()
class ReCoColourAugment(BaseTransform):
    """ReCo's photometric augmentation of a labelled image (its ``transform(augmentation=
    True)`` steps 4-5): with probability ``jitter_prob`` ColorJitter (brightness, contrast,
    saturation factors ~ U(0.75, 1.25), hue shift ~ U(-0.25, 0.25), the four in a random
    order), then with probability ``blur_prob`` a Gaussian blur of sigma ~ U(0.15, 1.15). The
    image only; the flip is mmseg's ``RandomFlip`` after it. Same functions as the segmentor's
    strong augmentation (``densessl.semisup.mixing``: torchvision's tensor definitions, a
    separable Gaussian); the result is rounded back to 8 bits, as ReCo's PIL images are."""

    def __init__(self, jitter_prob=0.8, blur_prob=0.5):
        self.options = StrongAugOptions(jitter_p=jitter_prob, blur_p=blur_prob, flip_p=0.0)

    def transform(self, results):
        img = results['img']
        params = sample_strong_aug(1, _generator(), self.options)
        if not (bool(params.jitter[0]) or bool(params.blur[0])):
            return results
        rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)
        x = rgb[None].float() / 255.0
        x = colour_jitter(x, params)
        if bool(params.blur[0]):
            x = gaussian_blur(x, params.sigma)
        out = (x[0] * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        results['img'] = np.ascontiguousarray(out[..., ::-1]).astype(img.dtype)
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(jitter_prob={self.options.jitter_p}, '
                f'blur_prob={self.options.blur_p})')


@TRANSFORMS.register_module()
class ResizeAsStored(BaseTransform):
    """Resize image (bilinear) and labels (nearest) to a fixed ``scale`` (w, h) and make that
    the image's original shape (``ori_shape``): the data set as if its files had been
    resized, as ReCo's Cityscapes preprocessing does (1024 x 512, Pillow, which antialiases
    the bilinear downscale). In a test pipeline put it after ``LoadAnnotations``: the labels
    are resized with the image and the prediction is scored at ``scale``."""

    def __init__(self, scale=(1024, 512), backend='pillow'):
        self.scale = tuple(int(v) for v in scale)
        self.backend = backend

    def transform(self, results):
        h, w = results['img'].shape[:2]
        if (w, h) != self.scale:
            _resize(results, self.scale, self.backend)
        results['img_shape'] = results['img'].shape[:2]
        results['ori_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self):
        return f'{type(self).__name__}(scale={self.scale}, backend={self.backend!r})'
