"""VISSL dataset type ``slotcon_two_crop``: SlotCon's two overlapping views with their boxes.

Spec: ../shared/specs/pretrain.md 2(a) "Augmentations" and "Dataset"; the augmentation itself
is ``densessl.slotcon.two_crop`` (crops, overlap boxes, flips, colour). Select it with
``DATA.TRAIN.DATASET_TYPE: slotcon_two_crop``; the options are ``DATA.<split>.TWO_CROP``
(vissl_plugins/slotcon/defaults.yaml). Images come from the configured VISSL data source
(``DATA_SOURCES`` / ``DATASET_NAMES`` / ``DATA_PATHS``: disk_filelist, disk_folder,
synthetic_scenes, ...). ``DATA.<split>.TRANSFORMS`` must be empty: every augmentation is part
of the two-crop pipeline, so VISSL transforms would be silently skipped.

One sample (``__getitem__``)::

    {'data': [float32 (2, 3, S, S)],   # view 1, view 2; normalised
     'label': [float32 (2, 5)],        # per view (x1, y1, x2, y2, flipped 0./1.)
     'data_valid': [1], 'data_idx': [idx]}

The box is the two crops' overlap in that view's normalised [0, 1] coordinates, mirrored
when the view is flipped (``x1 < x2`` and ``y1 < y2`` always; a pair without overlap is
redrawn, see densessl/slotcon/two_crop.py). ``slotcon_collator`` batches these.

Randomness: sample ``idx`` uses ``np.random.default_rng([seed, epoch, idx])`` (seed =
``SEED_VALUE``; epoch from ``set_epoch``, which vissl_plugins.compat fix 5 calls) for every
draw, so a run is reproducible, independent of the number of workers, and the views change
from epoch to epoch. The global RNGs are not used.
"""
import dataclasses

import numpy as np
import torch
from vissl.data import DATA_SOURCES_WITH_SUBSET_SUPPORT, DATASET_SOURCE_MAP
from vissl.data.ssl_dataset import GenericSSLDataset

from densessl.slotcon.two_crop import (InvalidTwoCropOption, NoOverlapError, TwoCropOptions,
                                       ViewPhotometric, two_crop_views)
from vissl_plugins.data.dataset_types import register_dataset_type
from vissl_plugins.data.image_files import read_source_image

# config key -> TwoCropOptions field ('view.field' for per-view lists [view 1, view 2])
SCALAR_KEYS = {'SIZE': 'size', 'MIN_OVERLAP': 'min_overlap', 'TRIES': 'tries',
               'PAIR_DRAWS': 'pair_draws', 'FLIP_P': 'flip_p', 'RATIO': 'ratio',
               'MEAN': 'mean', 'STD': 'std'}
SHARED_VIEW_KEYS = {'BRIGHTNESS': 'brightness', 'CONTRAST': 'contrast',
                    'SATURATION': 'saturation', 'HUE': 'hue', 'BLUR_SIGMA': 'blur_sigma',
                    'SOLARIZE_THRESHOLD': 'solarize_threshold'}
PER_VIEW_KEYS = {'JITTER_P': 'jitter_p', 'GRAYSCALE_P': 'grayscale_p', 'BLUR_P': 'blur_p',
                 'SOLARIZE_P': 'solarize_p'}
SCALE_KEYS = ('MIN_SCALE', 'MAX_SCALE')
ALL_KEYS = set(SCALAR_KEYS) | set(SHARED_VIEW_KEYS) | set(PER_VIEW_KEYS) | set(SCALE_KEYS)
TUPLE_FIELDS = ('ratio', 'mean', 'std', 'blur_sigma')


def two_crop_options(node, where='config.DATA.TRAIN.TWO_CROP'):
    """:class:`TwoCropOptions` from a ``TWO_CROP`` config mapping (missing keys: defaults).

    Unknown keys and values out of range raise ``ValueError`` naming ``where.KEY``.
    """
    node = dict(node or {})
    unknown = sorted(set(node) - ALL_KEYS)
    if unknown:
        raise ValueError(f'unknown key(s) {", ".join(where + "." + k for k in unknown)}; '
                         f'known: {", ".join(sorted(ALL_KEYS))}')

    def value(key, field):
        v = node[key]
        return tuple(float(x) for x in v) if field in TUPLE_FIELDS else v

    fields = {f: value(k, f) for k, f in SCALAR_KEYS.items() if k in node}
    defaults = TwoCropOptions()
    fields['scale'] = (float(node.get('MIN_SCALE', defaults.scale[0])),
                       float(node.get('MAX_SCALE', defaults.scale[1])))
    views = [dataclasses.asdict(defaults.view1), dataclasses.asdict(defaults.view2)]
    for key, field in SHARED_VIEW_KEYS.items():
        if key in node:
            for view in views:
                view[field] = value(key, field)
    for key, field in PER_VIEW_KEYS.items():
        if key in node:
            pair = list(node[key])
            if len(pair) != 2:
                raise ValueError(f'{where}.{key} = {pair!r}: needs two values, [view 1, view 2]')
            for view, v in zip(views, pair):
                view[field] = float(v)
    try:
        return TwoCropOptions(**fields, view1=ViewPhotometric(**views[0]),
                              view2=ViewPhotometric(**views[1])).check()
    except InvalidTwoCropOption as e:
        raise ValueError(f'{where}.{config_key(e.field)} = {e.reason}') from None


def config_key(field):
    """The ``TWO_CROP`` key of a :class:`TwoCropOptions` field name (``'view2.blur_p'`` too)."""
    if field == 'scale':
        return 'MIN_SCALE/MAX_SCALE'
    if field in ('mean', 'std'):
        return 'MEAN/STD'
    view, _, name = field.rpartition('.')
    for keys in (SCALAR_KEYS, SHARED_VIEW_KEYS, PER_VIEW_KEYS):
        for key, f in keys.items():
            if f == name:
                return f'{key}[{int(view[-1]) - 1}]' if keys is PER_VIEW_KEYS else key
    return field


def sample_target(boxes, flipped):
    """(2, 5) float32 per view ``(x1, y1, x2, y2, flipped)`` from boxes (2, 4) and flags (2,)."""
    return torch.cat([boxes, flipped.to(boxes.dtype)[:, None]], dim=1)


@register_dataset_type('slotcon_two_crop')
class SlotConTwoCropDataset(GenericSSLDataset):
    """SlotCon's dataset type (see the module docstring). Built as ``cls(cfg=cfg, split=split)``."""

    def __init__(self, cfg, split, dataset_source_map=None, data_sources_with_subset=None,
                 **kwargs):
        super().__init__(cfg, split,
                         DATASET_SOURCE_MAP if dataset_source_map is None else dataset_source_map,
                         DATA_SOURCES_WITH_SUBSET_SUPPORT if data_sources_with_subset is None
                         else data_sources_with_subset)
        self.options = two_crop_options(cfg['DATA'][split].get('TWO_CROP'),
                                        f'config.DATA.{split}.TWO_CROP')
        if len(self.data_objs) != 1:
            raise ValueError(f'slotcon_two_crop reads one data source; config.DATA.{split}.'
                             f'DATA_SOURCES has {len(self.data_objs)}: {list(self.data_sources)}')
        if cfg['DATA'][split].get('TRANSFORMS'):
            raise ValueError(f'config.DATA.{split}.TRANSFORMS must be [] with slotcon_two_crop: '
                             f'its crops, flips and colour augmentation are set by '
                             f'config.DATA.{split}.TWO_CROP, and other transforms would be '
                             f'ignored.')
        self.seed = int(cfg.get('SEED_VALUE', 0))
        if self.seed < 0:
            raise ValueError(f'config.SEED_VALUE = {self.seed}: slotcon_two_crop needs a seed >= 0')
        self.epoch = 0

    def set_epoch(self, epoch):
        """Make the views of the next epoch differ (call before the data iterator is created)."""
        self.epoch = int(epoch)

    def sample_rng(self, idx):
        """The generator of sample ``idx`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(idx)])

    def load_image(self, idx):
        """``(PIL RGB image, file name)`` of sample ``idx`` (``DATA_LIMIT`` subsets applied)."""
        return read_source_image(self, idx, 'slotcon_two_crop')

    def __getitem__(self, idx):
        image, name = self.load_image(idx)
        try:
            views = two_crop_views(image, self.options, self.sample_rng(idx))
        except NoOverlapError as e:
            raise NoOverlapError(f'slotcon_two_crop: sample {idx} ({name}): {e} '
                                 f'(config.DATA.{self.split}.TWO_CROP)') from e
        return {'data': [views.views], 'label': [sample_target(views.boxes, views.flipped)],
                'data_valid': [1], 'data_idx': [idx]}
