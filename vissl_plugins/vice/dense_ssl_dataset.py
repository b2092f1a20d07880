"""VISSL dataset type ``dense_ssl_dataset``: ViCE's multi-view samples with superpixel labels.

Spec: ../shared/specs/pretrain.md 1(a) A (steps 1-12) and section 6 item 1. Select it with
``DATA.TRAIN.DATASET_TYPE: dense_ssl_dataset``; the options are ``DATA.<split>.DENSE_SSL``
(vissl_plugins/vice/defaults.yaml). Images come from the configured VISSL data source
(``DATA_SOURCES`` / ``DATASET_NAMES`` / ``DATA_PATHS``: disk_filelist, disk_folder,
synthetic_scenes, ...); the per-view photometric transforms are ``DATA.<split>.TRANSFORMS``,
built by VISSL and applied to each view independently.

One sample (``__getitem__``)::

    {'data': [V tensors (3, S, S)],            # normalised, masked regions noise-filled
     'label': [{'superpixels': int64 (V, S, S), # region id, -1 = not learnable
                'flipped': bool (V,),
                'common_boxes': float32 (V, 4)}],  # common rectangle (x0, y0, x1, y1) in view px
     'data_valid': [1], 'data_idx': [idx]}

A learnable region id is present in the common rectangle of every view and is the same
integer in every view (ids index one SLIC map of the whole image). Flipped views are flipped
in the image, the superpixel map and the box.

Randomness: sample ``idx``, try ``attempt`` uses ``np.random.default_rng([seed, epoch, idx,
attempt])`` (seed = ``SEED_VALUE``; epoch from ``set_epoch``), for every draw including
VISSL's transforms (their global RNGs are seeded from it and restored afterwards), so a run
is reproducible and independent of the number of workers. A sample without a learnable region
(empty common area, one SLIC region, everything masked) is redrawn from another index chosen
by the same seeded stream; after ``MAX_RETRIES`` redraws the error names the files.

Differences from the original ``DenseSSLDataset``, all deliberate:

- views never leave the image (sizes capped at the short side; view_sampling.py);
- the edge map is dilated with a 3x3 kernel (the original passes the tuple ``(3, 3)`` as the
  kernel, which OpenCV reads as a 2x1 one);
- mask rectangles are placed relative to each view's own size (the original uses the nominal
  ``VIEW_SIZE`` for the centre and radius also for smaller / larger views) and drawn after the
  resize to S x S (context_masks.py);
- learnable ids: present in the common rectangle of *every* view incl. view 0 (the original
  takes view 0's whole map; its other ids are outside the common area anyway);
- a rejected sample is redrawn from a uniformly drawn index of the seeded stream (the original
  draws ``randint(0, idx)``, which fails at idx 0) and gives up after ``MAX_RETRIES``;
- flips are flagged by ``flipped`` instead of negated coordinates, and ``PROB_RES_AUG`` (the
  unused resolution branch) must be 0.
"""
import contextlib
import dataclasses
import logging
import random

import numpy as np
import torch
from PIL import Image
from vissl.data import DATA_SOURCES_WITH_SUBSET_SUPPORT, DATASET_SOURCE_MAP
from vissl.data.ssl_dataset import GenericSSLDataset

from vissl_plugins.data.dataset_types import register_dataset_type
from vissl_plugins.data.image_files import read_source_image
from densessl.vice.context_masks import (choose_preserved_ids, fill_noise, masked_regions,
                                              sample_mask_rectangles)
from densessl.vice.superpixels import slic_superpixels
from densessl.vice.view_sampling import (common_rectangle, edge_density_pmf,
                                              sample_view_boxes, standardize_image)

RETRY_STREAM = 2**31 - 1  # extra seed word of the stream that picks replacement indices


class SampleRejected(Exception):
    """This draw of views has no learnable region; the dataset redraws."""


class DenseSampleError(RuntimeError):
    """No usable sample after ``MAX_RETRIES`` redraws."""


@dataclasses.dataclass(frozen=True)
class DenseSSLOptions:
    """``DATA.<split>.DENSE_SSL``, checked. Field docs: vissl_plugins/vice/defaults.yaml."""
    VIEW_N: int = 5
    VIEW_SIZE: int = 400
    RESIZE_RANGE: tuple = (0.5, 1.5)
    SLIC_REGION_SIZE: int = 20
    SLIC_RULER: float = 10.0
    SLIC_ITERS: int = 5
    MASK_INTENSITY: float = 0.25
    PRESERVE_RATIO: float = 0.25
    PROB_RES_AUG: float = 0.0
    KAPPA_THETA: float = 2.0
    KAPPA_R: float = 2.0
    FLIP_VIEWS: bool = True
    MAX_COMMON_SIZE: float = 7.4e10
    STANDARDIZE_MIN_SIDE: int = 500
    STANDARDIZE_MAX_SIDE: int = 2048
    CANNY_LOW: float = 10.0
    CANNY_HIGH: float = 50.0
    EDGE_UNIFORM_MASS: float = 0.005
    MAX_RETRIES: int = 20

    @classmethod
    def from_config(cls, node, where='DATA.TRAIN.DENSE_SSL'):
        """Options from a config mapping; unknown keys and bad values name ``where.KEY``."""
        node = dict(node or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(node) - fields)
        if unknown:
            raise ValueError(f'unknown key(s) {", ".join(where + "." + k for k in unknown)}; '
                             f'known: {", ".join(sorted(fields))}')
        if 'RESIZE_RANGE' in node:
            node['RESIZE_RANGE'] = tuple(float(v) for v in node['RESIZE_RANGE'])
        options = cls(**node)
        options.check(where)
        return options

    def check(self, where):
        def bad(key, why):
            raise ValueError(f'{where}.{key} = {getattr(self, key)!r}: {why}')
        if self.VIEW_N < 2:
            bad('VIEW_N', 'needs at least 2 views (the centre view and one more)')
        if self.VIEW_SIZE < 8:
            bad('VIEW_SIZE', 'must be at least 8 px')
        lo_hi = self.RESIZE_RANGE
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
            bad('RESIZE_RANGE', 'must be [low, high] with 0 < low <= high')
        if not 0 <= self.PRESERVE_RATIO <= 1:
            bad('PRESERVE_RATIO', 'must lie in [0, 1]')
        if not 0 <= self.MASK_INTENSITY <= 1:
            bad('MASK_INTENSITY', 'must lie in [0, 1] (a fraction of the view side)')
        if self.PROB_RES_AUG != 0:
            bad('PROB_RES_AUG', "the original's resolution-augmentation branch is not "
                                "implemented (ViCE's experiments never use it); set it to 0.0")
        if self.SLIC_REGION_SIZE < 2 or self.SLIC_ITERS < 1:
            bad('SLIC_REGION_SIZE', 'SLIC needs REGION_SIZE >= 2 and SLIC_ITERS >= 1')
        if self.MAX_RETRIES < 0:
            bad('MAX_RETRIES', 'must be >= 0')
        if self.MAX_COMMON_SIZE <= 0:
            bad('MAX_COMMON_SIZE', 'must be > 0 (pixels)')


@dataclasses.dataclass
class DenseViews:
    """One draw of views before the photometric transforms (V views of S x S px)."""
    images: list            # V PIL RGB images, S x S, flipped where ``flipped``
    superpixels: np.ndarray  # (V, S, S) int64, -1 = not learnable
    noise_masks: np.ndarray  # (V, S, S) bool, pixels of masked regions
    common_boxes: np.ndarray  # (V, 4) float32, common rectangle in view px (mirrored if flipped)
    flipped: np.ndarray      # (V,) bool
    view_boxes: np.ndarray   # (V, 4) int, views in the standardised image
    common_rect: np.ndarray  # (4,) int, common rectangle in the standardised image
    image_size: tuple        # (width, height) of the standardised image


def _nearest_source_index(start, size, out_size):
    """(out_size,) source pixel of each output pixel when resizing ``size`` px to ``out_size``."""
    return start + np.minimum(((np.arange(out_size) + 0.5) * size / out_size).astype(np.int64),
                              size - 1)


def generate_dense_views(image, options, rng):
    """Spec steps 1-8 and 10 for one PIL image; raises :class:`SampleRejected`.

    ``rng``: a ``numpy.random.Generator``, the only source of randomness.
    """
    o, size = options, options.VIEW_SIZE
    std = standardize_image(image, o.STANDARDIZE_MIN_SIDE, o.STANDARDIZE_MAX_SIDE)
    rgb = np.asarray(std)
    pmf = edge_density_pmf(rgb, o.CANNY_LOW, o.CANNY_HIGH, o.EDGE_UNIFORM_MASS)
    boxes = sample_view_boxes(pmf, o.VIEW_N, size, o.RESIZE_RANGE, o.KAPPA_THETA, o.KAPPA_R, rng)
    common = common_rectangle(boxes, o.MAX_COMMON_SIZE)
    if common is None:
        raise SampleRejected('the views have no common area')
    regions = slic_superpixels(rgb, o.SLIC_REGION_SIZE, o.SLIC_RULER, o.SLIC_ITERS)
    if regions.max() < 1:
        raise SampleRejected('SLIC found a single region')

    # view label maps by nearest-neighbour resampling of the one SLIC map: ids agree across views
    side = boxes[:, 2] - boxes[:, 0]
    xs = np.stack([_nearest_source_index(b[0], s, size) for b, s in zip(boxes, side)])  # (V, S)
    ys = np.stack([_nearest_source_index(b[1], s, size) for b, s in zip(boxes, side)])
    labels = regions[ys[:, :, None], xs[:, None, :]].astype(np.int64)  # (V, S, S)
    in_cols = (xs >= common[0]) & (xs < common[2])  # (V, S) output columns inside the common rect
    in_rows = (ys >= common[1]) & (ys < common[3])

    def ids_in_common(v):
        return np.unique(labels[v][np.ix_(in_rows[v], in_cols[v])])

    common_ids = ids_in_common(0)
    preserved = choose_preserved_ids(common_ids, o.PRESERVE_RATIO, rng)
    rectangles = sample_mask_rectangles(o.VIEW_N, size, o.MASK_INTENSITY, rng)
    noise_masks, masked_ids = masked_regions(labels, rectangles, preserved)
    learnable = np.setdiff1d(common_ids, masked_ids)
    for v in range(1, o.VIEW_N):  # remove_noncommon_region_idxs: present in every view's common crop
        learnable = np.intersect1d(learnable, ids_in_common(v))
    if learnable.size == 0:
        raise SampleRejected('no superpixel is common to all views and unmasked')
    superpixels = np.where(np.isin(labels, learnable), labels, -1)

    scale = size / side[:, None]
    common_boxes = ((common[None, :] - boxes[:, [0, 1, 0, 1]]) * scale).astype(np.float32)
    images = [std.resize((size, size), Image.BICUBIC, box=tuple(int(c) for c in b)) for b in boxes]

    flipped = rng.random(o.VIEW_N) < 0.5 if o.FLIP_VIEWS else np.zeros(o.VIEW_N, dtype=bool)
    for v in np.flatnonzero(flipped):
        images[v] = images[v].transpose(Image.FLIP_LEFT_RIGHT)
        superpixels[v] = superpixels[v, :, ::-1].copy()
        noise_masks[v] = noise_masks[v, :, ::-1].copy()
        common_boxes[v, [0, 2]] = size - common_boxes[v, [2, 0]]
    return DenseViews(images, superpixels, noise_masks, common_boxes, flipped, boxes, common,
                      std.size)


@contextlib.contextmanager
def seeded_global_rngs(seed):
    """Seed ``random``, ``numpy.random`` and torch's CPU RNG; restore them afterwards.

    VISSL's / torchvision's transforms draw from these global RNGs.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@register_dataset_type('dense_ssl_dataset')
class DenseSSLDataset(GenericSSLDataset):
    """ViCE's dataset type (see the module docstring). Built as ``cls(cfg=cfg, split=split)``."""

    def __init__(self, cfg, split, dataset_source_map=None, data_sources_with_subset=None,
                 **kwargs):
        super().__init__(cfg, split,
                         DATASET_SOURCE_MAP if dataset_source_map is None else dataset_source_map,
                         DATA_SOURCES_WITH_SUBSET_SUPPORT if data_sources_with_subset is None
                         else data_sources_with_subset)
        self.options = DenseSSLOptions.from_config(cfg['DATA'][split].get('DENSE_SSL'),
                                                   f'config.DATA.{split}.DENSE_SSL')
        if len(self.data_objs) != 1:
            raise ValueError(f'dense_ssl_dataset reads one data source; config.DATA.{split}.'
                             f'DATA_SOURCES has {len(self.data_objs)}: {list(self.data_sources)}')
        self.seed = int(cfg.get('SEED_VALUE', 0))
        if self.seed < 0:
            raise ValueError(f'config.SEED_VALUE = {self.seed}: dense_ssl_dataset needs a seed >= 0')
        self.epoch = 0

    def set_epoch(self, epoch):
        """Make the views of the next epoch differ (call before the data iterator is created)."""
        self.epoch = int(epoch)

    def sample_rng(self, idx, attempt):
        """The generator of draw ``attempt`` of sample ``idx`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(idx), int(attempt)])

    def load_image(self, idx):
        """``(PIL RGB image, file name)`` of sample ``idx`` (``DATA_LIMIT`` subsets applied)."""
        return read_source_image(self, idx, 'dense_ssl_dataset')

    def photometric(self, images, rng):
        """(V, 3, S, S) float: VISSL's ``TRANSFORMS`` applied to each view independently."""
        with seeded_global_rngs(int(rng.integers(2**31))):
            out = self.transform({'data': list(images)})['data']
        size = self.options.VIEW_SIZE
        if len(out) != len(images) or not all(
                isinstance(t, torch.Tensor) and tuple(t.shape) == (3, size, size) for t in out):
            got = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in out]
            raise ValueError(
                f'config.DATA.{self.split}.TRANSFORMS must map each view to a (3, {size}, {size}) '
                f'tensor (photometric transforms, ToTensor, Normalize; no crops or copies); got '
                f'{got} for {len(images)} views')
        return torch.stack(out).float()

    def build_item(self, image, rng, idx):
        """The sample dict of one draw; raises :class:`SampleRejected`."""
        views = generate_dense_views(image, self.options, rng)
        tensors = fill_noise(self.photometric(views.images, rng), views.noise_masks, rng)
        label = {'superpixels': torch.from_numpy(np.ascontiguousarray(views.superpixels)),
                 'flipped': torch.from_numpy(views.flipped),
                 'common_boxes': torch.from_numpy(views.common_boxes)}
        return {'data': list(tensors), 'label': [label], 'data_valid': [1], 'data_idx': [idx]}

    def __getitem__(self, idx):
        retry_rng = np.random.default_rng([self.seed, self.epoch, int(idx), RETRY_STREAM])
        image_idx, rejected = idx, []
        for attempt in range(self.options.MAX_RETRIES + 1):
            image, name = self.load_image(image_idx)
            try:
                return self.build_item(image, self.sample_rng(idx, attempt), idx)
            except SampleRejected as e:
                rejected.append(f'{name} ({e})')
                logging.debug('dense_ssl_dataset: sample %d: %s: %s; redrawing', idx, name, e)
                image_idx = int(retry_rng.integers(len(self)))
        raise DenseSampleError(
            f'dense_ssl_dataset: sample {idx} has no learnable region after '
            f'{len(rejected)} draws (config.DATA.{self.split}.DENSE_SSL.MAX_RETRIES = '
            f'{self.options.MAX_RETRIES}). Tried: {"; ".join(rejected)}. Check these images '
            f'(blank or tiny?), or make regions easier to keep: fewer VIEW_N, smaller '
            f'MASK_INTENSITY, larger PRESERVE_RATIO or SLIC_REGION_SIZE.')
