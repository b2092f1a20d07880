"""COCO-Stuff-27: the 182 -> 27 mapping, the converter tool, COCOStuffCoarseDataset."""
import os
import os.path as osp
import subprocess

import numpy as np
import pytest
from PIL import Image

from densessl import coco_stuff_coarse_classes as coarse

# ViCE's clsID_to_trID (mmsegmentation/tools/convert_datasets/coco_stuff164k_coarse.py),
# written out by value: REFERENCE[v] is the train id of label value v (0..181); 255 -> 255.
REFERENCE = [
    9, 11, 11, 11, 11, 11, 11, 11, 11, 8,  # 0-9
    8, 8, 8, 8, 8, 7, 7, 7, 7, 7,  # 10-19
    7, 7, 7, 7, 7, 6, 6, 6, 6, 6,  # 20-29
    6, 6, 6, 10, 10, 10, 10, 10, 10, 10,  # 30-39
    10, 10, 10, 5, 5, 5, 5, 5, 5, 5,  # 40-49
    5, 2, 2, 2, 2, 2, 2, 2, 2, 2,  # 50-59
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3,  # 60-69
    3, 0, 0, 0, 0, 0, 0, 1, 1, 1,  # 70-79
    1, 1, 1, 4, 4, 4, 4, 4, 4, 4,  # 80-89
    4, 17, 17, 22, 20, 20, 22, 15, 25, 16,  # 90-99
    13, 12, 12, 17, 17, 23, 15, 15, 17, 15,  # 100-109
    21, 15, 25, 13, 13, 13, 13, 13, 22, 26,  # 110-119
    14, 14, 15, 22, 21, 21, 24, 20, 22, 15,  # 120-129
    17, 16, 15, 22, 24, 21, 17, 25, 16, 21,  # 130-139
    17, 22, 16, 21, 21, 25, 21, 26, 21, 24,  # 140-149
    20, 17, 14, 21, 26, 15, 23, 20, 21, 24,  # 150-159
    15, 24, 22, 25, 15, 20, 17, 17, 22, 14,  # 160-169
    18, 18, 18, 18, 18, 18, 18, 26, 26, 19,  # 170-179
    19, 24,  # 180-181
]
EXPECTED_CLASSES = (
    'electronic', 'appliance', 'food', 'furniture', 'indoor', 'kitchen', 'accessory', 'animal',
    'outdoor', 'person', 'sports', 'vehicle', 'ceiling', 'floor', 'food-stuff',
    'furniture-stuff', 'raw-material', 'textile', 'wall', 'window', 'building', 'ground',
    'plant', 'sky', 'solid', 'structural', 'water')
TOOL = osp.join('tools', 'convert_datasets', 'coco_stuff164k_coarse.py')
ALL_VALUES = np.r_[0:182, 255].astype(np.uint8)  # 183 values: every label + unlabelled


def reference_lookup(fine):
    table = np.full(256, 255, dtype=np.uint8)
    table[:182] = REFERENCE
    return table[fine]


# ---------------------------------------------------------------- the mapping

def test_mapping_matches_vice_for_every_one_of_the_182_labels():
    assert len(REFERENCE) == 182 == coarse.NUM_FINE_LABELS
    for value in range(182):
        assert coarse.FINE_TO_COARSE[value] == REFERENCE[value], \
            (value, coarse.COCO_STUFF_LABELS[value])
    assert coarse.FINE_TO_COARSE[255] == 255
    assert set(coarse.FINE_TO_COARSE) == set(range(182)) | {255}


def test_class_names_are_the_supercategories_in_train_id_order():
    assert coarse.CLASSES == EXPECTED_CLASSES
    names = dict(coarse.COCO_STUFF_LABELS[v] for v in range(182))
    value_of = {name: v for v, (name, _) in enumerate(coarse.COCO_STUFF_LABELS)}
    # spot checks straight from the COCO / COCO-Stuff label lists
    for name, supercategory in [('person', 'person'), ('car', 'vehicle'), ('giraffe', 'animal'),
                                ('tv', 'electronic'), ('toothbrush', 'indoor'),
                                ('clouds', 'sky'), ('fog', 'water'), ('road', 'ground'),
                                ('wood', 'solid'), ('light', 'furniture-stuff')]:
        assert names[name] == supercategory
        assert coarse.CLASSES[REFERENCE[value_of[name]]] == supercategory
    assert value_of['person'] == 0 and value_of['banner'] == 91 and value_of['wood'] == 181
    assert all(REFERENCE[v] < 12 for v in range(91)) and all(REFERENCE[v] >= 12
                                                             for v in range(91, 182))
    assert sorted(set(REFERENCE)) == list(range(27))  # every class has members


def test_palette_has_27_distinct_colours():
    assert len(coarse.PALETTE) == 27 and len(set(coarse.PALETTE)) == 27
    assert all(len(c) == 3 and all(0 <= x <= 255 for x in c) for c in coarse.PALETTE)


def test_to_coarse_maps_every_value_like_the_reference():
    fine = np.random.default_rng(0).permutation(np.tile(ALL_VALUES, 4)).reshape(12, 61)
    out = coarse.to_coarse(fine, source='x.png')
    assert out.dtype == np.uint8 and out.shape == fine.shape
    np.testing.assert_array_equal(out, reference_lookup(fine))


@pytest.mark.parametrize('bad', [182, 200, 254])
def test_to_coarse_names_the_source_and_the_bad_value(bad):
    fine = np.array([[0, 5], [bad, 255]], dtype=np.uint8)
    with pytest.raises(coarse.LabelValueError, match=f'labels/a.png: label value.*{bad}'):
        coarse.to_coarse(fine, source='labels/a.png')


def test_to_coarse_rejects_out_of_range_wider_ints():
    with pytest.raises(coarse.LabelValueError, match='-1, 300'):
        coarse.to_coarse(np.array([[-1, 300, 3]]), source='s')
    np.testing.assert_array_equal(coarse.to_coarse(np.array([[0, 181, 255]], dtype=np.int64)),
                                  [[9, 24, 255]])


# ---------------------------------------------------------------- the converter tool

def _write_coco_stuff(root, ids, seed=0):
    """Fake COCO-Stuff-164k: per split, tiny JPEGs and label PNGs holding all 183 values."""
    rng = np.random.default_rng(seed)
    for split, split_ids in ids.items():
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for i in split_ids:
            image = rng.integers(0, 256, (3, 61, 3), dtype=np.uint8)
            Image.fromarray(image).save(osp.join(root, 'images', split, i + '.jpg'))
            label = rng.permutation(ALL_VALUES).reshape(3, 61)
            Image.fromarray(label).save(osp.join(root, 'annotations', split, i + '.png'))


def _write_list(path, ids):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(i + '\n' for i in ids))
    return str(path)


@pytest.fixture
def coco_stuff(tmp_path):
    root = str(tmp_path / 'coco_stuff164k')
    ids = {'train2017': ['000000000009', '000000000025', '000000000030', '000000000034'],
           'val2017': ['000000000139', '000000000285']}
    _write_coco_stuff(root, ids)
    lists = {'train': _write_list(tmp_path / 'curated' / 'train.txt', ids['train2017'][:3]),
             'val': _write_list(tmp_path / 'curated' / 'val.txt', ids['val2017'][1:])}
    return root, ids, lists


def _convert(python, repo_root, cpu_env, root, *args):
    result = subprocess.run([python, TOOL, root, *args], cwd=repo_root, env=cpu_env,
                            capture_output=True, text=True, timeout=120)
    return result


def _snapshot(folder):
    return {osp.relpath(osp.join(d, f), folder): os.lstat(osp.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(folder) for f in files}


def test_converter_maps_labels_and_links_the_listed_ids(python, repo_root, cpu_env, coco_stuff,
                                                        tmp_path):
    root, ids, lists = coco_stuff
    out = str(tmp_path / 'coco_stuff164k_coarse')
    result = _convert(python, repo_root, cpu_env, root, '--train-list', lists['train'],
                      '--val-list', lists['val'], '-o', out, '--nproc', '2')
    assert result.returncode == 0, result.stderr
    assert 'train2017: 4 label maps converted' in result.stdout
    for split, split_ids in ids.items():
        for i in split_ids:  # every label map is converted, listed or not
            fine = np.array(Image.open(osp.join(root, 'annotations', split, i + '.png')))
            converted = Image.open(osp.join(out, 'annotations', split,
                                            i + '_labelTrainIds_27.png'))
            assert converted.mode == 'L'
            np.testing.assert_array_equal(np.array(converted), reference_lookup(fine))
    listed = {'train2017': ids['train2017'][:3], 'val2017': ids['val2017'][1:]}
    for split, split_ids in listed.items():
        images = sorted(os.listdir(osp.join(out, 'images_coarse', split)))
        labels = sorted(os.listdir(osp.join(out, 'annotations_coarse', split)))
        assert images == [i + '.jpg' for i in split_ids]
        assert labels == [i + '_labelTrainIds_27.png' for i in split_ids]
        for i in split_ids:
            image_link = osp.join(out, 'images_coarse', split, i + '.jpg')
            assert osp.islink(image_link)
            assert osp.samefile(image_link, osp.join(root, 'images', split, i + '.jpg'))
            label_link = osp.join(out, 'annotations_coarse', split, i + '_labelTrainIds_27.png')
            assert osp.samefile(label_link, osp.join(out, 'annotations', split,
                                                     i + '_labelTrainIds_27.png'))
            assert not osp.isabs(os.readlink(label_link))  # inside OUT: relative, movable
    assert not [p for p in _snapshot(out) if '.tmp' in p]  # no temp files left behind


def test_converter_rerun_is_idempotent_and_follows_a_changed_list(python, repo_root, cpu_env,
                                                                  coco_stuff, tmp_path):
    root, ids, lists = coco_stuff
    args = ['--train-list', lists['train'], '--val-list', lists['val'], '--nproc', '1']
    assert _convert(python, repo_root, cpu_env, root, *args).returncode == 0  # OUT = ROOT
    before = _snapshot(root)
    again = _convert(python, repo_root, cpu_env, root, *args)
    assert again.returncode == 0, again.stderr
    assert 'train2017: 0 label maps converted, 4 already up to date' in again.stdout
    assert '0 new, 6 kept, 0 stale removed' in again.stdout
    assert _snapshot(root) == before  # nothing rewritten, converted files not re-converted
    # a changed train list: the dropped id's links go, the new id's links come
    new_list = _write_list(tmp_path / 'curated' / 'train_v2.txt',
                           [ids['train2017'][0], ids['train2017'][3]])
    changed = _convert(python, repo_root, cpu_env, root, '--train-list', new_list, '--val-list',
                       lists['val'], '--nproc', '1')
    assert changed.returncode == 0, changed.stderr
    assert '2 new, 2 kept, 4 stale removed' in changed.stdout
    assert sorted(os.listdir(osp.join(root, 'images_coarse', 'train2017'))) == \
        [ids['train2017'][0] + '.jpg', ids['train2017'][3] + '.jpg']
    forced = _convert(python, repo_root, cpu_env, root, *args, '--overwrite')
    assert 'train2017: 4 label maps converted' in forced.stdout


def test_converter_names_the_file_and_value_of_a_bad_label(python, repo_root, cpu_env,
                                                           coco_stuff):
    root, ids, lists = coco_stuff
    bad = osp.join(root, 'annotations', 'val2017', ids['val2017'][0] + '.png')
    label = np.array(Image.open(bad))
    label[1, 7] = 200
    Image.fromarray(label).save(bad)
    result = _convert(python, repo_root, cpu_env, root, '--nproc', '2')
    assert result.returncode == 1
    assert f'{bad}: label value(s) 200 are not COCO-Stuff-164k labels' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not osp.exists(bad.replace('.png', '_labelTrainIds_27.png'))


def test_converter_rejects_a_colour_or_truncated_label_png(python, repo_root, cpu_env,
                                                           coco_stuff):
    root, ids, _ = coco_stuff
    bad = osp.join(root, 'annotations', 'train2017', ids['train2017'][1] + '.png')
    Image.fromarray(np.zeros((3, 4, 3), dtype=np.uint8)).save(bad)
    result = _convert(python, repo_root, cpu_env, root, '--nproc', '1')
    assert result.returncode == 1 and f'{bad}: mode RGB' in result.stderr
    Image.fromarray(np.zeros((40, 60), dtype=np.uint8)).save(bad)
    data = open(bad, 'rb').read()
    open(bad, 'wb').write(data[:len(data) // 2])
    result = _convert(python, repo_root, cpu_env, root, '--nproc', '1')
    assert result.returncode == 1 and f'{bad}: cannot decode the label PNG' in result.stderr


def test_converter_checks_the_lists_before_converting(python, repo_root, cpu_env, coco_stuff,
                                                      tmp_path):
    root, ids, lists = coco_stuff
    # the val list given as the train list: its ids have no train2017 images
    swapped = _convert(python, repo_root, cpu_env, root, '--train-list', lists['val'])
    assert swapped.returncode == 1
    assert (f'--train-list: 1 of 1 listed ids have no image file, e.g. '
            f'{osp.join(root, "images", "train2017", ids["val2017"][1] + ".jpg")}'
            in swapped.stderr)
    assert not [p for p in _snapshot(root) if '_labelTrainIds_27' in p]  # failed fast
    missing = _convert(python, repo_root, cpu_env, root, '--val-list',
                       str(tmp_path / 'nowhere.txt'))
    assert missing.returncode == 1
    assert 'nowhere.txt: no such file' in missing.stderr
    assert 'COCOStuff164kCurated' in missing.stderr
    nothing = _convert(python, repo_root, cpu_env, str(tmp_path / 'no_root'))
    assert nothing.returncode == 1 and 'no_root does not exist' in nothing.stderr
    os.makedirs(tmp_path / 'empty' / 'annotations' / 'train2017')
    empty = _convert(python, repo_root, cpu_env, str(tmp_path / 'empty'))
    assert empty.returncode == 1 and 'no COCO-Stuff label PNGs in' in empty.stderr


def test_converter_refuses_to_replace_a_regular_file_by_a_link(python, repo_root, cpu_env,
                                                               coco_stuff):
    root, ids, lists = coco_stuff
    folder = osp.join(root, 'images_coarse', 'val2017')
    os.makedirs(folder)
    with open(osp.join(folder, ids['val2017'][1] + '.jpg'), 'w') as f:
        f.write('user data')
    result = _convert(python, repo_root, cpu_env, root, '--val-list', lists['val'])
    assert result.returncode == 1 and 'exists and is not a link' in result.stderr
    assert open(osp.join(folder, ids['val2017'][1] + '.jpg')).read() == 'user data'


# ---------------------------------------------------------------- the MMSeg dataset

@pytest.fixture
def converted(python, repo_root, cpu_env, coco_stuff, tmp_path):
    root, ids, lists = coco_stuff
    out = str(tmp_path / 'coco_stuff164k_coarse')
    result = _convert(python, repo_root, cpu_env, root, '--train-list', lists['train'],
                      '--val-list', lists['val'], '-o', out, '--nproc', '1')
    assert result.returncode == 0, result.stderr
    return root, out, ids


@pytest.fixture
def mmseg_scope():
    import mmseg_plugins  # noqa: F401  (registers the dataset and transforms)
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


def _build(data_root, split='train2017', **kwargs):
    from mmseg.registry import DATASETS
    return DATASETS.build(dict(
        type='COCOStuffCoarseDataset', data_root=data_root,
        data_prefix=dict(img_path=f'images_coarse/{split}',
                         seg_map_path=f'annotations_coarse/{split}'),
        pipeline=[dict(type='LoadImageFromFileChecked'),
                  dict(type='LoadAnnotationsChecked', num_classes=27),
                  dict(type='PackSegInputs')], **kwargs))


def test_dataset_loads_the_converted_set_through_the_registry(converted, mmseg_scope):
    root, out, ids = converted
    train, val = _build(out), _build(out, 'val2017')
    assert len(train) == 3 and len(val) == 1
    assert train.metainfo['classes'] == EXPECTED_CLASSES
    assert len(train.metainfo['palette']) == 27
    assert train.ignore_index == 255 and not train.reduce_zero_label
    sample = val[0]
    assert tuple(sample['inputs'].shape) == (3, 3, 61)
    fine = np.array(Image.open(osp.join(root, 'annotations', 'val2017',
                                        ids['val2017'][1] + '.png')))
    np.testing.assert_array_equal(sample['data_samples'].gt_sem_seg.data[0].numpy(),
                                  reference_lookup(fine))


def test_vice_coco_config_reads_this_layout(converted, mmseg_scope, repo_root):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    _, out, _ = converted
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'mmseg', 'vice',
                                   'fcn_linear_coco-stuff164k.py'))
    for loader, expected in ((cfg.train_dataloader, 3), (cfg.val_dataloader, 1)):
        loader.dataset.data_root = out
        dataset = DATASETS.build(loader.dataset)
        assert len(dataset) == expected
        assert dataset[0]['data_samples'].gt_sem_seg.data.max() <= 255


def test_dataset_errors_say_how_to_create_it(converted, mmseg_scope, tmp_path):
    from mmseg_plugins.datasets.synthetic_scenes import DatasetNotFoundError
    _, out, ids = converted
    with pytest.raises(DatasetNotFoundError, match='data root .*nowhere does not exist.*'
                                                   'coco_stuff164k_coarse.py'):
        _build(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'empty' / 'images_coarse' / 'train2017')
    os.makedirs(tmp_path / 'empty' / 'annotations_coarse' / 'train2017')
    with pytest.raises(DatasetNotFoundError, match=r'no \*\.jpg images under'):
        _build(str(tmp_path / 'empty'))
    os.makedirs(tmp_path / 'no_labels' / 'images_coarse' / 'train2017')
    with pytest.raises(DatasetNotFoundError, match='label folder .*annotations_coarse'):
        _build(str(tmp_path / 'no_labels'))
    # a dangling label link (converted label map deleted)
    os.remove(osp.join(out, 'annotations', 'train2017', ids['train2017'][0]
                       + '_labelTrainIds_27.png'))
    with pytest.raises(DatasetNotFoundError, match='1 of 3 images have no label file'):
        _build(out)
