"""ViCE's dense data pipeline: view geometry, superpixel ids, masks, flips, retries, collator."""
import dataclasses
import os.path as osp
import random
import types

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import vissl_plugins  # noqa: F401  (registers sources, dataset types)
from densessl.vice import context_masks, view_sampling
from vissl_plugins.vice.dense_collator import dense_collator
from vissl_plugins.vice.dense_ssl_dataset import (DenseSampleError, DenseSSLDataset,
                                                  DenseSSLOptions, generate_dense_views)
from densessl.vice.superpixels import slic_superpixels

TRANSFORMS = [
    {'name': 'ImgPilColorDistortion', 'strength': 1.0},
    {'name': 'ImgPilGaussianBlur', 'p': 0.5, 'radius_min': 0.1, 'radius_max': 2.0},
    {'name': 'ToTensor'},
    {'name': 'Normalize', 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]},
]
# the small synthetic shape: 3 views of 96 px, SLIC grid scaled to the small images
SMALL = dict(VIEW_N=3, VIEW_SIZE=96, STANDARDIZE_MIN_SIDE=128, SLIC_REGION_SIZE=10)


def vissl_config(data_overrides, split='TRAIN'):
    """A full VISSL AttrDict config (VISSL + densessl defaults) with DATA.<split> overrides."""
    import vissl.config
    from vissl.config import AttrDict

    from vissl_plugins.config_check import check_config_keys, with_plugin_defaults
    base = OmegaConf.load(osp.join(osp.dirname(vissl.config.__file__), 'defaults.yaml'))
    data = {'DATASET_TYPE': 'dense_ssl_dataset', 'TRANSFORMS': TRANSFORMS,
            'BATCHSIZE_PER_REPLICA': 2, **data_overrides}
    cfg = with_plugin_defaults(OmegaConf.merge(base, {'config': {'DATA': {split: data}}}))
    check_config_keys(cfg)
    return AttrDict(OmegaConf.to_container(cfg.config, resolve=True))


def scenes_dataset(root, **dense):
    cfg = vissl_config({'DATA_SOURCES': ['synthetic_scenes'], 'DATASET_NAMES': ['synthetic_scenes'],
                        'DATA_PATHS': [root], 'DENSE_SSL': {**SMALL, **dense}})
    return DenseSSLDataset(cfg=cfg, split='TRAIN')


def block_image(height=128, width=256, block=16, seed=0):
    """RGB image of random-coloured blocks: SLIC regions follow the blocks."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(height // block + 1, width // block + 1, 3), dtype=np.uint8)
    rows, cols = np.arange(height) // block, np.arange(width) // block
    return Image.fromarray(colours[rows[:, None], cols[None, :]])


def small_options(**kw):
    return dataclasses.replace(DenseSSLOptions(), **{**SMALL, **kw})


@pytest.fixture(scope='module')
def scene_image(tiny_scenes):
    ds = scenes_dataset(tiny_scenes)
    return ds.load_image(0)[0]


# ---------------------------------------------------------------- standardisation, geometry

@pytest.mark.parametrize('mode', ['RGB', 'L', 'RGBA', 'P'])
def test_standardize_makes_rgb_with_sides_in_range(mode):
    small = Image.new(mode, (100, 60))
    out = view_sampling.standardize_image(small, 128, 512)
    assert out.mode == 'RGB' and out.size == (128, 128)
    assert np.asarray(out)[:20].max() == 0  # black centre padding above the upsampled image
    big = view_sampling.standardize_image(Image.new(mode, (3000, 1000)), 128, 512)
    assert big.mode == 'RGB' and big.size == (512, 171)
    same = view_sampling.standardize_image(Image.new('RGB', (300, 200)), 128, 512)
    assert same.size == (300, 200)


def test_view_offsets_lie_in_their_von_mises_sectors():
    rng = np.random.default_rng(0)
    sizes = np.array([400, 200, 300, 400, 600])
    thetas, radii = zip(*[view_sampling.sample_view_offsets(sizes, 2.0, 2.0, rng)
                          for _ in range(3000)])
    theta, r = np.stack(thetas), np.stack(radii)  # (3000, 4)
    width = 2 * np.pi / 4
    position = theta / width - np.arange(4)  # position within the own sector, in [0, 1]
    assert position.min() >= 0 and position.max() <= 1
    # von Mises(0, 2) puts most mass in the middle half of the sector (uniform: 0.5)
    assert (np.abs(position - 0.5) < 0.25).mean() > 0.7
    assert abs(np.median(position) - 0.5) < 0.03
    fraction = r / (sizes[1:] / 2)
    assert fraction.min() >= 0 and fraction.max() <= 1
    assert 0.6 < np.median(fraction) < 0.85  # mode at 0.75 of the half size (uniform: 0.5)


def test_views_inside_image_and_common_box_is_their_intersection(scene_image):
    options = small_options(FLIP_VIEWS=False)
    for seed in range(20):
        views = generate_dense_views(scene_image, options, np.random.default_rng(seed))
        width, height = views.image_size
        boxes = views.view_boxes
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all()
        assert (boxes[:, 3] <= height).all()
        assert (boxes[:, 2] - boxes[:, 0] == boxes[:, 3] - boxes[:, 1]).all()  # square
        covered = np.ones((height, width), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            inside = np.zeros_like(covered)
            inside[y0:y1, x0:x1] = True
            covered &= inside
        ys, xs = np.nonzero(covered)
        cx0, cy0, cx1, cy1 = views.common_rect
        assert (cx0, cy0, cx1, cy1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        # each view's common box maps back to the same image rectangle
        side = (boxes[:, 2] - boxes[:, 0])[:, None]
        back = views.common_boxes * side / options.VIEW_SIZE + boxes[:, [0, 1, 0, 1]]
        np.testing.assert_allclose(back, np.tile(views.common_rect, (3, 1)), atol=1e-3)


def test_common_rectangle_empty_and_area_limit():
    assert view_sampling.common_rectangle([[0, 0, 10, 10], [10, 0, 20, 10]]) is None
    rect = view_sampling.common_rectangle([[0, 0, 100, 100], [0, 0, 100, 100]], max_area=400)
    assert (rect[2] - rect[0]) * (rect[3] - rect[1]) <= 400
    assert tuple(rect) == (40, 40, 60, 60)


# ---------------------------------------------------------------- superpixels and region ids

def test_slic_region_larger_than_image_is_one_region_not_a_crash():
    # OpenCV's SLIC segfaults when region_size > 2 x the short side
    labels = slic_superpixels(np.full((40, 300, 3), 7, np.uint8), region_size=81)
    assert labels.shape == (40, 300) and (labels == 0).all()


def test_slic_labels_are_channel_order_independent():
    rgb = np.asarray(block_image())
    labels = slic_superpixels(rgb, 20, 10.0, 5)
    assert labels.shape == rgb.shape[:2] and labels.dtype == np.int32
    assert np.unique(labels).size > 20
    np.testing.assert_array_equal(labels, slic_superpixels(rgb[:, :, ::-1], 20, 10.0, 5))


def test_region_ids_cover_the_same_image_content_in_every_view():
    """Each output pixel shows, and carries the SLIC id of, one source pixel of the image."""
    block = 32
    image = block_image(block=block)
    options = small_options(FLIP_VIEWS=True)
    std = view_sampling.standardize_image(image, options.STANDARDIZE_MIN_SIDE,
                                          options.STANDARDIZE_MAX_SIDE)
    regions = slic_superpixels(np.asarray(std), options.SLIC_REGION_SIZE, 10.0, 5)
    source_rgb = np.asarray(std).astype(int)
    size, checked = options.VIEW_SIZE, 0
    for seed in range(10):
        views = generate_dense_views(image, options, np.random.default_rng(seed))
        sp = views.superpixels
        ids = [set(np.unique(sp[v])) - {-1} for v in range(3)]
        assert ids[0] and ids[0] == ids[1] == ids[2]
        for v, (x0, y0, x1, y1) in enumerate(views.view_boxes):
            flip = (lambda a: a[:, ::-1]) if views.flipped[v] else (lambda a: a)
            labels, rgb = flip(sp[v]), flip(np.asarray(views.images[v]).astype(int))
            centres = (np.arange(size) + 0.5) * (x1 - x0) / size
            rows, cols = (y0 + centres).astype(int), (x0 + centres).astype(int)
            learnable = labels >= 0
            np.testing.assert_array_equal(labels[learnable],
                                          regions[rows[:, None], cols[None, :]][learnable])
            # pixel content: away from block edges the (bicubic) view equals the source pixel
            far_y = np.abs((y0 + centres) % block - block / 2) < block / 2 - 4
            far_x = np.abs((x0 + centres) % block - block / 2) < block / 2 - 4
            interior = far_y[:, None] & far_x[None, :]
            source = source_rgb[rows[:, None], cols[None, :]]
            assert np.abs(rgb - source)[interior].max() <= 2
            checked += (learnable & interior).sum()
    assert checked > 1000


def test_small_synthetic_config_gives_tens_of_regions(scene_image):
    counts = [len(np.unique(generate_dense_views(scene_image, small_options(),
                                                 np.random.default_rng(s)).superpixels)) - 1
              for s in range(12)]
    assert np.mean(counts) >= 20, counts


# ---------------------------------------------------------------- context masks, noise

def test_preserved_regions_are_never_masked():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(64).reshape(8, 8), 8, 0).repeat(8, 1)[None].repeat(3, 0)
    common = np.arange(64)
    for _ in range(20):
        preserved = context_masks.choose_preserved_ids(common, 0.25, rng)
        assert len(preserved) == 16 and len(set(preserved)) == 16
        rects = context_masks.sample_mask_rectangles(3, 64, 0.5, rng)
        assert (rects[:, :2] >= 0).all() and (rects[:, 2:] <= 64).all()
        assert (rects[:, 2:] - rects[:, :2] <= 32).all()
        noise, masked = context_masks.masked_regions(labels, rects, preserved)
        assert not np.isin(masked, preserved).any()
        for v, (x0, y0, x1, y1) in enumerate(rects):
            touched = np.unique(labels[v, y0:y1, x0:x1])
            expect = np.isin(labels[v], np.setdiff1d(touched, preserved))
            np.testing.assert_array_equal(noise[v], expect)


def test_masks_in_generated_views(scene_image):
    seen_mask = False
    for seed in range(10):
        rng = np.random.default_rng(seed)
        views = generate_dense_views(scene_image, small_options(MASK_INTENSITY=0.5), rng)
        assert not (views.noise_masks & (views.superpixels >= 0)).any()  # learnable never noised
        seen_mask |= views.noise_masks.any()
        full = generate_dense_views(scene_image, small_options(PRESERVE_RATIO=1.0),
                                    np.random.default_rng(seed))
        unmasked = generate_dense_views(scene_image, small_options(MASK_INTENSITY=0.0),
                                        np.random.default_rng(seed))
        assert not unmasked.noise_masks.any()
        # preserving every common region masks none of them: same learnable set as no masks
        assert set(np.unique(full.superpixels)) == set(np.unique(unmasked.superpixels))
    assert seen_mask


def test_noise_fill_only_in_masked_pixels():
    rng = np.random.default_rng(0)
    views = torch.full((2, 3, 16, 16), 5.0)
    mask = rng.random((2, 16, 16)) < 0.3
    out = context_masks.fill_noise(views, mask, rng)
    m = torch.from_numpy(mask)[:, None].expand(-1, 3, -1, -1)
    assert (out[~m] == 5.0).all() and (views == 5.0).all()
    assert out[m].abs().max() <= 1 and out[m].std() > 0.4  # U(-1, 1): std 0.577
    assert not torch.equal(out[:, 0][torch.from_numpy(mask)], out[:, 1][torch.from_numpy(mask)])


# ---------------------------------------------------------------- flips

def test_flip_mirrors_image_labels_masks_and_box(scene_image):
    flips = 0
    for seed in range(6):
        plain = generate_dense_views(scene_image, small_options(FLIP_VIEWS=False),
                                     np.random.default_rng(seed))
        views = generate_dense_views(scene_image, small_options(FLIP_VIEWS=True),
                                     np.random.default_rng(seed))
        for v in range(3):
            img, ref = np.asarray(views.images[v]), np.asarray(plain.images[v])
            if views.flipped[v]:
                flips += 1
                np.testing.assert_array_equal(img, ref[:, ::-1])
                np.testing.assert_array_equal(views.superpixels[v], plain.superpixels[v, :, ::-1])
                np.testing.assert_array_equal(views.noise_masks[v], plain.noise_masks[v, :, ::-1])
                x0, y0, x1, y1 = plain.common_boxes[v]
                np.testing.assert_allclose(views.common_boxes[v], [96 - x1, y0, 96 - x0, y1])
            else:
                np.testing.assert_array_equal(img, ref)
                np.testing.assert_array_equal(views.superpixels[v], plain.superpixels[v])
    assert 0 < flips < 18


# ---------------------------------------------------------------- dataset: retries, files, RNG

def write_filelist(folder, images):
    paths = []
    for name, img in images:
        paths.append(str(folder / name))
        img.save(paths[-1])
    np.save(folder / 'files.npy', np.array(paths))
    return str(folder / 'files.npy')


def filelist_dataset(filelist, **dense):
    from vissl.data import VisslDatasetCatalog
    if not VisslDatasetCatalog.has_data('dense_files'):  # a name for the catalog; DATA_PATHS wins
        VisslDatasetCatalog.register_data('dense_files', {'train': ['<unused>', '<unused>'],
                                                          'val': ['<unused>', '<unused>']})
    cfg = vissl_config({'DATA_SOURCES': ['disk_filelist'], 'DATASET_NAMES': ['dense_files'],
                        'DATA_PATHS': [filelist],
                        'DENSE_SSL': {**SMALL, 'VIEW_SIZE': 64, 'STANDARDIZE_MIN_SIDE': 64,
                                      'MASK_INTENSITY': 0.0, **dense}})
    return DenseSSLDataset(cfg=cfg, split='TRAIN')


def test_retry_redraws_another_index_even_at_index_0(tmp_path):
    # image 0 is smaller than one SLIC region: a single superpixel, never learnable
    filelist = write_filelist(tmp_path, [
        ('tiny_grey.png', Image.new('L', (100, 100), 128)),
        ('rgba.png', block_image(300, 400, 40, seed=1).convert('RGBA')),
        ('grey.png', block_image(300, 400, 40, seed=2).convert('L'))])
    ds = filelist_dataset(filelist, SLIC_REGION_SIZE=150, RESIZE_RANGE=[2.0, 3.0])
    item = ds[0]
    assert item['data_idx'] == [0] and len(item['data']) == 3
    assert (item['label'][0]['superpixels'] >= 0).any()
    ds_no_retry = filelist_dataset(filelist, SLIC_REGION_SIZE=150, RESIZE_RANGE=[2.0, 3.0],
                                   MAX_RETRIES=0)
    with pytest.raises(DenseSampleError, match=r'MAX_RETRIES = 0.*tiny_grey\.png \(SLIC found a '
                                               r'single region\)'):
        ds_no_retry[0]


def test_retries_exhausted_names_every_file(tmp_path):
    filelist = write_filelist(tmp_path, [(f'flat{i}.png', Image.new('RGB', (90, 90), (i, 0, 0)))
                                         for i in range(2)])
    ds = filelist_dataset(filelist, SLIC_REGION_SIZE=200, MAX_RETRIES=3)
    with pytest.raises(DenseSampleError) as error:
        ds[0]
    message = str(error.value)
    assert 'after 4 draws' in message and 'flat0.png' in message and 'flat1.png' in message


def test_missing_image_file_is_named(tmp_path):
    filelist = write_filelist(tmp_path, [('a.png', block_image(100, 100))])
    np.save(tmp_path / 'files.npy', np.array([str(tmp_path / 'gone.png')]))
    ds = filelist_dataset(filelist)
    with pytest.raises(Exception, match='gone.png'):
        ds[0]


def test_bad_options_name_the_key(tiny_scenes):
    with pytest.raises(ValueError, match=r'DENSE_SSL.PROB_RES_AUG.*set it to 0.0'):
        scenes_dataset(tiny_scenes, PROB_RES_AUG=0.5)
    with pytest.raises(ValueError, match=r'DENSE_SSL.VIEW_N'):
        scenes_dataset(tiny_scenes, VIEW_N=1)
    from vissl_plugins.config_check import UnknownConfigKeyError
    with pytest.raises(UnknownConfigKeyError, match='DENSE_SSL.VIEW_NN'):
        vissl_config({'DENSE_SSL': {'VIEW_NN': 3}})


def test_samples_are_reproducible_epoch_dependent_and_leave_global_rngs(tiny_scenes):
    ds = scenes_dataset(tiny_scenes)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a, b = ds[3], ds[3]
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    for x, y in zip(a['data'], b['data']):
        assert torch.equal(x, y)
    assert torch.equal(a['label'][0]['superpixels'], b['label'][0]['superpixels'])
    ds.set_epoch(1)
    c = ds[3]
    assert not torch.equal(a['data'][0], c['data'][0])
    item = a
    assert [tuple(t.shape) for t in item['data']] == [(3, 96, 96)] * 3
    assert item['data'][0].min() < 0 < item['data'][0].max()  # normalised, not [0, 1]
    label = item['label'][0]
    assert label['superpixels'].dtype == torch.int64 and label['superpixels'].shape == (3, 96, 96)
    assert label['flipped'].dtype == torch.bool and label['common_boxes'].dtype == torch.float32


# ---------------------------------------------------------------- collator, DataLoader, VISSL

def test_collator_is_view_major(tiny_scenes):
    ds = scenes_dataset(tiny_scenes)
    items = [ds[i] for i in range(3)]
    batch = dense_collator(items)
    views = batch['data'][0]
    label = {'superpixels': batch['label'][0], 'flipped': batch['view_flipped'][0],
             'common_boxes': batch['view_common_boxes'][0]}
    assert len(batch['data']) == 1 and len(views) == 3
    assert label['superpixels'].shape == (9, 96, 96) and label['flipped'].shape == (9,)
    assert label['common_boxes'].shape == (9, 4)
    for v in range(3):
        assert views[v].shape == (3, 3, 96, 96)
        for n in range(3):
            assert torch.equal(views[v][n], items[n]['data'][v])
            for key in ('superpixels', 'flipped', 'common_boxes'):
                assert torch.equal(label[key][v * 3 + n], items[n]['label'][0][key][v])
    assert batch['data_idx'][0].tolist() == [0, 1, 2]
    assert batch['data_valid'][0].tolist() == [1, 1, 1]


def test_vissl_dataloader_with_two_workers_matches_one_process(tiny_scenes):
    """VISSL builds the dataset by type and the loader with our collator; workers change nothing."""
    from vissl.data import build_dataloader
    from vissl.trainer.train_steps.standard_train_step import construct_sample_for_model

    from vissl_plugins.data.dataset_types import build_dataset_by_type
    cfg = vissl_config({'DATA_SOURCES': ['synthetic_scenes'], 'DATASET_NAMES': ['synthetic_scenes'],
                        'DATA_PATHS': [tiny_scenes], 'DENSE_SSL': SMALL, 'BATCHSIZE_PER_REPLICA': 4,
                        'COLLATE_FUNCTION': 'dense_collator'})
    ds = build_dataset_by_type(cfg, 'TRAIN')
    assert isinstance(ds, DenseSSLDataset)

    def batches(workers):
        loader = build_dataloader(ds, cfg['DATA']['TRAIN'], num_dataloader_workers=workers,
                                  pin_memory=False, multi_processing_method='fork',
                                  device=torch.device('cpu'))
        return list(loader)

    parallel, serial = batches(2), batches(0)
    assert len(parallel) == len(serial) == 4
    for p, s in zip(parallel, serial):
        assert torch.equal(p['label'][0], s['label'][0])
        assert torch.equal(p['view_common_boxes'][0], s['view_common_boxes'][0])
        for x, y in zip(p['data'][0], s['data'][0]):
            assert torch.equal(x, y)
        counts = [(p['label'][0][r].unique() >= 0).sum() for r in range(12)]
        assert min(counts) >= 1
    task = types.SimpleNamespace(data_and_label_keys={'input': ['data'], 'target': ['label']})
    sample = construct_sample_for_model(parallel[0], task)
    assert len(sample['input']) == 3 and sample['input'][0].shape == (4, 3, 96, 96)
    assert torch.equal(sample['target'], parallel[0]['label'][0])  # the superpixels
    assert sample['target'].size(0) == 12  # VISSL's train step calls target.size(0)
    assert torch.equal(sample['view_flipped'][0], parallel[0]['view_flipped'][0])
