"""ViCEBackbone (mmseg_plugins/vice) and the MMSeg ViCE configs (configs/mmseg/vice/)."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
import yaml
from vissl.config import AttrDict

import mmseg_plugins.vice  # noqa: F401  (registers ViCEBackbone)
from mmseg_plugins.vice.vice_backbone import ViCEBackbone, ViCECheckpointError
from vissl_plugins.vice.deeplabv3plus import DeepLabV3PlusTrunk

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = {'DEPTH': 18, 'OUTPUT_STRIDE': 8, 'ASPP_RATES': [1, 2, 3], 'DECODER_CHANNELS': 16,
        'OUT_FEAT_DIM': 8}


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


def _vissl_trunk(options=TINY, seed=0):
    """A VISSL deeplabv3plus trunk with non-default weights and BN statistics."""
    torch.manual_seed(seed)
    trunk = DeepLabV3PlusTrunk(AttrDict({'TRUNK': {'NAME': 'deeplabv3plus',
                                                   'DEEPLABV3PLUS': dict(options)}}), 'test')
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.bias.normal_()
    return trunk.eval()


def _write_yaml(path, options=TINY, name='deeplabv3plus'):
    config = {'config': {'MODEL': {'TRUNK': {'NAME': name, 'DEEPLABV3PLUS': dict(options)},
                                   'HEAD': {'PARAMS': [['dense_swav_head', {}]]}}}}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _write_vissl_checkpoint(path, trunk, drop=()):
    """The layout of a VISSL training checkpoint."""
    state = {k: v for k, v in trunk.state_dict().items() if k not in drop}
    torch.save({'type': 'consolidated', 'phase_idx': 0,
                'classy_state_dict': {
                    'base_model': {'model': {'trunk': state,
                                             'heads': {'0.prototypes0.weight': torch.randn(8, 8)}},
                                   'meta': {}},
                    'optimizer': {}}}, path)
    return str(path)


def test_random_trunk_is_frozen_and_l2_normalised():
    torch.manual_seed(0)
    backbone = ViCEBackbone(trunk=dict(depth=18, decoder_channels=16))
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training and not any(m.training for m in backbone.modules())
    outs = backbone(torch.randn(2, 3, 40, 56))
    assert isinstance(outs, list) and len(outs) == 1
    (z,) = outs
    assert z.shape == (2, 128, 40, 56) and not z.requires_grad
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2, 40, 56))


def test_yaml_and_vissl_checkpoint_reproduce_the_trunk(tmp_path):
    trunk = _vissl_trunk()
    config = _write_yaml(tmp_path / 'vice.yaml')
    ckpt = _write_vissl_checkpoint(tmp_path / 'model_final_checkpoint_phase0.torch', trunk)
    backbone = ViCEBackbone(vissl_config=config, checkpoint=ckpt)
    for key, value in trunk.state_dict().items():
        assert torch.equal(backbone.trunk.state_dict()[key], value), key
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        expected = F.normalize(trunk(x)[0], dim=1)
    (z,) = backbone(x)
    assert z.shape == (2, 8, 32, 48)
    torch.testing.assert_close(z, expected)
    # the same from trunk arguments and the exported {'trunk': ...} layout
    torch.save({'trunk': trunk.state_dict()}, tmp_path / 'exported.torch')
    other = ViCEBackbone(trunk=dict(depth=18, aspp_rates=[1, 2, 3], decoder_channels=16,
                                    out_feat_dim=8), checkpoint=str(tmp_path / 'exported.torch'))
    torch.testing.assert_close(other(x)[0], expected)


def test_missing_key_is_named(tmp_path):
    trunk = _vissl_trunk()
    ckpt = _write_vissl_checkpoint(tmp_path / 'ckpt.torch', trunk,
                                   drop=['_feature_blocks.decoder.projection.bias'])
    with pytest.raises(ViCECheckpointError, match=r'ckpt\.torch does not match the trunk: 1 '
                                                  r'missing keys \[_feature_blocks\.decoder\.'
                                                  r'projection\.bias\]'):
        ViCEBackbone(vissl_config=_write_yaml(tmp_path / 'vice.yaml'), checkpoint=ckpt)


def test_yaml_that_does_not_match_the_checkpoint(tmp_path):
    ckpt = _write_vissl_checkpoint(tmp_path / 'ckpt.torch', _vissl_trunk())
    config = _write_yaml(tmp_path / 'wider.yaml', {**TINY, 'DECODER_CHANNELS': 32})
    with pytest.raises(ViCECheckpointError, match=r'shape mismatches \[_feature_blocks\.aspp'):
        ViCEBackbone(vissl_config=config, checkpoint=ckpt)
    config = _write_yaml(tmp_path / 'four_rates.yaml', {**TINY, 'ASPP_RATES': [1, 2, 3, 4]})
    with pytest.raises(ViCECheckpointError, match=r'missing keys \[_feature_blocks\.aspp\.'
                                                  r'branches\.3\.'):
        ViCEBackbone(vissl_config=config, checkpoint=ckpt)


def test_bad_yaml_and_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='vissl_config=.*nope.yaml'):
        ViCEBackbone(vissl_config=str(tmp_path / 'nope.yaml'))
    (tmp_path / 'no_trunk.yaml').write_text('config:\n  MODEL:\n    HEAD: {}\n')
    with pytest.raises(ViCECheckpointError, match="no config.MODEL.TRUNK .*'TRUNK'"):
        ViCEBackbone(vissl_config=str(tmp_path / 'no_trunk.yaml'))
    with pytest.raises(ViCECheckpointError, match="'resnet', not deeplabv3plus"):
        ViCEBackbone(vissl_config=_write_yaml(tmp_path / 'r.yaml', {}, name='resnet'))
    with pytest.raises(KeyError, match=r"r2\.yaml.*unknown keys \['DECODER_CH'\]"):
        ViCEBackbone(vissl_config=_write_yaml(tmp_path / 'r2.yaml', {'DECODER_CH': 256}))
    torch.save({'something': 1}, tmp_path / 'other.pth')
    with pytest.raises(ViCECheckpointError, match=r'model\.backbone\.checkpoint: .*other\.pth '
                                                  r'is not a VISSL checkpoint'):
        ViCEBackbone(trunk=dict(depth=18), checkpoint=str(tmp_path / 'other.pth'))
    with pytest.raises(ValueError, match='give vissl_config .* or trunk'):
        ViCEBackbone()


# ---- configs ----------------------------------------------------------------------------------

def _config(name):
    from mmengine.config import Config
    from mmseg_plugins.compat import adapt_config_for_device
    return adapt_config_for_device(Config.fromfile(osp.join(REPO, 'configs/mmseg/vice', name)))


def _build(cfg):
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.mark.parametrize('name,channels,classes', [('fcn_linear_coco-stuff164k.py', 256, 27),
                                                   ('fcn_linear_cityscapes.py', 250, 19),
                                                   ('fcn_linear_synthetic.py', 256, 8)])
def test_linear_probe_configs_build_and_train_only_the_head(name, channels, classes):
    cfg = _config(name)
    head = cfg.model.decode_head
    assert cfg.model.backbone.type == 'ViCEBackbone'
    assert (head.type, head.in_channels, head.channels, head.num_classes) == (
        'FCNHead', 128, channels, classes)
    assert (head.num_convs, head.kernel_size, head.act_cfg, head.concat_input,
            head.dropout_ratio) == (1, 1, None, False, 0.0)
    lr = 0.1 if name == 'fcn_linear_synthetic.py' else 0.01  # 80 iterations, not 12k
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=lr, momentum=0.9,
                                               weight_decay=5e-4)
    assert cfg.param_scheduler[0].eta_min == 1e-4 and cfg.param_scheduler[0].power == 0.9
    if name != 'fcn_linear_synthetic.py':
        assert cfg.train_cfg.max_iters == 12000 and cfg.train_cfg.val_interval == 3000
        assert cfg.model.backbone.trunk == dict(depth=50, output_stride=8)
        assert not [t for t in cfg.train_pipeline if t.type in ('RandomCrop', 'RandomResize')]
    else:  # the synthetic demo: small trunk, the ResNet linear probe's schedule
        cfg.model.backbone.trunk = dict(depth=18, output_stride=8)
        assert cfg.train_cfg.max_iters == 80
    cfg.model.backbone.trunk = dict(depth=18, output_stride=8)  # tiny model for the test
    model = _build(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('decode_head.') for n in trainable)
    model.train()
    assert not model.backbone.training and model.decode_head.training
    with torch.no_grad():
        logits = model(torch.randint(0, 255, (2, 3, 32, 64)).float(), mode='tensor')
    assert tuple(logits.shape) == (2, classes, 32, 64)  # head at input resolution


def test_dataset_settings_of_the_paper_configs():
    coco = _config('fcn_linear_coco-stuff164k.py')
    assert coco.train_dataloader.dataset.type == 'COCOStuffCoarseDataset'
    assert coco.train_dataloader.dataset.data_root == 'data/coco_stuff164k_coarse'
    assert coco.train_dataloader.dataset.data_prefix == dict(
        img_path='images_coarse/train2017', seg_map_path='annotations_coarse/train2017')
    assert coco.val_dataloader.dataset.data_prefix.img_path == 'images_coarse/val2017'
    assert coco.train_dataloader.batch_size == 16
    assert [t.type for t in coco.train_pipeline][2] == 'RandomFlip'
    assert coco.test_pipeline[1] == dict(type='Resize', scale=(2048, 512), keep_ratio=True)
    city = _config('fcn_linear_cityscapes.py')
    assert city.train_dataloader.dataset.type == 'CityscapesDataset'
    assert city.train_dataloader.batch_size == 4
    assert 'PhotoMetricDistortion' in [t.type for t in city.train_pipeline]
    assert city.test_pipeline[1] == dict(type='Resize', scale=(2048, 1024), keep_ratio=True)
    assert city.model.test_cfg.mode == 'whole'


def test_full_size_vice_probe_builds():
    """The paper's trunk (ResNet-50, OS 8) as the COCO config builds it, on a tiny input."""
    model = _build(_config('fcn_linear_coco-stuff164k.py'))
    assert model.backbone.trunk.depth == 50
    with torch.no_grad():
        (z,) = model.backbone(torch.randn(1, 3, 32, 32))
    assert z.shape == (1, 128, 32, 32)


def test_finetune_config_builds_a_torchvision_stem_deeplabv3plus():
    cfg = _config('deeplabv3plus_finetune_cityscapes.py')
    assert cfg.model.backbone.init_cfg.type == 'CheckedPretrained'  # the converted file
    assert cfg.model.decode_head.init_cfg[0].prefix == 'decode_head.'
    cfg.model.backbone.init_cfg = cfg.model.decode_head.init_cfg = None  # random init here
    model = _build(cfg)
    assert cfg.model.backbone.type == 'ResNet' and not cfg.model.backbone.contract_dilation
    keys = set(model.state_dict())
    assert 'backbone.conv1.weight' in keys and 'backbone.stem.0.weight' not in keys
    assert model.decode_head.align_corners and model.decode_head.channels == 256
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert tuple(logits.shape) == (1, 19, 16, 16)  # decoder at H/4 (layer1)
