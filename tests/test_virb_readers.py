"""Each ViRB data reader on a tiny fake tree of its on-disk layout, the missing-root
message (where the data set comes from), the pixelwise tasks' train augmentation (image and
labels together) and Cityscapes' void-class bug_compat switch."""
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from virb.errors import VirbError
from virb.tasks import TASKS
from virb.tasks.augment import PixelAugmentation

SIZE = {'image_size': [16, 16]}


def _image(path, size=(20, 24), mode='RGB', value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == 'RGB':
        arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    elif mode == 'F':
        arr = np.full((size[1], size[0]), value, dtype=np.float32)
    else:
        arr = np.full((size[1], size[0]), value, dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _class_tree(root, splits, ext='.jpg'):
    for split in splits:
        for cls in ('cat', 'dog'):
            for i in range(2):
                _image(root / split / cls / f'{cls}_{split}_{i}{ext}')


@pytest.mark.parametrize('task, folder, splits, ext', [
    ('Imagenet', 'imagenet', ('train', 'val'), '.JPEG'),
    ('Pets', 'pets', ('train', 'test'), '.jpg'),
    ('SUN397', 'SUN397', ('train', 'test'), '.jpg'),
    ('Eurosat', 'eurosat', ('train', 'test'), '.jpg'),
    ('dtd', 'dtd', ('train', 'test'), '.jpg')])
def test_class_folder_readers(tmp_path, task, folder, splits, ext):
    _class_tree(tmp_path / folder, splits, ext)
    t = TASKS[task](str(tmp_path), SIZE)
    train, test = t.datasets()
    assert len(train) == 4 and len(test) == 4 and t.num_outputs() == 2
    image, label = train[3]
    assert image.shape == (3, 16, 16) and int(label) == 1  # sorted: cat 0, dog 1


def test_caltech_reads_the_split_lists(tmp_path):
    root = tmp_path / 'caltech-101'
    for cls in ('accordion', 'airplanes'):
        for i in range(3):
            _image(root / cls / f'image_{i:04d}.jpg')
    (root / 'caltech101_train.json').write_text(json.dumps(
        ['accordion/image_0000.jpg', 'accordion/image_0001.jpg', 'airplanes/image_0000.jpg']))
    (root / 'caltech101_test.json').write_text(json.dumps(['airplanes/image_0002.jpg']))
    train, test = TASKS['CalTech-101'](str(tmp_path), SIZE).datasets()
    assert len(train) == 3 and len(test) == 1 and int(test[0][1]) == 1


def test_cifar100_reads_the_python_pickles(tmp_path):
    root = tmp_path / 'cifar-100'
    root.mkdir()
    for split, n in (('train', 5), ('test', 2)):
        batch = {b'filenames': [b'x'] * n, b'batch_label': b'b', b'fine_labels': list(range(n)),
                 b'coarse_labels': [0] * n,
                 b'data': np.zeros((n, 3072), dtype=np.uint8)}
        with open(root / split, 'wb') as f:
            pickle.dump(batch, f)
    t = TASKS['CIFAR-100'](str(tmp_path), SIZE)
    train, test = t.datasets()
    assert len(train) == 5 and t.num_outputs() == 5 and train[4][0].shape == (3, 16, 16)


def _cityscapes_tree(tmp_path):
    root = tmp_path / 'cityscapes'
    for split in ('train', 'val'):
        _image(root / 'leftImg8bit' / split / 'aachen' / 'aachen_000000_000019_leftImg8bit.png')
        label = root / 'gtFine' / split / 'aachen' / 'aachen_000000_000019_gtFine_labelIds.png'
        label.parent.mkdir(parents=True, exist_ok=True)
        arr = np.zeros((24, 20), np.uint8)
        arr[:12] = 26   # car -> 13
        arr[12:, :10] = 7  # road -> 0; the rest stays 0 (unlabeled) -> 255
        Image.fromarray(arr).save(label)


def test_cityscapes_maps_label_ids_to_train_ids_and_ignores_void(tmp_path):
    _cityscapes_tree(tmp_path)
    t = TASKS['CityscapesSemanticSegmentation'](str(tmp_path), SIZE)
    _, val = t.datasets()
    target = val[0][1]
    assert set(target.unique().tolist()) == {0, 13, 255}
    loss = t.loss(torch.zeros(1, 19, 16, 16), target[None])
    assert torch.isfinite(loss)


def test_pets_detection_trimaps(tmp_path):
    root = tmp_path / 'pets'
    for split in ('train', 'test'):
        _image(root / split / 'beagle' / f'beagle_{split}.jpg')
        _image(root / 'annotations' / 'trimaps' / f'beagle_{split}.png', mode='L', value=3)
    train, _ = TASKS['Pets-Detection'](str(tmp_path), SIZE).datasets()
    assert set(train[0][1].unique().tolist()) == {255}  # the border is ignored


def test_egohands_splits_90_10(tmp_path):
    root = tmp_path / 'egohands'
    for i in range(10):
        _image(root / 'images' / 'CARDS_OFFICE' / f'frame_{i:04d}.jpg')
        _image(root / 'labels' / 'CARDS_OFFICE' / f'frame_{i:04d}.png', mode='L', value=i % 5)
    train, test = TASKS['EgoHands'](str(tmp_path), SIZE).datasets()
    assert len(train) == 9 and len(test) == 1


def test_nyu_depth_and_walkable(tmp_path):
    root = tmp_path / 'nyu'
    for split in ('train', 'test'):
        for i in range(2):
            _image(root / split / 'images' / f'{i:04d}.png')
            _image(root / split / 'depths' / f'{i:04d}.tiff', mode='F', value=2.5)
            _image(root / split / 'walkable' / f'{i:04d}.png', mode='L', value=255 * i)
    depth = TASKS['NYUDepth'](str(tmp_path), SIZE)
    train, test = depth.datasets()
    assert train[0][1].shape == (1, 16, 16) and float(train[0][1].mean()) == pytest.approx(2.5)
    assert depth.new_metric().higher_is_better is False
    walk_train, _ = TASKS['NYUWalkable'](str(tmp_path), SIZE).datasets()
    assert walk_train[1][1].unique().tolist() == [1] and walk_train[0][1].unique().tolist() == [0]


@pytest.mark.parametrize('task, source', [
    ('Imagenet', 'image-net.org'), ('CIFAR-100', 'cs.toronto.edu'),
    ('CityscapesSemanticSegmentation', 'cityscapes-dataset.com'),
    ('NYUDepth', 'nyu_depth_v2'), ('SyntheticCarCount', 'tools/gen_synthetic_scenes.py'),
    ('SyntheticScenesSegmentation', 'tools/gen_synthetic_scenes.py'),
    ('EgoHands', 'egohands'), ('Pets-Detection', 'robots.ox.ac.uk'),
    ('CalTech-101', 'caltech.edu')])
def test_missing_data_root_says_where_the_data_comes_from(tmp_path, task, source):
    with pytest.raises(VirbError, match='not found') as e:
        TASKS[task](str(tmp_path / 'nowhere')).datasets()
    assert source in str(e.value) and str(tmp_path / 'nowhere') in str(e.value)


def test_synthetic_tasks_on_tiny_scenes(tiny_scenes):
    count = TASKS['SyntheticCarCount'](tiny_scenes, {'image_size': [32, 64]})
    train, test = count.datasets()
    assert len(train) == 8 and len(test) == 4 and count.num_outputs() == 3
    assert {int(y) for _, y in train} <= {0, 1, 2}
    seg = TASKS['SyntheticScenesSegmentation'](tiny_scenes, {'image_size': [32, 64]})
    train, _ = seg.datasets()
    image, label = train[0]
    assert image.shape == (3, 32, 64) and label.shape == (32, 64)


# ----------------------------------------------------------------- pixelwise augmentation
def _blocks(height=16, width=16, block=4):
    """image (3, H, W) whose channel 0 is 1 on odd blocks, target (H, W): the block ids."""
    rows = torch.arange(height).view(-1, 1) // block
    cols = torch.arange(width).view(1, -1) // block
    target = rows * (width // block) + cols
    image = torch.stack([(target % 2).float(), torch.rand(height, width),
                         torch.rand(height, width)])
    return image, target


def test_augmentation_moves_image_and_labels_together():
    augment = PixelAugmentation(scale_range=(0.5, 2.0), flip=True, crop_size=(12, 12),
                                target_fill=255)
    image, target = _blocks()
    torch.manual_seed(0)
    for _ in range(20):
        out_image, out_target = augment(image, target)
        assert out_image.shape == (3, 12, 12) and out_target.shape == (12, 12)
        assert out_target.dtype == torch.int64
        labelled = out_target != 255
        assert set(out_target[labelled].unique().tolist()) <= set(target.unique().tolist())
        assert (out_image[:, ~labelled] == 0).all()  # padding: black image, ignored labels
        channel = out_image[0]
        pure = labelled & ((channel < 0.01) | (channel > 0.99))  # not blended by bilinear
        agree = ((channel[pure] > 0.5).long() == out_target[pure] % 2).float().mean()
        assert agree > 0.98
    flip = PixelAugmentation(flip=True)
    outcomes = set()
    for _ in range(20):
        out_image, out_target = flip(image, target)
        mirrored = torch.equal(out_target, target.flip(-1))
        assert mirrored or torch.equal(out_target, target)
        assert torch.equal(out_image, image.flip(-1) if mirrored else image)
        outcomes.add(mirrored)
    assert outcomes == {True, False}  # left-right, half of the time


def test_augmentation_crop_pads_and_the_original_cityscapes_origin():
    image, _ = _blocks()
    rows = torch.arange(16).view(-1, 1).expand(16, 16).clone()  # target = row index
    torch.manual_seed(0)
    small = PixelAugmentation(scale_range=(0.5, 0.5), crop_size=(12, 12), target_fill=255)
    out_image, out_target = small(image, rows)
    assert (out_target[:8, :8] != 255).all()  # the 8 x 8 scaled sample, padded to 12 x 12
    assert (out_target[8:] == 255).all() and (out_target[:, 8:] == 255).all()
    assert (out_image[:, 8:] == 0).all() and (out_image[:, :, 8:] == 0).all()
    # scale 2: the original draws the origin over the unscaled 16 x 16, so a window of 8
    # rows never reaches below row 16 of the 32 scaled rows (original rows 0..7)
    original = PixelAugmentation(scale_range=(2.0, 2.0), crop_size=(8, 8),
                                 crop_origin_unscaled=True)
    fixed = PixelAugmentation(scale_range=(2.0, 2.0), crop_size=(8, 8))
    assert max(int(original(image, rows)[1].max()) for _ in range(40)) <= 7
    assert max(int(fixed(image, rows)[1].max()) for _ in range(40)) > 7


def test_augmentation_redraws_crops_until_they_hold_a_label():
    target = torch.zeros(64, 64, dtype=torch.long)
    target[40:48, 40:48] = 3   # a small hand
    image = torch.rand(3, 64, 64)
    torch.manual_seed(0)
    augment = PixelAugmentation(crop_size=(16, 16), min_target_values=2, max_tries=200)
    assert all(3 in augment(image, target)[1].unique().tolist() for _ in range(10))


def test_cityscapes_train_split_is_augmented_the_test_split_not(tmp_path):
    _cityscapes_tree(tmp_path)
    options = {'image_size': [16, 16], 'crop_size': [8, 8]}
    train, val = TASKS['CityscapesSemanticSegmentation'](str(tmp_path), options).datasets()
    assert train.augment is not None and val.augment is None
    image, target = train[0]
    assert image.shape == (3, 8, 8) and target.shape == (8, 8)
    assert set(target.unique().tolist()) <= {0, 13, 255}
    assert val[0][0].shape == (3, 16, 16)
    plain, _ = TASKS['CityscapesSemanticSegmentation'](
        str(tmp_path), {**options, 'augment': False}).datasets()
    assert plain.augment is None and plain[0][0].shape == (3, 16, 16)


def test_cityscapes_bug_compat_trains_void_as_class_0(tmp_path):
    _cityscapes_tree(tmp_path)
    t = TASKS['CityscapesSemanticSegmentation'](
        str(tmp_path), {'image_size': [16, 16], 'crop_size': [8, 8]},
        bug_compat=['cityscapes_void_class'])
    train, val = t.datasets()
    assert t.num_outputs() == 20
    assert set(val[0][1].unique().tolist()) == {0, 1, 14}  # void, road, car: train id + 1
    assert set(train[0][1].unique().tolist()) <= {0, 1, 14}  # padding is void too
    assert train.augment.crop_origin_unscaled and train.augment.target_fill == 0
    # void pixels are trained: a loss on a void-only target is not zero / NaN
    logits = torch.zeros(1, 20, 4, 4)
    logits[:, 5] = 10.0
    assert float(t.loss(logits, torch.zeros(1, 4, 4, dtype=torch.long))) > 1.0
    # and scored in the confusion matrix, but class 0 is left out of the mean
    metric = t.new_metric()
    pred = torch.tensor([[0, 1], [1, 1]])
    metric.update(pred[None], torch.tensor([[0, 1], [0, 1]])[None])
    assert metric.compute() == pytest.approx(100.0 * 2 / 3)  # class 1: 2 / (2 + 1)
    default = TASKS['CityscapesSemanticSegmentation'](str(tmp_path), {'image_size': [16, 16]})
    assert default.num_outputs() == 19 and default.ignore_index == 255


def test_bug_compat_void_switch_only_for_cityscapes(tmp_path):
    import yaml
    from virb.config import load_virb_configs
    entry = {'num_epochs': 1, 'batch_size': 2, 'bug_compat': ['cityscapes_void_class'],
             'training_configs': {'a': {'optimizer': 'adam', 'lr': 0.001}}}
    path = tmp_path / 'virb.yaml'
    path.write_text(yaml.safe_dump({'City': {'task': 'CityscapesSemanticSegmentation',
                                             **entry}}))
    assert load_virb_configs(str(path))[0].bug_compat == ('cityscapes_void_class',)
    path.write_text(yaml.safe_dump({'Ego': {'task': 'EgoHands', **entry}}))
    with pytest.raises(VirbError, match="Ego.bug_compat: 'cityscapes_void_class' applies to "
                                        'task CityscapesSemanticSegmentation only'):
        load_virb_configs(str(path))


def test_egohands_crops_and_nyu_jitters_the_image_only(tmp_path):
    root = tmp_path / 'egohands'
    for i in range(10):
        _image(root / 'images' / 'CARDS_OFFICE' / f'frame_{i:04d}.jpg', size=(40, 30))
        _image(root / 'labels' / 'CARDS_OFFICE' / f'frame_{i:04d}.png', size=(40, 30),
               mode='L', value=i % 5)
    train, test = TASKS['EgoHands'](str(tmp_path), {'image_size': [24, 32],
                                                     'crop_size': [12, 12]}).datasets()
    assert train[1][0].shape == (3, 12, 12) and test[0][0].shape == (3, 24, 32)
    nyu = tmp_path / 'nyu'
    for split in ('train', 'test'):
        _image(nyu / split / 'images' / '0000.png')
        _image(nyu / split / 'depths' / '0000.tiff', mode='F', value=2.5)
    depth = TASKS['NYUDepth'](str(tmp_path), SIZE)
    train, _ = depth.datasets()
    plain, _ = TASKS['NYUDepth'](str(tmp_path), {**SIZE, 'augment': False}).datasets()
    torch.manual_seed(0)
    images = [train[0][0] for _ in range(4)]
    assert any(not torch.allclose(im, plain[0][0]) for im in images)  # photometric changes
    assert torch.equal(train[0][1], plain[0][1])  # the depth is not moved


def test_a_bad_crop_size_is_a_config_error(tmp_path):
    import yaml
    from virb.config import load_virb_configs
    path = tmp_path / 'virb.yaml'
    path.write_text(yaml.safe_dump({'City': {
        'task': 'CityscapesSemanticSegmentation', 'num_epochs': 1, 'batch_size': 2,
        'options': {'crop_size': 450},
        'training_configs': {'a': {'optimizer': 'adam', 'lr': 0.001}}}}))
    with pytest.raises(VirbError, match=r'City.options.crop_size: two positive numbers'):
        load_virb_configs(str(path))
