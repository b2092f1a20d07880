"""SyntheticScenesDataset and the checked loading transforms (bad input -> clear errors)."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from PIL import Image

import mmseg_plugins  # noqa: F401  (registers the dataset and transforms)
from densessl import synthetic_scenes
from mmseg_plugins.datasets.checked_loading import (CorruptDataFileError, DataFileError,
                                                    LabelRangeError, LoadAnnotationsChecked,
                                                    LoadImageFromFileChecked,
                                                    MissingDataFileError)
from mmseg_plugins.datasets.synthetic_scenes import DatasetNotFoundError, SyntheticScenesDataset


@pytest.fixture(scope='module')
def scenes(tiny_scenes):
    """The shared 64x128 synthetic set of tests/conftest.py (8 train, 4 val)."""
    return tiny_scenes


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # what a config's default_scope does inside a Runner


def _dataset(root, split='train'):
    return SyntheticScenesDataset(
        data_root=root, data_prefix=dict(img_path=f'leftImg8bit/{split}',
                                         seg_map_path=f'gtFine/{split}'),
        pipeline=[dict(type='LoadImageFromFileChecked'),
                  dict(type='LoadAnnotationsChecked', num_classes=8),
                  dict(type='PackSegInputs')])


def test_dataset_reads_the_synthetic_scenes(scenes):
    train, val = _dataset(scenes), _dataset(scenes, 'val')
    assert len(train) == 8 and len(val) == 4
    assert train.metainfo['classes'] == synthetic_scenes.CLASSES
    assert [tuple(p) for p in train.metainfo['palette']] == list(synthetic_scenes.PALETTE)
    assert train.ignore_index == 255 and not train.reduce_zero_label
    for index in range(len(val)):  # images pair with their own labels
        info = val.get_data_info(index)
        assert osp.basename(info['img_path']).replace('_leftImg8bit.png', '') == \
            osp.basename(info['seg_map_path']).replace('_gtFine_labelTrainIds.png', '')
    sample = train[0]
    assert tuple(sample['inputs'].shape) == (3, 64, 128)
    label = sample['data_samples'].gt_sem_seg.data
    assert tuple(label.shape) == (1, 64, 128)
    _, expected = synthetic_scenes.render_sample(  # the label is the generator's own
        synthetic_scenes.SyntheticScenesConfig(height=64, width=128), 'train',
        int(osp.basename(train.get_data_info(0)['img_path']).split('_')[2]))
    assert np.array_equal(label[0].numpy(), expected)


def test_missing_data_root_says_how_to_create_it(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'synthetic_scenes')
    with pytest.raises(DatasetNotFoundError) as info:
        _dataset(missing)
    message = str(info.value)
    assert missing in message
    assert f'python tools/gen_synthetic_scenes.py --out {missing}' in message


def test_incomplete_data_root_is_reported(tmp_path, scenes):
    root = tmp_path / 'partial'
    os.makedirs(root / 'leftImg8bit' / 'val')
    with pytest.raises(DatasetNotFoundError, match=r'leftImg8bit/train does not exist.*'
                                                   r'gen_synthetic_scenes\.py --out'):
        _dataset(str(root))
    with pytest.raises(DatasetNotFoundError, match=r'no \*_leftImg8bit\.png images'):
        _dataset(str(root), 'val')


def test_missing_image_and_label_files_are_named(tmp_path):
    missing = str(tmp_path / 'gone_leftImg8bit.png')
    with pytest.raises(MissingDataFileError, match=f'image file not found: {missing}'):
        LoadImageFromFileChecked()(dict(img_path=missing))
    missing_label = str(tmp_path / 'gone_gtFine_labelTrainIds.png')
    with pytest.raises(MissingDataFileError, match=f'label file not found: {missing_label}'):
        LoadAnnotationsChecked(num_classes=8)(
            dict(seg_map_path=missing_label, reduce_zero_label=False, seg_fields=[]))


@pytest.mark.parametrize('damage', ['truncated', 'not_an_image', 'empty'])
def test_corrupt_image_is_named(tmp_path, damage):
    path = str(tmp_path / 'x_leftImg8bit.png')
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    data = open(path, 'rb').read()
    open(path, 'wb').write({'truncated': data[:40], 'not_an_image': b'hello world' * 10,
                            'empty': b''}[damage])
    with pytest.raises(CorruptDataFileError, match=rf'cannot decode image file {path}.*corrupt'):
        LoadImageFromFileChecked()(dict(img_path=path))


def test_corrupt_label_is_named(tmp_path):
    path = str(tmp_path / 'x_gtFine_labelTrainIds.png')
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    with pytest.raises(CorruptDataFileError, match=rf'cannot decode label file {path}'):
        LoadAnnotationsChecked(num_classes=8)(
            dict(seg_map_path=path, reduce_zero_label=False, seg_fields=[]))


def _label_file(tmp_path, array, name='x_gtFine_labelTrainIds.png'):
    path = str(tmp_path / name)
    Image.fromarray(array).save(path)
    return path


def _load_label(path, num_classes=8):
    return LoadAnnotationsChecked(num_classes=num_classes)(
        dict(seg_map_path=path, reduce_zero_label=False, seg_fields=[]))


def test_out_of_range_label_names_file_values_and_range(tmp_path):
    label = np.zeros((4, 4), np.uint8)
    label[0, 0], label[1, 1], label[2, 2] = 255, 9, 8
    path = _label_file(tmp_path, label)
    with pytest.raises(LabelRangeError,
                       match=rf'label file {path} holds value\(s\) \[8, 9\] outside the valid '
                             rf'range \[0, 8\) that are not the ignore index 255'):
        _load_label(path)


def test_valid_labels_and_ignore_pass(tmp_path):
    label = np.arange(16, dtype=np.uint8).reshape(4, 4) % 8
    label[0, 0] = 255
    out = _load_label(_label_file(tmp_path, label))
    assert np.array_equal(out['gt_seg_map'], label)
    assert 'gt_seg_map' in out['seg_fields']


def test_16bit_label_values_are_not_wrapped_silently(tmp_path):
    label = np.zeros((4, 4), np.uint16)
    label[0, 0] = 300  # a uint8 cast (what mmseg does) would make this a valid 44
    path = _label_file(tmp_path, label)
    with pytest.raises(LabelRangeError, match=rf'{path} holds value\(s\) \[300\]'):
        _load_label(path, num_classes=50)


def test_colour_label_image_is_refused(tmp_path):
    path = _label_file(tmp_path, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataFileError, match=rf'label file {path} has shape \(4, 4, 3\)'):
        _load_label(path)


def test_bad_label_inside_the_dataset_names_the_file(tmp_path, scenes):
    root = tmp_path / 'copy'
    shutil.copytree(scenes, root)
    dataset = _dataset(str(root), 'val')
    path = dataset.get_data_info(2)['seg_map_path']
    label = np.array(Image.open(path))
    label[5, 5] = 17
    Image.fromarray(label).save(path)
    dataset[1]  # the other files are fine
    with pytest.raises(LabelRangeError, match=rf'{path} holds value\(s\) \[17\]'):
        dataset[2]
