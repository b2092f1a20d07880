"""Instance maps of the synthetic scenes and their COCO instance JSONs."""
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from densessl import synthetic_instances_coco as sic
from densessl import synthetic_scenes as scenes

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMALL = scenes.SyntheticScenesConfig(num_train=6, num_val=3, num_unlabeled=2, height=64,
                                     width=128, seed=3)
THING_IDS = list(scenes.THING_IDS)

# sha1 of (image, label) bytes of the default config: version 4's, unchanged by version 5
DIGESTS = {
    ('train', 0): ('e98c3fa134c7fa4fee6265b6c696f9ff8c05af34',
                   '469a7b5d9d8d873037a216986f3387bf41fd1fb5'),
    ('train', 7): ('4732054e840478df62e913201d5f5d81074afd73',
                   'f0047a1d0cc835e0295fba3dfcdeb3056306cf6d'),
    ('val', 3): ('ff0814fe94dbca0e1ed41d4dc287c8d8ab16a987',
                 '42d030c453ac695f4b3ef61f9ab0f6405d458687'),
    ('train_extra', 11): ('1d2239a4ec950977606d13652fd3c8ea37b04bbe',
                          'c72506656877673e8cd6c9dd7078762cea460789'),
}


def _sha1(array):
    return hashlib.sha1(array.tobytes()).hexdigest()


@pytest.mark.parametrize('split, index', sorted(DIGESTS))
def test_images_and_labels_are_unchanged_by_instance_tracking(split, index):
    config = scenes.SyntheticScenesConfig()
    img, label = scenes.render_sample(config, split, index)
    assert (_sha1(img), _sha1(label)) == DIGESTS[split, index]
    img2, label2, _ = scenes.render_sample_with_instances(config, split, index)
    assert np.array_equal(img, img2) and np.array_equal(label, label2)


def _assert_consistent(label, instances):
    thing = np.isin(label, THING_IDS)
    assert np.array_equal(instances[thing] // scenes.INSTANCE_ID_OFFSET, label[thing])
    assert np.array_equal(instances[~thing], label[~thing])


def test_instance_map_agrees_with_label_map():
    config = scenes.SyntheticScenesConfig()
    cars = 0
    for split, index in [('train', i) for i in range(6)] + [('val', 0), ('train_extra', 1)]:
        _, label, instances = scenes.render_sample_with_instances(config, split, index)
        assert instances.shape == label.shape and instances.dtype == np.uint16
        _assert_consistent(label, instances)
        car_ids = np.unique(instances[label == scenes.CAR])
        assert len(car_ids) >= 1, (split, index)  # every scene has 1-3 cars
        assert set(car_ids) <= {5000, 5001, 5002}
        cars += len(car_ids)
    assert cars > 8  # some scenes hold more than one car


def test_instances_from_maps_splits_things_by_id():
    label = np.array([[0, 5, 5, 6], [255, 5, 6, 6]], np.uint8)
    ids = np.array([[0, 5000, 5001, 6000], [255, 5001, 6000, 6000]], np.uint16)
    found = sic.instances_from_maps(ids, label, 'x.png')
    assert [c for c, _ in found] == [5, 5, 6]
    assert [m.sum() for _, m in found] == [1, 2, 3]
    assert found[1][1][1, 1] and found[1][1][0, 2]


@pytest.mark.parametrize('ids, label, what', [
    ([[6000]], [[5]], 'class of id is not the label'),
    ([[5]], [[5]], 'thing pixel without an instance id'),
    ([[1]], [[2]], 'stuff id is not the label'),
    ([[1000]], [[1]], 'thing id of a stuff class'),
    ([[0, 0]], [[0]], 'shapes differ'),
])
def test_instances_from_maps_rejects_disagreeing_maps(ids, label, what):
    with pytest.raises(ValueError, match='bad_instanceIds.png') as info:
        sic.instances_from_maps(np.array(ids), np.array(label), 'bad_instanceIds.png')
    assert '--force' in str(info.value), what


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('scenes'))
    scenes.generate(root, SMALL, progress=False)
    return root


def test_generator_writes_16_bit_instance_maps_of_the_rendered_scene(small_set):
    for split in scenes.LABELLED_SPLITS:
        for index in range(SMALL.count(split)):
            with Image.open(scenes.instance_path(small_set, split, index)) as img:
                assert img.mode.startswith('I')
                written = np.array(img)
            _, label, instances = scenes.render_sample_with_instances(SMALL, split, index)
            assert np.array_equal(written, instances)
    assert not osp.exists(scenes.instance_path(small_set, 'train_extra', 0))
    with open(scenes.meta_path(small_set)) as f:
        assert json.load(f)['generator_version'] == 5


def _instance_id_of(mask, instances):
    ids = np.unique(instances[mask])
    assert len(ids) == 1, f'an annotation covers instance ids {ids}'
    return int(ids[0])


@pytest.mark.parametrize('split', scenes.LABELLED_SPLITS)
def test_coco_json_round_trip(small_set, split):
    coco = COCO(sic.default_json_path(small_set, split))
    assert sorted(coco.getCatIds()) == [5, 6, 7]
    assert [coco.cats[i]['name'] for i in (5, 6, 7)] == ['car', 'person', 'pole']
    assert len(coco.getImgIds()) == SMALL.count(split)
    kept_total = 0
    for index in range(SMALL.count(split)):
        image = coco.imgs[index + 1]
        assert osp.isfile(osp.join(small_set, 'leftImg8bit', split, image['file_name']))
        assert (image['height'], image['width']) == (SMALL.height, SMALL.width)
        instances = np.array(Image.open(scenes.instance_path(small_set, split, index)))
        rebuilt = np.zeros_like(instances)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image['id']])):
            mask = coco.annToMask(ann).astype(bool)
            instance_id = _instance_id_of(mask, instances)
            assert instance_id // scenes.INSTANCE_ID_OFFSET == ann['category_id']
            assert np.array_equal(mask, instances == instance_id)  # the whole instance
            assert not rebuilt[mask].any(), 'annotations overlap'
            rebuilt[mask] = instance_id
            assert ann['area'] == mask.sum() and ann['iscrowd'] == 0
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            kept_total += 1
        thing = instances >= scenes.INSTANCE_ID_OFFSET
        assert thing.any()
        differ = thing & (rebuilt != instances)
        for dropped in np.unique(instances[differ]):  # only instances under the minimum area
            assert (instances == dropped).sum() < sic.MIN_INSTANCE_AREA
    assert kept_total > SMALL.count(split)


def test_instances_under_the_minimum_area_are_skipped_and_counted(small_set, tmp_path):
    root = str(tmp_path / 'copy')
    shutil.copytree(small_set, root)
    before = sic.coco_dict_for_split(root, 'val')
    label_file, instance_file = (scenes.label_path(root, 'val', 0),
                                 scenes.instance_path(root, 'val', 0))
    label, instances = np.array(Image.open(label_file)), np.array(Image.open(instance_file))
    sky = np.argwhere(label == scenes.SKY)[:sic.MIN_INSTANCE_AREA - 1]
    label[tuple(sky.T)] = scenes.PERSON  # a 3-pixel person, id 6009
    instances[tuple(sky.T)] = 6009
    Image.fromarray(label).save(label_file)
    Image.fromarray(instances).save(instance_file)
    after = sic.coco_dict_for_split(root, 'val')
    assert after['info']['small_instances_skipped'] == 1
    assert after['annotations'] == before['annotations']


def test_a_mislabelled_instance_map_names_its_file(small_set, tmp_path):
    root = str(tmp_path / 'copy')
    shutil.copytree(small_set, root)
    path = scenes.instance_path(root, 'train', 2)
    instances = np.array(Image.open(path))
    car = instances // scenes.INSTANCE_ID_OFFSET == scenes.CAR
    assert car.any()
    y, x = np.argwhere(car)[0]
    instances[y, x] = 6000  # a person id where the label says car
    Image.fromarray(instances).save(path)
    with pytest.raises(ValueError, match=osp.basename(path)):
        sic.coco_dict_for_split(root, 'train')


def test_a_missing_instance_map_says_to_regenerate(small_set, tmp_path):
    root = str(tmp_path / 'copy')
    shutil.copytree(small_set, root)
    path = scenes.instance_path(root, 'val', 1)
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=osp.basename(path)) as info:
        sic.write_coco_json(root, 'val')
    assert 'gen_synthetic_scenes.py' in str(info.value)


def test_check_coco_images_names_the_json_and_the_missing_image(small_set, tmp_path):
    json_path = sic.default_json_path(small_set, 'val')
    image_root = osp.join(small_set, 'leftImg8bit', 'val')
    assert sic.check_coco_images(json_path, image_root) == SMALL.num_val
    with open(json_path) as f:
        coco = json.load(f)
    copy = str(tmp_path / 'images')
    for image in coco['images']:
        os.makedirs(osp.dirname(osp.join(copy, image['file_name'])), exist_ok=True)
        with open(osp.join(image_root, image['file_name']), 'rb') as src, \
                open(osp.join(copy, image['file_name']), 'wb') as dst:
            dst.write(src.read())
    assert sic.check_coco_images(json_path, copy) == SMALL.num_val
    os.remove(osp.join(copy, coco['images'][1]['file_name']))
    with pytest.raises(FileNotFoundError) as info:
        sic.check_coco_images(json_path, copy)
    message = str(info.value)
    assert json_path in message and coco['images'][1]['file_name'] in message
    assert f'1 of the {SMALL.num_val}' in message


def _run_tool(*args):
    tool = osp.join('tools', 'convert_datasets', 'synthetic_to_coco.py')
    return subprocess.run([sys.executable, tool, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_the_generators_json(small_set, tmp_path):
    out = str(tmp_path / 'annotations')
    proc = _run_tool(small_set, '--out-dir', out)
    assert proc.returncode == 0, proc.stderr
    for split in scenes.LABELLED_SPLITS:
        with open(osp.join(out, f'instances_{split}.json')) as a, \
                open(sic.default_json_path(small_set, split)) as b:
            assert json.load(a) == json.load(b)
        assert f'{split}: {SMALL.count(split)} images' in proc.stdout
    assert 'car' in proc.stdout and 'person' in proc.stdout and 'pole' in proc.stdout


def test_cli_on_a_set_without_instance_maps_says_to_force(small_set, tmp_path):
    root = str(tmp_path / 'old')
    shutil.copytree(small_set, root)
    for index in range(SMALL.num_train):
        os.remove(scenes.instance_path(root, 'train', index))
    proc = _run_tool(root, '--splits', 'train')
    assert proc.returncode == 1
    assert '--force' in proc.stderr and '_gtFine_instanceIds.png' in proc.stderr
