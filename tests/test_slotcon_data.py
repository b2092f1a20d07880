"""SlotCon's two-crop data pipeline: crops, overlap boxes, flips, colour, data set, collator."""
import copy
import dataclasses
import functools
import os.path as osp
import random
import types

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from omegaconf import OmegaConf
from PIL import Image, ImageFilter, ImageOps

import vissl_plugins  # noqa: F401  (registers sources, dataset types)
from densessl.slotcon import two_crop
from densessl.slotcon.two_crop import (NoOverlapError, TwoCropOptions, ViewPhotometric,
                                       two_crop_views)
from vissl_plugins.slotcon.slotcon_collator import slotcon_collator
from vissl_plugins.slotcon.two_crop_dataset import SlotConTwoCropDataset

NO_COLOUR = ViewPhotometric(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


def plain_options(**kw):
    """Options without photometric augmentation (views = resized crops, normalised)."""
    return TwoCropOptions(**{'size': 32, 'view1': NO_COLOUR, 'view2': NO_COLOUR, **kw}).check()


def noise_image(width=96, height=64, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def coordinate_image(width=256, height=192):
    """R = x, G = y (in px), B = 128: a view's pixel tells where in the image it comes from."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x, y, np.full_like(x, 128)], -1).astype(np.uint8))


def reference_view(image, crop, flipped, size, colour=lambda view: view):
    """A view computed directly from its crop (image px) and flip flag."""
    x0, y0, x1, y1 = (int(c) for c in crop)
    view = image.crop((x0, y0, x1, y1)).resize((size, size), Image.BICUBIC)
    view = colour(view.transpose(Image.FLIP_LEFT_RIGHT) if flipped else view)
    return TF.normalize(TF.to_tensor(view), two_crop.IMAGENET_MEAN, two_crop.IMAGENET_STD)


def unnormalise(view):
    mean = torch.tensor(two_crop.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(two_crop.IMAGENET_STD)[:, None, None]
    return view * std + mean


class ScriptedRng:
    """Stands in for numpy's Generator in the crop sampler: ``integers`` answers from a script.

    ``uniform(lo, hi)`` must be called with ``lo == hi`` (the tests fix scale and ratio), so the
    crop size is known; ``integers(lo, hi)`` pops the next scripted value, checked in range.
    """

    def __init__(self, integers):
        self.script = list(integers)

    def uniform(self, lo, hi):
        assert lo == hi, 'the scripted tests fix scale and ratio'
        return lo

    def integers(self, lo, hi):
        value = self.script.pop(0)
        assert lo <= value < hi, (lo, value, hi)
        return value


# ---------------------------------------------------------------- crop geometry, overlap boxes

def test_crops_follow_random_resized_crop():
    o = TwoCropOptions()
    rng = np.random.default_rng(0)
    crops = np.array([two_crop.sample_crop(300, 200, o.scale, o.ratio, rng) for _ in range(2000)])
    w, h = crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1]
    assert (crops[:, :2] >= 0).all() and (crops[:, 2] <= 300).all() and (crops[:, 3] <= 200).all()
    area = w * h / (300 * 200)
    assert area.min() > 0.07 and area.max() <= 1
    aspect = w / h
    assert aspect.min() > 0.7 and aspect.max() < 1.4  # log-uniform in (3/4, 4/3), rounded
    # the same distribution as torchvision's RandomResizedCrop (its own random stream)
    from torchvision.transforms import RandomResizedCrop
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tv = np.array([RandomResizedCrop.get_params(torch.empty(3, 200, 300), list(o.scale),
                                                    list(o.ratio)) for _ in range(2000)])
    tv_area = tv[:, 2] * tv[:, 3] / (300 * 200)  # (top, left, h, w)
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(area, q) - np.quantile(tv_area, q)) < 0.04, q
    assert abs(np.median(aspect) - np.median(tv[:, 3] / tv[:, 2])) < 0.03
    # nothing fits -> centre crop of the whole image, aspect clamped to the ratio range
    assert two_crop.sample_crop(100, 10, (1.0, 1.0), (1.0, 1.0), rng) == (45, 0, 55, 10)


def test_overlap_boxes_map_back_to_the_pixelwise_intersection():
    """Boxes -> image px through each crop's geometry == intersection of the crops' pixel masks."""
    width, height = 60, 45
    options = TwoCropOptions(scale=(0.05, 0.6)).check()
    rng = np.random.default_rng(1)
    for _ in range(200):
        crops = two_crop.sample_crop_pair(width, height, options, rng)
        boxes = two_crop.overlap_boxes(*crops)
        assert boxes.dtype == np.float32 and ((boxes >= 0) & (boxes <= 1)).all()
        both = np.ones((height, width), dtype=bool)
        for x0, y0, x1, y1 in crops:
            inside = np.zeros_like(both)
            inside[y0:y1, x0:x1] = True
            both &= inside
        ys, xs = np.nonzero(both)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        for (x0, y0, x1, y1), box in zip(crops, boxes):
            back = box * np.array([x1 - x0, y1 - y0] * 2) + np.array([x0, y0] * 2)
            np.testing.assert_allclose(back, expected, atol=1e-4)
    with pytest.raises(ValueError, match='do not overlap'):
        two_crop.overlap_boxes((0, 0, 10, 10), (10, 0, 20, 10))  # touching is no overlap


def test_views_show_the_same_image_point_at_their_box_centres():
    """End to end, flips included: R/G of a coordinate image give the source point of a pixel."""
    image, size = coordinate_image(), 64
    options = plain_options(size=size, scale=(0.2, 0.6))
    checked_flips = set()
    for seed in range(30):
        out = two_crop_views(image, options, np.random.default_rng(seed))
        points = []
        for v in range(2):
            x1, y1, x2, y2 = out.boxes[v].tolist()
            assert x1 < x2 and y1 < y2
            u = (x1 + x2) / 2 * size  # box centre in view px (continuous)
            w = (y1 + y2) / 2 * size
            rgb = unnormalise(out.views[v]) * 255
            col, row = min(int(u), size - 1), min(int(w), size - 1)
            points.append(rgb[:2, row, col].numpy())  # (x, y) of the image shown there
            checked_flips.add(bool(out.flipped[v]))
        crops = out.crops
        # one view pixel spans crop / size image px: the two centres agree within ~2 such pixels
        tolerance = 2 * max((crops[:, 2:] - crops[:, :2]).max(), 1) / size + 1
        assert np.abs(points[0] - points[1]).max() <= tolerance, (seed, points)
    assert checked_flips == {True, False}


# ---------------------------------------------------------------- the 1 % rule and its fallback

def test_second_crop_needs_one_percent_of_its_target_area():
    # 100 x 100 image, every draw 20 x 20 (target area 400; 1 % = 4 px); crop 1 at (0, 0)
    first = (0, 0, 20, 20)
    rng = ScriptedRng([80, 80,    # (80, 80): no overlap -> rejected
                       19, 19,    # (19, 19): 1 x 1 = 1 px < 4 -> rejected
                       18, 18])   # (18, 18): 2 x 2 = 4 px >= 4 -> accepted
    crop, constrained = two_crop.sample_overlapping_crop(100, 100, first, (0.04, 0.04), (1, 1),
                                                         0.01, 10, rng)
    assert (crop, constrained) == ((18, 18, 38, 38), True) and not rng.script
    # min_overlap 0.02 (8 px) rejects the 4 px draw as well
    rng = ScriptedRng([18, 18, 17, 17])  # (17, 17): 3 x 3 = 9 px
    crop, _ = two_crop.sample_overlapping_crop(100, 100, first, (0.04, 0.04), (1, 1),
                                               0.02, 10, rng)
    assert crop == (17, 17, 37, 37)


def test_fallback_after_the_tries_is_an_unconstrained_crop():
    first = (0, 0, 20, 20)
    rng = ScriptedRng([80, 80, 70, 70,  # two tries, both without overlap
                       50, 50])          # fallback: unconstrained, far away, accepted as is
    crop, constrained = two_crop.sample_overlapping_crop(100, 100, first, (0.04, 0.04), (1, 1),
                                                         0.01, 2, rng)
    assert (crop, constrained) == ((50, 50, 70, 70), False) and not rng.script


def test_pair_without_overlap_is_redrawn_and_finally_an_error():
    options = TwoCropOptions(scale=(0.04, 0.04), ratio=(1, 1), tries=0, pair_draws=2).check()
    rng = ScriptedRng([0, 0, 80, 80,    # pair 1: crop 2 falls back far from crop 1 -> redrawn
                       0, 0, 10, 10])   # pair 2: overlapping
    assert two_crop.sample_crop_pair(100, 100, options, rng) == ((0, 0, 20, 20),
                                                                 (10, 10, 30, 30))
    rng = ScriptedRng([0, 0, 80, 80, 30, 30, 0, 0])
    with pytest.raises(NoOverlapError, match=r'100x100 image.*2 draws'):
        two_crop.sample_crop_pair(100, 100, options, rng)


def test_constrained_crops_overlap_with_real_random_draws():
    options = TwoCropOptions()
    rng = np.random.default_rng(2)
    fallbacks = 0
    for _ in range(500):
        first = two_crop.sample_crop(128, 64, options.scale, options.ratio, rng)
        second, constrained = two_crop.sample_overlapping_crop(
            128, 64, first, options.scale, options.ratio, 0.01, 10, rng)
        w, h = second[2] - second[0], second[3] - second[1]
        if constrained:  # >= 1 % of the target area, which is w * h up to rounding
            assert two_crop.intersection_area(first, second) >= 0.01 * (w - 0.5) * (h - 0.5)
        fallbacks += not constrained
    assert fallbacks < 5


# ---------------------------------------------------------------- flips, colour

def test_flip_mirrors_the_view_and_its_box():
    image = noise_image()
    flipped_options = plain_options(flip_p=1.0)
    for seed in range(5):
        plain = two_crop_views(image, plain_options(flip_p=0.0), np.random.default_rng(seed))
        flipped = two_crop_views(image, flipped_options, np.random.default_rng(seed))
        assert not plain.flipped.any() and flipped.flipped.all()
        assert (plain.crops == flipped.crops).all()
        assert torch.equal(flipped.views, plain.views.flip(-1))
        x1, y1, x2, y2 = plain.boxes.unbind(1)
        assert torch.allclose(flipped.boxes, torch.stack([1 - x2, y1, 1 - x1, y2], 1))
    # p = 0.5: both outcomes occur
    flags = torch.stack([two_crop_views(image, plain_options(), np.random.default_rng(s)).flipped
                         for s in range(20)])
    assert 0 < flags.float().mean() < 1


def test_views_without_colour_are_the_resized_crops():
    image = noise_image()
    for seed in range(3):
        out = two_crop_views(image, plain_options(), np.random.default_rng(seed))
        assert out.views.shape == (2, 3, 32, 32) and out.views.dtype == torch.float32
        assert out.boxes.shape == (2, 4) and out.boxes.dtype == torch.float32
        assert out.flipped.shape == (2,) and out.flipped.dtype == torch.bool
        for v in range(2):
            expected = reference_view(image, out.crops[v], out.flipped[v], 32)
            assert (out.views[v] - expected).abs().max() < 1e-5


def test_blur_and_solarize_at_probability_one_and_zero():
    image = noise_image()
    sigma = 1.3
    blur_only = dataclasses.replace(NO_COLOUR, blur_p=1.0, blur_sigma=(sigma, sigma))
    solarize_only = dataclasses.replace(NO_COLOUR, solarize_p=1.0, solarize_threshold=100)
    options = plain_options(view1=blur_only, view2=solarize_only)
    out = two_crop_views(image, options, np.random.default_rng(0))
    blurred = reference_view(image, out.crops[0], out.flipped[0], 32,
                             lambda v: v.filter(ImageFilter.GaussianBlur(sigma)))
    solarized = reference_view(image, out.crops[1], out.flipped[1], 32,
                               lambda v: ImageOps.solarize(v, 100))
    assert (out.views[0] - blurred).abs().max() < 1e-5
    assert (out.views[1] - solarized).abs().max() < 1e-5
    # the same draws with the probabilities swapped to 0: plain crops, same geometry
    plain = two_crop_views(image, plain_options(), np.random.default_rng(0))
    assert (plain.crops == out.crops).all()
    assert (plain.views[0] - reference_view(image, out.crops[0], out.flipped[0], 32)).abs().max() \
        < 1e-5
    assert not torch.allclose(plain.views, out.views, atol=1e-3)


def test_grayscale_and_jitter_at_probability_one():
    image = noise_image()
    grey = dataclasses.replace(NO_COLOUR, grayscale_p=1.0)
    brightness = dataclasses.replace(NO_COLOUR, jitter_p=1.0, brightness=0.4, contrast=0.0,
                                     saturation=0.0, hue=0.0)
    for seed in range(3):
        out = two_crop_views(image, plain_options(view1=grey, view2=brightness),
                             np.random.default_rng(seed))
        rgb = unnormalise(out.views[0])
        assert (rgb[0] - rgb[1]).abs().max() < 1e-5 and (rgb[1] - rgb[2]).abs().max() < 1e-5
        # brightness only: every pixel is its plain value times one factor in [0.6, 1.4]
        plain = unnormalise(reference_view(image, out.crops[1], out.flipped[1], 32))
        jittered = unnormalise(out.views[1])
        unclipped = (plain > 0.05) & (jittered < 0.95)
        ratio = jittered[unclipped] / plain[unclipped]
        assert 0.6 - 0.02 < ratio.median() < 1.4 + 0.02
        assert (ratio - ratio.median()).abs().max() < 0.15  # one factor (8-bit rounding aside)
        assert (ratio.median() - 1).abs() > 1e-3  # it did change


def test_default_options_are_the_spec_and_asymmetric():
    o = TwoCropOptions()
    assert (o.size, o.scale, o.min_overlap, o.tries, o.flip_p) == (224, (0.08, 1.0), 0.01, 10, 0.5)
    assert o.ratio == (3 / 4, 4 / 3)
    for view in (o.view1, o.view2):
        assert (view.jitter_p, view.brightness, view.contrast, view.saturation, view.hue) == \
            (0.8, 0.4, 0.4, 0.2, 0.1)
        assert view.grayscale_p == 0.2 and view.blur_sigma == (0.1, 2.0)
    assert (o.view1.blur_p, o.view2.blur_p) == (1.0, 0.1)
    assert (o.view1.solarize_p, o.view2.solarize_p) == (0.0, 0.2)


def test_a_sample_is_a_function_of_the_generator_seed():
    image, options = noise_image(), TwoCropOptions(size=32).check()
    a = two_crop_views(image, options, np.random.default_rng([0, 0, 5]))
    b = two_crop_views(image, options, np.random.default_rng([0, 0, 5]))
    c = two_crop_views(image, options, np.random.default_rng([0, 1, 5]))
    assert torch.equal(a.views, b.views) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.views, c.views)


# ---------------------------------------------------------------- VISSL data set and collator

def vissl_config(data_overrides, split='TRAIN', seed=0):
    """A full VISSL AttrDict config (VISSL + densessl defaults) with DATA.<split> overrides."""
    import vissl.config
    from vissl.config import AttrDict

    from vissl_plugins.config_check import check_config_keys, with_plugin_defaults
    base = OmegaConf.load(osp.join(osp.dirname(vissl.config.__file__), 'defaults.yaml'))
    data = {'DATASET_TYPE': 'slotcon_two_crop', 'BATCHSIZE_PER_REPLICA': 2, **data_overrides}
    cfg = with_plugin_defaults(OmegaConf.merge(base, {'config': {'DATA': {split: data},
                                                                 'SEED_VALUE': seed}}))
    check_config_keys(cfg)
    return AttrDict(OmegaConf.to_container(cfg.config, resolve=True))


@functools.lru_cache(maxsize=None)
def scenes_config(root, seed=0):
    """The checked config of the tiny scenes (composed once: composing takes ~0.4 s)."""
    return vissl_config({'DATA_SOURCES': ['synthetic_scenes'], 'DATASET_NAMES': ['synthetic_scenes'],
                         'DATA_PATHS': [root], 'TWO_CROP': {'SIZE': 32}}, seed=seed)


def scenes_dataset(root, seed=0, transforms=(), **two_crop_keys):
    cfg = copy.deepcopy(scenes_config(root, seed))
    cfg['DATA']['TRAIN']['TWO_CROP'].update(two_crop_keys)
    cfg['DATA']['TRAIN']['TRANSFORMS'] = list(transforms)
    return SlotConTwoCropDataset(cfg=cfg, split='TRAIN')


def test_dataset_sample_and_its_options(tiny_scenes):
    ds = scenes_dataset(tiny_scenes, MIN_SCALE=0.2, BLUR_P=[0.5, 0.0], SOLARIZE_P=[0.0, 0.0])
    o = ds.options
    assert o.scale == (0.2, 1.0) and o.size == 32
    assert (o.view1.blur_p, o.view2.blur_p, o.view2.solarize_p) == (0.5, 0.0, 0.0)
    assert o.view1.jitter_p == 0.8 and o.min_overlap == 0.01  # defaults.yaml = core defaults
    item = ds[3]
    assert item['data_idx'] == [3] and item['data_valid'] == [1]
    (views,), (target,) = item['data'], item['label']
    assert views.shape == (2, 3, 32, 32) and views.dtype == torch.float32
    assert target.shape == (2, 5) and target.dtype == torch.float32
    assert ((target[:, :4] >= 0) & (target[:, :4] <= 1)).all()
    assert (target[:, 0] < target[:, 2]).all() and (target[:, 1] < target[:, 3]).all()
    assert set(target[:, 4].tolist()) <= {0.0, 1.0}


def test_dataset_is_reproducible_per_seed_epoch_index(tiny_scenes):
    ds = scenes_dataset(tiny_scenes)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a, b = ds[3], ds[3]
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    assert torch.equal(a['data'][0], b['data'][0]) and torch.equal(a['label'][0], b['label'][0])
    again = scenes_dataset(tiny_scenes)[3]  # a fresh data set (another worker): same sample
    assert torch.equal(a['data'][0], again['data'][0])
    assert not torch.equal(a['data'][0], ds[4]['data'][0])
    assert not torch.equal(a['data'][0], scenes_dataset(tiny_scenes, seed=1)[3]['data'][0])
    ds.set_epoch(1)
    c = ds[3]
    assert not torch.equal(a['data'][0], c['data'][0])
    assert not torch.equal(a['label'][0], c['label'][0])
    ds.set_epoch(0)
    assert torch.equal(a['data'][0], ds[3]['data'][0])


def test_collator_layout(tiny_scenes):
    ds = scenes_dataset(tiny_scenes)
    items = [ds[i] for i in range(3)]
    batch = slotcon_collator(items)
    assert set(batch) == {'data', 'label', 'data_valid', 'data_idx'}
    (views,), (target,) = batch['data'], batch['label']
    assert views.shape == (6, 3, 32, 32) and target.shape == (3, 2, 5)
    assert target.dtype == torch.float32
    for b in range(3):
        for v in range(2):
            assert torch.equal(views[v * 3 + b], items[b]['data'][0][v])
        assert torch.equal(target[b], items[b]['label'][0])
    # view 1 of all images, then view 2 of all images
    expected = torch.cat([torch.stack([it['data'][0][0] for it in items]),
                          torch.stack([it['data'][0][1] for it in items])])
    assert torch.equal(views, expected)
    assert batch['data_idx'][0].tolist() == [0, 1, 2]
    assert batch['data_valid'][0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match='expected one'):
        slotcon_collator([{'data': [torch.zeros(3, 8, 8)], 'label': [torch.zeros(2, 5)],
                           'data_idx': [0], 'data_valid': [1]}])


def test_vissl_dataloader_with_two_workers_matches_one_process(tiny_scenes):
    """VISSL builds the data set by type and the loader with our collator; workers change nothing."""
    from vissl.data import build_dataloader
    from vissl.trainer.train_steps.standard_train_step import construct_sample_for_model

    from vissl_plugins.data.dataset_types import build_dataset_by_type
    cfg = vissl_config({'DATA_SOURCES': ['synthetic_scenes'], 'DATASET_NAMES': ['synthetic_scenes'],
                        'DATA_PATHS': [tiny_scenes], 'TWO_CROP': {'SIZE': 32},
                        'BATCHSIZE_PER_REPLICA': 4, 'COLLATE_FUNCTION': 'slotcon_collator'})
    ds = build_dataset_by_type(cfg, 'TRAIN')
    assert isinstance(ds, SlotConTwoCropDataset) and len(ds) == 16

    def batches(workers):
        loader = build_dataloader(ds, cfg['DATA']['TRAIN'], num_dataloader_workers=workers,
                                  pin_memory=False, multi_processing_method='fork',
                                  device=torch.device('cpu'))
        return list(loader)

    parallel, serial = batches(2), batches(0)
    assert len(parallel) == len(serial) == 4
    for p, s in zip(parallel, serial):
        assert torch.equal(p['data'][0], s['data'][0]) and torch.equal(p['label'][0], s['label'][0])
    task = types.SimpleNamespace(data_and_label_keys={'input': ['data'], 'target': ['label']})
    sample = construct_sample_for_model(parallel[0], task)
    assert sample['input'].shape == (8, 3, 32, 32)
    assert sample['target'].shape == (4, 2, 5) and sample['target'].dtype == torch.float32
    assert sample['target'].size(0) == 4  # VISSL weights the logged loss by target.size(0)
    assert sample['data_valid'][0].shape == (4,)  # VISSL copies the key's list over it


# ---------------------------------------------------------------- bad input

def test_bad_config_keys_and_values_are_refused(tiny_scenes):
    from vissl_plugins.config_check import UnknownConfigKeyError
    with pytest.raises(UnknownConfigKeyError, match='TWO_CROP.MIN_SCAL'):
        vissl_config({'TWO_CROP': {'MIN_SCAL': 0.2}})
    with pytest.raises(ValueError, match=r'TWO_CROP.MIN_SCALE/MAX_SCALE = \(0.0, 1.0\)'):
        scenes_dataset(tiny_scenes, MIN_SCALE=0.0)
    with pytest.raises(ValueError, match=r'TWO_CROP.BLUR_P\[1\] = 1.5: a probability'):
        scenes_dataset(tiny_scenes, BLUR_P=[1.0, 1.5])
    with pytest.raises(ValueError, match=r'TWO_CROP.SOLARIZE_P = \[0.2\]: needs two values'):
        scenes_dataset(tiny_scenes, SOLARIZE_P=[0.2])
    with pytest.raises(ValueError, match=r'TWO_CROP.MIN_OVERLAP = 2.0'):
        scenes_dataset(tiny_scenes, MIN_OVERLAP=2.0)
    with pytest.raises(ValueError, match=r'TRANSFORMS must be \[\]'):
        scenes_dataset(tiny_scenes, transforms=[{'name': 'ToTensor'}])
    with pytest.raises(ValueError, match=r'unknown key\(s\) config.DATA.TRAIN.TWO_CROP.TRYS'):
        scenes_dataset(tiny_scenes, TRYS=3)  # also without config_check


def filelist_dataset(folder, paths):
    from vissl.data import VisslDatasetCatalog
    if not VisslDatasetCatalog.has_data('slotcon_files'):  # a catalog name; DATA_PATHS wins
        VisslDatasetCatalog.register_data('slotcon_files', {'train': ['<unused>', '<unused>'],
                                                            'val': ['<unused>', '<unused>']})
    np.save(folder / 'files.npy', np.array([str(p) for p in paths]))
    cfg = vissl_config({'DATA_SOURCES': ['disk_filelist'], 'DATASET_NAMES': ['slotcon_files'],
                        'DATA_PATHS': [str(folder / 'files.npy')], 'TWO_CROP': {'SIZE': 32}})
    return SlotConTwoCropDataset(cfg=cfg, split='TRAIN')


def test_unreadable_image_names_the_file(tmp_path):
    from vissl_plugins.data.image_files import ImageFileError
    noise_image().convert('L').save(tmp_path / 'good.png')
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG not really')
    ds = filelist_dataset(tmp_path, [tmp_path / 'good.png', tmp_path / 'broken.png',
                                     tmp_path / 'gone.jpg'])
    assert ds[0]['data'][0].shape == (2, 3, 32, 32)  # grey image converted to RGB
    with pytest.raises(ImageFileError, match=r'broken\.png \(sample 1\)'):
        ds[1]
    with pytest.raises(ImageFileError, match=r'gone\.jpg'):
        ds[2]


def test_disk_folder_source(tmp_path):
    from vissl.data import VisslDatasetCatalog
    (tmp_path / 'cls').mkdir()
    noise_image(seed=1).save(tmp_path / 'cls' / 'a.png')
    if not VisslDatasetCatalog.has_data('slotcon_folder'):
        VisslDatasetCatalog.register_data('slotcon_folder', {'train': ['<unused>', '<unused>'],
                                                             'val': ['<unused>', '<unused>']})
    cfg = vissl_config({'DATA_SOURCES': ['disk_folder'], 'DATASET_NAMES': ['slotcon_folder'],
                        'DATA_PATHS': [str(tmp_path)], 'TWO_CROP': {'SIZE': 32}})
    ds = SlotConTwoCropDataset(cfg=cfg, split='TRAIN')
    assert len(ds) == 1 and ds[0]['label'][0].shape == (2, 5)


def test_image_too_thin_for_an_overlapping_pair_names_the_file(tmp_path):
    # 400 x 1 px, crops of 5 x 1 px, crop 2 unconstrained: most pairs do not overlap
    Image.new('RGB', (400, 1)).save(tmp_path / 'thin.png')
    ds = filelist_dataset(tmp_path, [tmp_path / 'thin.png'])
    ds.options = dataclasses.replace(ds.options, scale=(1 / 64, 1 / 64), ratio=(4, 4),
                                     pair_draws=1, tries=0)
    errors = 0
    for epoch in range(10):
        ds.set_epoch(epoch)
        try:
            ds[0]
        except NoOverlapError as e:
            assert 'thin.png' in str(e) and 'TWO_CROP' in str(e)
            errors += 1
    assert errors > 0
