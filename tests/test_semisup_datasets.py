"""The semi-supervised protocol data: split-file data sets (VOC, Cityscapes, SUN RGB-D), the
protocol transforms (PartialLabels, rescales, padding, ReCo's colour step, ResizeAsStored),
and every protocol config's data sets and pipelines over tiny fake trees (no training)."""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mmseg_plugins  # noqa: F401  (registers the plugins)
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS

from densessl.semisup.label_subsets import SplitError
from densessl.semisup.partial_labels import partial_labels_for_image
from mmseg_plugins.datasets.checked_folders import DatasetNotFoundError

init_default_scope('mmseg')
CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'mmseg',
                      'semisup')
RNG = np.random.default_rng(0)


def _image(path, size=(8, 8)):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def _label(path, values, size=(8, 8)):
    os.makedirs(osp.dirname(path), exist_ok=True)
    label = np.asarray(values, dtype=np.uint8)[RNG.integers(0, len(values), size)]
    Image.fromarray(label).save(path)
    return label


def _write(path, lines):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(f'{line}\n' for line in lines))
    return str(path)


# ----------------------------------------------------------------------------- fake trees
VOC_TRAIN = ['2007_000032', '2007_000039', '2008_000123', '2010_004567', '2011_000001']
VOC_VAL = ['2007_000033', '2009_000012']


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / 'VOC2012'
    for i in VOC_TRAIN + VOC_VAL:
        _image(str(root / 'JPEGImages' / f'{i}.jpg'))
        _label(str(root / 'SegmentationClassAug' / f'{i}.png'), [0, 5, 15, 255])
    _image(str(root / 'JPEGImages' / '2012_999999.jpg'))  # a VOC image without a label
    _write(root / 'ImageSets' / 'Segmentation' / 'val.txt', VOC_VAL)
    split = tmp_path / 'splits' / 'voc'
    _write(split / 'labeled.txt', VOC_TRAIN[:2])
    _write(split / 'unlabeled.txt', VOC_TRAIN[2:])
    return dict(root=str(root), split=str(split),
                val=str(root / 'ImageSets' / 'Segmentation' / 'val.txt'))


CITY_TRAIN = [('aachen', 'aachen_000000_000019'), ('aachen', 'aachen_000001_000019'),
              ('bochum', 'bochum_000000_000313'), ('zurich', 'zurich_000002_000019')]
CITY_VAL = [('frankfurt', 'frankfurt_000000_000294'), ('lindau', 'lindau_000000_000019')]


@pytest.fixture
def cityscapes(tmp_path):
    root = tmp_path / 'cityscapes'
    for split, items in (('train', CITY_TRAIN), ('val', CITY_VAL)):
        for city, stem in items:
            _image(str(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png'))
            _label(str(root / 'gtFine' / split / city / f'{stem}_gtFine_labelTrainIds.png'),
                   [0, 2, 10, 13, 255])
    split = tmp_path / 'splits' / 'cityscapes'
    _write(split / 'labeled.txt', [CITY_TRAIN[0][1]])
    # U2PL's line format
    _write(split / 'unlabeled.txt', [f'leftImg8bit/train/{c}/{s}_leftImg8bit.png'
                                     for c, s in CITY_TRAIN[1:]])
    return dict(root=str(root), split=str(split))


SUN_TRAIN = ['img-000007', 'img-005051', 'img-005052', 'img-005053']
SUN_TEST = ['img-000001', 'img-000002']


@pytest.fixture
def sun(tmp_path):
    root = tmp_path / 'sun'
    for folder, ids in (('SUNRGBD-train_images', SUN_TRAIN), ('SUNRGBD-test_images', SUN_TEST)):
        for i in ids:
            _image(str(root / folder / f'{i}.jpg'))
            _label(str(root / 'sunrgbd_train_test_labels' / f'{i}.png'), [0, 1, 5, 37])
    split = tmp_path / 'splits' / 'sun'
    _write(split / 'labeled.txt', ['5051'])  # ReCo's numeric index
    _write(split / 'unlabeled.txt', [i for i in SUN_TRAIN if i != 'img-005051'])
    return dict(root=str(root), split=str(split))


def _voc(voc, split_file, **kwargs):
    return DATASETS.build(dict(type='PascalVOCSplitDataset', data_root=voc['root'],
                               split_file=split_file, **kwargs))


def _city(cityscapes, split_file, folder='train', **kwargs):
    return DATASETS.build(dict(
        type='CityscapesSplitDataset', data_root=cityscapes['root'], split_file=split_file,
        data_prefix=dict(img_path=f'leftImg8bit/{folder}', seg_map_path=f'gtFine/{folder}'),
        **kwargs))


def _sun(sun, split_file, folder='SUNRGBD-train_images', **kwargs):
    return DATASETS.build(dict(
        type='SUNRGBDDataset', data_root=sun['root'], split_file=split_file,
        data_prefix=dict(img_path=folder, seg_map_path='sunrgbd_train_test_labels'), **kwargs))


def _ids(dataset, suffix):
    return [osp.basename(dataset.get_data_info(k)['img_path'])[:-len(suffix)]
            for k in range(len(dataset))]


# ----------------------------------------------------------------------------- data sets
def test_split_files_select_the_images_in_file_order(voc, cityscapes, sun):
    labelled = _voc(voc, voc['split'] + '/labeled.txt')
    unlabelled = _voc(voc, voc['split'] + '/unlabeled.txt')
    assert _ids(labelled, '.jpg') == VOC_TRAIN[:2]
    assert _ids(unlabelled, '.jpg') == VOC_TRAIN[2:]
    assert _voc(voc, voc['val']).__len__() == len(VOC_VAL)
    assert labelled.metainfo['classes'][15] == 'person' and len(labelled.metainfo['classes']) == 21
    info = labelled.get_data_info(0)
    assert info['seg_map_path'].endswith(osp.join('SegmentationClassAug', '2007_000032.png'))

    city_l = _city(cityscapes, cityscapes['split'] + '/labeled.txt')
    city_u = _city(cityscapes, cityscapes['split'] + '/unlabeled.txt')  # U2PL's path lines
    assert _ids(city_l, '_leftImg8bit.png') == [CITY_TRAIN[0][1]]
    assert _ids(city_u, '_leftImg8bit.png') == [s for _, s in CITY_TRAIN[1:]]
    assert len(_city(cityscapes, None, folder='val')) == len(CITY_VAL)  # no split: all
    assert len(city_l.metainfo['classes']) == 19

    sun_l = _sun(sun, sun['split'] + '/labeled.txt')
    assert _ids(sun_l, '.jpg') == ['img-005051']  # '5051' read as img-005051
    assert len(_sun(sun, sun['split'] + '/unlabeled.txt')) == 3
    assert len(_sun(sun, None, folder='SUNRGBD-test_images')) == len(SUN_TEST)
    assert len(sun_l.metainfo['classes']) == 37 and sun_l.reduce_zero_label


def test_a_missing_id_names_the_split_file_line_and_expected_image(voc, cityscapes, tmp_path):
    bad = _write(tmp_path / 'bad_voc.txt', ['2007_000032', '2007_000039', '2099_000000'])
    with pytest.raises(SplitError) as error:
        _voc(voc, bad)
    message = str(error.value)
    assert bad in message and 'line 3' in message and '2099_000000' in message
    assert osp.join('JPEGImages', '2099_000000.jpg') in message

    bad = _write(tmp_path / 'bad_city.txt',
                 ['leftImg8bit/train/ulm/ulm_000000_000019_leftImg8bit.png'])
    with pytest.raises(SplitError) as error:
        _city(cityscapes, bad)
    message = str(error.value)
    assert bad in message and 'line 1' in message
    assert osp.join('leftImg8bit', 'train', 'ulm', 'ulm_000000_000019_leftImg8bit.png') in message

    # an image whose label map is missing: the split file, the line and the label path
    os.remove(osp.join(voc['root'], 'SegmentationClassAug', '2007_000039.png'))
    with pytest.raises(SplitError) as error:
        _voc(voc, voc['split'] + '/labeled.txt')
    message = str(error.value)
    assert 'labeled.txt: line 2' in message and 'no label map' in message
    assert osp.join('SegmentationClassAug', '2007_000039.png') in message

    dup = _write(tmp_path / 'dup.txt', ['2007_000032', '2007_000032'])
    with pytest.raises(SplitError, match='already on line 1'):
        _voc(voc, dup)


def test_a_missing_root_or_split_says_where_the_data_comes_from(tmp_path, voc):
    missing = str(tmp_path / 'nowhere')
    cases = [('PascalVOCSplitDataset', 'VOCtrainval_11-May-2012.tar'),
             ('CityscapesSplitDataset', 'cityscapes-dataset.com'),
             ('SUNRGBDDataset', 'sun_preprocess.py')]
    for name, source in cases:
        with pytest.raises(DatasetNotFoundError) as error:
            DATASETS.build(dict(type=name, data_root=missing, split_file=voc['val']))
        assert osp.abspath(missing) in str(error.value) and source in str(error.value)
    # the mmseg converter is named for the Cityscapes train-id labels
    with pytest.raises(DatasetNotFoundError, match='dataset_converters/cityscapes.py'):
        DATASETS.build(dict(type='CityscapesSplitDataset', data_root=missing))
    # a missing label folder
    os.rename(osp.join(voc['root'], 'SegmentationClassAug'), osp.join(voc['root'], 'moved'))
    with pytest.raises(DatasetNotFoundError, match='label folder'):
        _voc(voc, voc['val'])
    os.rename(osp.join(voc['root'], 'moved'), osp.join(voc['root'], 'SegmentationClassAug'))
    # a missing split file: how to write one
    with pytest.raises(SplitError, match='make_splits.py'):
        _voc(voc, str(tmp_path / 'no_split.txt'))
    with pytest.raises(ValueError, match='split_file'):
        _voc(voc, None)  # VOC's JPEGImages holds unlabelled extra images: a split is needed


def test_sun_refuses_an_unprocessed_layout_and_maps_labels_minus_one(sun):
    dataset = _sun(sun, sun['split'] + '/labeled.txt', pipeline=[
        dict(type='LoadImageFromFileChecked'),
        dict(type='LoadAnnotationsChecked', num_classes=37)])
    raw = np.asarray(Image.open(dataset.get_data_info(0)['seg_map_path']))
    label = dataset[0]['gt_seg_map']
    assert (label[raw == 0] == 255).all()
    assert (label[raw > 0] == raw[raw > 0] - 1).all()
    # before ReCo's preprocessing the train and test folders share file names
    _image(osp.join(sun['root'], 'SUNRGBD-train_images', 'img-000001.jpg'))
    with pytest.raises(DatasetNotFoundError, match="preprocessing"):
        _sun(sun, sun['split'] + '/labeled.txt')


def test_make_splits_writes_sun_and_restricted_voc_splits(voc, sun, tmp_path, repo_root):
    def make_splits(*args):
        return subprocess.run([sys.executable, osp.join(repo_root, 'tools', 'make_splits.py'),
                               *args], capture_output=True, text=True, cwd=repo_root)
    out = str(tmp_path / 'sun_split')
    proc = make_splits('--dataset', 'sun_rgbd', '--root', sun['root'], '--labelled-count', '2',
                       '--class-balanced', '--seed', '0', '--out', out)
    assert proc.returncode == 0, proc.stderr
    assert len(_sun(sun, out + '/labeled.txt')) == 2
    assert len(_sun(sun, out + '/unlabeled.txt')) == len(SUN_TRAIN) - 2
    # VOC: only the listed (train_aug) ids; the val images do not become unlabelled ones
    train_aug = _write(tmp_path / 'train_aug.txt', VOC_TRAIN)
    out = str(tmp_path / 'voc_split')
    proc = make_splits('--dataset', 'pascal_voc', '--root', voc['root'], '--id-list', train_aug,
                       '--labelled-count', '2', '--class-balanced', '--seed', '0', '--out', out)
    assert proc.returncode == 0, proc.stderr
    chosen = _ids(_voc(voc, out + '/labeled.txt'), '.jpg') + \
        _ids(_voc(voc, out + '/unlabeled.txt'), '.jpg')
    assert sorted(chosen) == sorted(VOC_TRAIN)
    bad = _write(tmp_path / 'bad_ids.txt', ['2099_000000'])
    proc = make_splits('--dataset', 'pascal_voc', '--root', voc['root'], '--id-list', bad,
                       '--labelled-count', '1', '--out', str(tmp_path / 'x'))
    assert proc.returncode != 0 and '2099_000000' in proc.stderr


# ----------------------------------------------------------------------------- transforms
def _results(label, image=None, name='aachen_000000_000019_leftImg8bit.png'):
    h, w = label.shape
    image = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8) if image is None else image
    return dict(img=image, img_shape=(h, w), ori_shape=(h, w), gt_seg_map=label.copy(),
                seg_fields=['gt_seg_map'], img_path=f'/data/x/{name}')


def _blobs(h=40, w=48):
    label = np.full((h, w), 255, dtype=np.uint8)
    label[:20, :30] = 1
    label[20:, :] = 7
    label[5:15, 35:45] = 3
    return label


@pytest.mark.parametrize('mode', ['p0', 'p1', 'p5', 'p25'])
def test_partial_labels_match_partial_labels_for_image(mode):
    label = _blobs()
    transform = TRANSFORMS.build(dict(type='PartialLabels', mode=mode, seed=1))
    out = transform(_results(label))['gt_seg_map']
    expected = partial_labels_for_image(label, mode, 1, 'aachen_000000_000019')
    np.testing.assert_array_equal(out, expected)
    for c in (1, 3, 7):  # counts per class: 1 for p0, at least int(p * n) otherwise
        n = int((label == c).sum())
        count = int((out == c).sum())
        assert count == 1 if mode == 'p0' else count >= max(1, int(float(mode[1:]) / 100 * n))
    assert ((out == label) | (out == 255)).all()


def test_partial_labels_are_deterministic_per_image_id():
    label = _blobs()
    transform = TRANSFORMS.build(dict(type='PartialLabels', mode='p0', seed=0))
    a = transform(_results(label, name='2007_000032.jpg'))['gt_seg_map']
    b = transform(_results(label, name='2007_000032.jpg'))['gt_seg_map']  # again, same id
    other = [transform(_results(label, name=f'2007_{k:06d}.jpg'))['gt_seg_map']
             for k in range(100, 104)]
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, o) for o in other)
    seeded = TRANSFORMS.build(dict(type='PartialLabels', mode='p0', seed=1))
    assert not np.array_equal(a, seeded(_results(label, name='2007_000032.jpg'))['gt_seg_map'])
    with pytest.raises(ValueError, match='p3'):
        TRANSFORMS.build(dict(type='PartialLabels', mode='p3'))


def test_u2pl_rescale_draws_the_two_piece_factor():
    transform = TRANSFORMS.build(dict(type='U2PLRandomRescale', scale_range=(0.5, 2.0)))
    np.random.seed(0)
    scales = np.array([transform.sample_scale() for _ in range(4000)])
    assert scales.min() >= 0.5 and scales.max() <= 2.0
    assert abs((scales < 1).mean() - 0.5) < 0.03  # half below 1 (mmseg's U[0.5, 2]: a third)
    np.random.seed(1)
    out = transform(_results(_blobs()))
    h, w = out['img'].shape[:2]
    sx, sy = out['scale_factor']
    assert out['gt_seg_map'].shape == (h, w) and h == int(40 * sy + 1e-9)
    assert set(np.unique(out['gt_seg_map'])) <= {1, 3, 7, 255}  # nearest: no new values
    reco = TRANSFORMS.build(dict(type='RandomRescale', scale_ranges=[(0.5, 1.5)],
                                 backend='pillow'))
    out = reco(_results(_blobs()))
    assert set(np.unique(out['gt_seg_map'])) <= {1, 3, 7, 255}


def test_pad_for_crop_pads_labels_with_ignore():
    label = _blobs(10, 12)
    image = RNG.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    reflect = TRANSFORMS.build(dict(type='PadForCrop', crop_size=(16, 14),
                                    img_padding_mode='reflect'))
    out = reflect(_results(label, image.copy()))
    assert out['img'].shape == (16, 14, 3) and out['gt_seg_map'].shape == (16, 14)
    np.testing.assert_array_equal(out['img'][:10, :12], image)  # bottom / right padding
    np.testing.assert_array_equal(out['img'][10, :12], image[8])  # reflected
    assert (out['gt_seg_map'][10:] == 255).all() and (out['gt_seg_map'][:, 12:] == 255).all()
    centre = TRANSFORMS.build(dict(type='PadForCrop', crop_size=(16, 16), position='center',
                                   img_pad_val=(1, 2, 3)))
    out = centre(_results(label, image.copy()))
    np.testing.assert_array_equal(out['img'][3:13, 2:14], image)
    assert tuple(out['img'][0, 0]) == (1, 2, 3)
    np.testing.assert_array_equal(out['gt_seg_map'][3:13, 2:14], label)
    big = centre(_results(_blobs(), None))  # already larger: unchanged
    assert big['img'].shape[:2] == (40, 48)


def test_reco_colour_augment_changes_only_the_image():
    label = _blobs()
    image = RNG.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    transform = TRANSFORMS.build(dict(type='ReCoColourAugment', jitter_prob=1.0, blur_prob=1.0))
    np.random.seed(3)
    out = transform(_results(label, image.copy()))
    assert out['img'].dtype == np.uint8 and out['img'].shape == image.shape
    assert not np.array_equal(out['img'], image)
    np.testing.assert_array_equal(out['gt_seg_map'], label)
    np.random.seed(3)
    np.testing.assert_array_equal(transform(_results(label, image.copy()))['img'], out['img'])
    never = TRANSFORMS.build(dict(type='ReCoColourAugment', jitter_prob=0.0, blur_prob=0.0))
    np.testing.assert_array_equal(never(_results(label, image.copy()))['img'], image)


def test_resize_as_stored_makes_the_resized_image_the_original():
    transform = TRANSFORMS.build(dict(type='ResizeAsStored', scale=(24, 20)))
    out = transform(_results(_blobs()))
    assert out['img'].shape[:2] == (20, 24) and out['gt_seg_map'].shape == (20, 24)
    assert out['ori_shape'] == (20, 24) and out['img_shape'] == (20, 24)
    assert set(np.unique(out['gt_seg_map'])) <= {1, 3, 7, 255}


# ----------------------------------------------------------------------------- configs
PROTOCOL_CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*_r101_*.py')))
EXPECTED_CONFIGS = {
    'reco_r101_cityscapes_20labels.py', 'reco_r101_cityscapes_20labels_supervised.py',
    'reco_r101_cityscapes_p0.py', 'reco_r101_voc_60labels.py', 'reco_r101_sun_50labels.py',
    'u2pl_r101_voc_classic_1464.py', 'u2pl_r101_voc_blended_662.py',
    'u2pl_r101_cityscapes_744.py', 'u2pl_r101_voc_classic_1464_supervised.py',
    'u2pl_r101_cityscapes_744_supervised.py'}


def test_every_protocol_config_is_listed():
    assert EXPECTED_CONFIGS <= set(PROTOCOL_CONFIGS)


def _point_at(dataset_cfg, trees):
    """Redirect one data set config to the fake tree of its type."""
    kind = dataset_cfg['type']
    if kind == 'PascalVOCSplitDataset':
        tree = trees['voc']
        dataset_cfg['data_root'] = tree['root']
        if dataset_cfg.get('split_file'):
            name = osp.basename(dataset_cfg['split_file'])
            dataset_cfg['split_file'] = tree['val'] if name == 'val.txt' else \
                osp.join(tree['split'], name)
    elif kind == 'CityscapesSplitDataset':
        tree = trees['cityscapes']
        dataset_cfg['data_root'] = tree['root']
        if dataset_cfg.get('split_file'):
            dataset_cfg['split_file'] = osp.join(tree['split'],
                                                 osp.basename(dataset_cfg['split_file']))
    elif kind == 'SUNRGBDDataset':
        tree = trees['sun']
        dataset_cfg['data_root'] = tree['root']
        if dataset_cfg.get('split_file'):
            dataset_cfg['split_file'] = osp.join(tree['split'],
                                                 osp.basename(dataset_cfg['split_file']))
    else:
        raise AssertionError(f'unexpected data set type {kind}')


def _crop(cfg):
    return tuple(cfg.model.data_preprocessor['size'])


@pytest.mark.parametrize('name', sorted(EXPECTED_CONFIGS))
def test_protocol_config_builds_its_data_over_a_fake_tree(name, voc, cityscapes, sun):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    assert cfg.model.type == 'SemiSupervisedSegmentor'
    loader = cfg.train_dataloader
    assert loader.dataset.type == 'ConcatDataset' and len(loader.dataset.datasets) == 2
    assert loader.sampler.type == 'LabelledUnlabelledSampler'
    assert loader.sampler.batch_size == loader.batch_size
    labelled = round(loader.batch_size * loader.sampler.labelled_fraction)
    assert labelled == cfg.model.labelled_per_batch
    assert cfg.model.network.num_classes == cfg.model.num_classes
    trees = dict(voc=voc, cityscapes=cityscapes, sun=sun)
    for dataset_cfg in loader.dataset.datasets:
        _point_at(dataset_cfg, trees)
    _point_at(cfg.val_dataloader.dataset, trees)

    train = DATASETS.build(loader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(train.datasets[0]) >= 1 and len(train.datasets[1]) >= 1 and len(val) >= 1
    crop = _crop(cfg)
    np.random.seed(0)
    for part in train.datasets:
        sample = part[0]
        assert tuple(sample['inputs'].shape[-2:]) == crop
        seg = sample['data_samples'].gt_sem_seg.data
        assert tuple(seg.shape[-2:]) == crop
        values = set(np.unique(seg.numpy()).tolist())
        assert values <= set(range(cfg.model.num_classes)) | {255}
    sample = val[0]
    seg = sample['data_samples'].gt_sem_seg.data
    assert tuple(seg.shape[-2:]) == tuple(sample['inputs'].shape[-2:])
    assert tuple(sample['data_samples'].ori_shape) == tuple(seg.shape[-2:])
    if 'reco_r101_cityscapes' in name:  # ReCo's protocol: scored at 512x1024
        assert tuple(seg.shape[-2:]) == (512, 1024)
    if '_p0' in name:  # both views: at most one labelled pixel per class (p0, in the crop)
        assert cfg.model.partial_labels
        for part in train.datasets:
            labels = part[0]['data_samples'].gt_sem_seg.data
            assert np.bincount(labels.numpy().ravel(), minlength=256)[:255].max() <= 1


# ----------------------------------------------------------------------------- real runs
def _tiny_run_config(name, trees, tmp_path):
    """The protocol config over the fake trees, at ResNet-18 from a random start, 2 + 2
    images per step of 96x96 crops, a small U2PL bank (and no supervised-only warm-up), 1
    iteration then validation; dumped to a file."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    for dataset_cfg in cfg.train_dataloader.dataset.datasets:
        _point_at(dataset_cfg, trees)
    _point_at(cfg.val_dataloader.dataset, trees)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.model.network.depth = 18
    cfg.model.network.init_cfg = None
    cfg.model.labelled_per_batch = 2
    cfg.train_dataloader.batch_size = cfg.train_dataloader.sampler.batch_size = 4
    cfg.train_dataloader.num_workers = cfg.val_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = cfg.val_dataloader.persistent_workers = False
    if cfg.model.contrast_loss and cfg.model.contrast_loss.type == 'U2PLContrastiveLoss':
        cfg.model.contrast_loss.queue_size = cfg.model.contrast_loss.queue_size_class0 = 64
    if cfg.model.method == 'u2pl':  # the semi-supervised step at once (the hook follows)
        cfg.model.u2pl.sup_only_iters = 0
    for dataset_cfg in cfg.train_dataloader.dataset.datasets:  # 96x96 crops: CPU-sized
        for transform in dataset_cfg.pipeline:
            if 'crop_size' in transform:
                transform.crop_size = (96, 96)
    cfg.model.data_preprocessor.size = (96, 96)
    if cfg.model.test_cfg.get('mode') == 'slide':
        cfg.model.test_cfg.update(crop_size=(96, 96), stride=(64, 64))
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = cfg.default_hooks.logger.interval = 1
    path = str(tmp_path / name)
    cfg.dump(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize('name, processes', [
    ('reco_r101_voc_60labels.py', 1),        # reflect padding, rescale, colour, 513 test pad
    ('reco_r101_cityscapes_p0.py', 1),       # partial labels in both views, 512x1024
    ('reco_r101_sun_50labels.py', 1),        # SUN's label - 1
    ('u2pl_r101_cityscapes_744.py', 1),      # OHEM, aux head, sliding-window test
    ('u2pl_r101_voc_classic_1464.py', 2)])   # decoder at 10x lr, 2 processes (gloo)
def test_protocol_config_trains_through_the_entry_points(name, processes, voc, cityscapes,
                                                           sun, tmp_path, repo_root, cpu_env,
                                                           free_port):
    config = _tiny_run_config(name, dict(voc=voc, cityscapes=cityscapes, sun=sun), tmp_path)
    work = str(tmp_path / 'work')
    entry = ([sys.executable, 'tools/train.py', config] if processes == 1 else
             ['bash', 'tools/dist_train.sh', config, str(processes)])
    if processes > 1:
        cpu_env = dict(cpu_env, PORT=free_port)
    proc = subprocess.run([*entry, '--work-dir', work], cwd=repo_root, env=cpu_env,
                          capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Iter(train) [1/1]' in log and 'loss_sup' in log
    assert 'loss_reco' in log or 'loss_contrast' in log
    assert 'mIoU' in log and osp.exists(osp.join(work, 'iter_1.pth'))
