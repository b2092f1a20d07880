"""MMSeg dataset, checked loading, FrozenResNet and the linear-probe head."""
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import mmseg_plugins  # noqa: F401
from mmseg_plugins.backbones.frozen_resnet import CheckpointMismatchError, FrozenResNet
from mmseg_plugins.datasets.checked_loading import (DataFileError, LoadAnnotationsChecked,
                                                    LoadImageFromFileChecked)
from mmseg_plugins.datasets.synthetic_scenes import SyntheticScenesDataset

PROBE_CONFIG = 'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py'


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


def test_dataset_reads_the_synthetic_scenes(tiny_scenes):
    train, val = _dataset(tiny_scenes), _dataset(tiny_scenes, 'val')
    assert len(train) == 8 and len(val) == 4
    assert train.metainfo['classes'][0] == 'sky' and len(train.metainfo['classes']) == 8
    sample = train[0]
    assert sample['inputs'].shape == (3, 64, 128)
    assert sample['data_samples'].gt_sem_seg.data.shape == (1, 64, 128)


def test_dataset_missing_root_says_how_to_generate(tmp_path):
    with pytest.raises(FileNotFoundError, match='gen_synthetic_scenes.py --out'):
        _dataset(str(tmp_path / 'missing'))


def test_corrupt_image_names_the_file(tiny_scenes, tmp_path):
    root = tmp_path / 'copy'
    shutil.copytree(tiny_scenes, root)
    info = _dataset(str(root)).get_data_info(1)
    data = open(info['img_path'], 'rb').read()
    open(info['img_path'], 'wb').write(data[:100])
    with pytest.raises(DataFileError, match=f"{info['img_path']}.*corrupt"):
        LoadImageFromFileChecked()(dict(img_path=info['img_path']))
    with pytest.raises(DataFileError, match='image file not found'):
        LoadImageFromFileChecked()(dict(img_path=str(root / 'nope.png')))


def test_label_out_of_range_names_file_and_value(tmp_path):
    label = np.zeros((4, 4), np.uint8)
    label[0, 0], label[1, 1] = 255, 9
    path = str(tmp_path / 'x_gtFine_labelTrainIds.png')
    Image.fromarray(label).save(path)
    results = dict(seg_map_path=path, reduce_zero_label=False, seg_fields=[])
    with pytest.raises(DataFileError, match=rf'{path} holds value\(s\) \[9\].*\[0, 8\)'):
        LoadAnnotationsChecked(num_classes=8)(results)
    label[1, 1] = 7  # valid ids and 255 pass
    Image.fromarray(label).save(path)
    out = LoadAnnotationsChecked(num_classes=8)(dict(seg_map_path=path, reduce_zero_label=False,
                                                     seg_fields=[]))
    assert out['gt_seg_map'].max() == 255


def _converted_checkpoint(path, depth=18, drop=None, reshape=None):
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    state = {f'backbone.{k}': v for k, v in net.state_dict().items() if not k.startswith('fc.')}
    if drop:
        state.pop(f'backbone.{drop}')
    if reshape:
        state[f'backbone.{reshape}'] = torch.zeros(1)
    torch.save({'state_dict': state, 'meta': {'arch': f'resnet{depth}'}}, path)
    return net


def test_frozen_resnet_loads_converted_checkpoint_and_stays_frozen(tmp_path):
    path = str(tmp_path / 'r18.pth')
    net = _converted_checkpoint(path)
    backbone = FrozenResNet(depth=18, checkpoint=path, out_indices=(3,), strides=(1, 2, 1, 1),
                            dilations=(1, 1, 2, 4))
    backbone.init_weights()
    torch.testing.assert_close(backbone.layer4[1].conv2.weight, net.layer4[1].conv2.weight)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training and not backbone.bn1.training
    (out,) = backbone(torch.randn(2, 3, 64, 128))
    assert out.shape == (2, 512, 8, 16) and not out.requires_grad
    running = backbone.bn1.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 128) * 5)
    torch.testing.assert_close(backbone.bn1.running_mean, running)  # statistics untouched


@pytest.mark.parametrize('problem', ['missing', 'shape', 'depth'])
def test_frozen_resnet_refuses_mismatched_checkpoints(tmp_path, problem):
    path = str(tmp_path / 'bad.pth')
    if problem == 'missing':
        _converted_checkpoint(path, drop='layer2.0.bn1.running_var')
        pattern = r'missing keys \[layer2\.0\.bn1\.running_var\]'
    elif problem == 'shape':
        _converted_checkpoint(path, reshape='conv1.weight')
        pattern = r'shape mismatches \[conv1\.weight: checkpoint \(1,\)'
    else:
        _converted_checkpoint(path, depth=50)
        pattern = r'unexpected keys \[.*layer1\.0\.conv3\.weight'
    backbone = FrozenResNet(depth=18, checkpoint=path)
    with pytest.raises(CheckpointMismatchError, match=pattern):
        backbone.init_weights()


def test_random_init_is_seeded_and_deterministic():
    from mmengine.runner import set_random_seed
    weights = []
    for _ in range(2):
        set_random_seed(0)
        backbone = FrozenResNet(depth=18)
        backbone.init_weights()
        weights.append(backbone.layer3[0].conv1.weight.clone())
    torch.testing.assert_close(*weights)


def test_linear_probe_head_is_conv_bn_conv_without_activation(repo_root):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(repo_root, PROBE_CONFIG))
    head = MODELS.build(cfg.model.decode_head)
    (conv_module,) = head.convs
    assert conv_module.conv.kernel_size == (1, 1) and conv_module.conv.in_channels == 512
    assert isinstance(conv_module.bn, torch.nn.BatchNorm2d) and not conv_module.with_activation
    assert head.conv_seg.kernel_size == (1, 1) and head.conv_seg.out_channels == 8
    assert head.dropout is None and not head.concat_input
