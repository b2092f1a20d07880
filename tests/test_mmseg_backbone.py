"""FrozenResNet (loading, key checks, freezing) and the linear-probe head / model config."""
import argparse
import contextlib
import logging
import os.path as osp

import pytest
import torch
import torchvision

import mmseg_plugins  # noqa: F401  (registers FrozenResNet)
from mmseg_plugins.backbones.frozen_resnet import (CONVERT_ADVICE, CheckpointMismatchError,
                                                   FrozenResNet)

PROBE_CONFIG = 'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py'
OS8 = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4))


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


def _torchvision_resnet(depth=18, seed=0):
    torch.manual_seed(seed)
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    with torch.no_grad():  # non-trivial BN statistics, so loading them is visible
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return net.eval()


@contextlib.contextmanager
def _mmengine_log():
    """The messages mmengine's current logger emits inside the block (it does not
    propagate to pytest's caplog)."""
    from mmengine.logging import MMLogger
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    logger, handler = MMLogger.get_current_instance(), Collect()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _converted(path, net, drop=(), reshape=(), extra=(), meta=None, prefix=''):
    """The mmseg writer's format: {'state_dict': {'<torchvision name>': ...}} (``prefix``
    'backbone.': the layout it wrote before)."""
    state = {f'{prefix}{k}': v for k, v in net.state_dict().items() if not k.startswith('fc.')}
    for key in drop:
        state.pop(f'{prefix}{key}')
    for key in reshape:
        state[f'{prefix}{key}'] = torch.zeros(1)
    for key in extra:
        state[f'{prefix}{key}'] = torch.zeros(3)
    torch.save({'state_dict': state, 'meta': meta or {'arch': 'resnet18', 'converter': 'test'}},
               path)
    return path


def test_loads_a_converted_checkpoint_and_matches_torchvision(tmp_path):
    net = _torchvision_resnet(18)
    path = _converted(str(tmp_path / 'r18.pth'), net)
    backbone = FrozenResNet(depth=18, checkpoint=path, out_indices=(0, 1, 2, 3))
    backbone.init_weights()
    reference = {k: v for k, v in net.state_dict().items() if not k.startswith('fc.')}
    assert set(backbone.state_dict()) == set(reference)  # torchvision's names exactly
    for key, value in reference.items():
        torch.testing.assert_close(backbone.state_dict()[key], value, msg=key)
    x = torch.randn(2, 3, 64, 96)
    outs = backbone(x)
    assert [tuple(o.shape) for o in outs] == [(2, 64, 16, 24), (2, 128, 8, 12),
                                              (2, 256, 4, 6), (2, 512, 2, 3)]
    body = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1,
                               net.layer2, net.layer3, net.layer4)
    with torch.no_grad():
        torch.testing.assert_close(outs[3], body(x), rtol=1e-4, atol=1e-4)


def test_loads_the_converters_output(tmp_path):
    """The real converter (tools/convert_checkpoint.py) writes what FrozenResNet reads."""
    net = _torchvision_resnet(18, seed=3)
    source = str(tmp_path / 'tv.pth')
    torch.save(net.state_dict(), source)  # with fc.*, which the writer drops
    target = str(tmp_path / 'r18_mmseg.pth')
    from converters import convert  # what tools/convert_checkpoint.py calls
    convert(source, target, src_format='torchvision', dst_format='mmseg')
    backbone = FrozenResNet(depth=18, checkpoint=target)
    backbone.init_weights()
    torch.testing.assert_close(backbone.layer4[1].bn2.running_var, net.layer4[1].bn2.running_var)
    torch.testing.assert_close(backbone.conv1.weight, net.conv1.weight)


def test_frozen_no_grad_and_always_eval(tmp_path):
    backbone = FrozenResNet(depth=18, checkpoint=_converted(str(tmp_path / 'r18.pth'),
                                                            _torchvision_resnet(18)),
                            out_indices=(3,), **OS8)
    backbone.init_weights()
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not any(m.training for m in backbone.modules())
    x = torch.randn(2, 3, 64, 128, requires_grad=True)
    (out,) = backbone(x)
    assert tuple(out.shape) == (2, 512, 8, 16)  # output stride 8
    assert not out.requires_grad and out.grad_fn is None  # computed under no_grad
    stats = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.train(True)
    backbone(torch.randn(4, 3, 64, 128) * 5 + 3)
    for key, value in backbone.state_dict().items():  # BN statistics untouched
        torch.testing.assert_close(value, stats[key], msg=key)


def test_old_backbone_prefixed_files_and_vice_head_keys_are_still_read(tmp_path):
    """Files of the converter before the fix (every key 'backbone.*') load with a warning;
    a ViCE file's decode_head.* keys are set aside; a half-prefixed file is refused."""
    net = _torchvision_resnet(18, seed=3)
    old = _converted(str(tmp_path / 'old.pth'), net, prefix='backbone.')
    backbone = FrozenResNet(depth=18, checkpoint=old)
    with _mmengine_log() as records:
        backbone.init_weights()
    torch.testing.assert_close(backbone.layer4[1].bn2.running_var, net.layer4[1].bn2.running_var)
    assert any("old layout (every key prefixed 'backbone.')" in r for r in records), records

    state = torch.load(_converted(str(tmp_path / 'new.pth'), net), weights_only=True)
    state['state_dict']['decode_head.conv_seg.weight'] = torch.zeros(2, 4, 1, 1)
    torch.save(state, tmp_path / 'vice.pth')
    backbone = FrozenResNet(depth=18, checkpoint=str(tmp_path / 'vice.pth'))
    backbone.init_weights()
    torch.testing.assert_close(backbone.conv1.weight, net.conv1.weight)

    state['state_dict']['backbone.conv1.weight'] = state['state_dict'].pop('conv1.weight')
    torch.save(state, tmp_path / 'mixed.pth')
    with pytest.raises(CheckpointMismatchError, match=r'1 missing keys \[conv1\.weight\]; '
                                                      r'1 unexpected keys \[backbone\.conv1'):
        FrozenResNet(depth=18, checkpoint=str(tmp_path / 'mixed.pth')).init_weights()


def test_channels_last_computation_gives_the_same_features(tmp_path):
    path = _converted(str(tmp_path / 'r18.pth'), _torchvision_resnet(18))
    fast, plain = (FrozenResNet(depth=18, checkpoint=path, out_indices=(2, 3),
                                channels_last=flag, **OS8) for flag in (True, False))
    fast.init_weights()
    plain.init_weights()
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 128)
    for a, b in zip(fast(x), plain(x)):
        assert a.is_contiguous()  # handed to the head in the usual NCHW layout
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('depth, channels', [(34, 512), (50, 2048), (101, 2048)])
def test_other_depths_output_stride_8(depth, channels):
    backbone = FrozenResNet(depth=depth, out_indices=(3,), **OS8)
    (out,) = backbone(torch.randn(1, 3, 32, 64))
    assert tuple(out.shape) == (1, channels, 4, 8)
    with pytest.raises(ValueError, match='depth must be 18, 34, 50 or 101'):
        FrozenResNet(depth=152)


@pytest.mark.parametrize('problem', ['missing', 'unexpected', 'shape', 'depth'])
def test_mismatched_checkpoint_is_one_error_listing_keys(tmp_path, problem):
    path = str(tmp_path / 'bad.pth')
    if problem == 'missing':
        _converted(path, _torchvision_resnet(18), drop=['layer2.0.bn1.running_var', 'bn1.bias'])
        pattern = r'2 missing keys \[bn1\.bias, layer2\.0\.bn1\.running_var\]'
    elif problem == 'unexpected':
        _converted(path, _torchvision_resnet(18), extra=['head.weight'])
        pattern = r'0 missing keys \[\]; 1 unexpected keys \[head\.weight\]'
    elif problem == 'shape':
        _converted(path, _torchvision_resnet(18), reshape=['conv1.weight'])
        pattern = (r'1 shape mismatches \[conv1\.weight: checkpoint \(1,\) vs model '
                   r'\(64, 3, 7, 7\)\]')
    else:  # a ResNet-50 checkpoint for a depth-18 model: every kind at once
        _converted(path, _torchvision_resnet(50))
        pattern = (r'missing keys \[.*\]; \d+ unexpected keys \[.*layer1\.0\.conv3\.weight.*\]; '
                   r'\d+ shape mismatches \[.*layer1\.0\.conv1\.weight')
    backbone = FrozenResNet(depth=18, checkpoint=path)
    with pytest.raises(CheckpointMismatchError, match=pattern) as info:
        backbone.init_weights()
    assert path in str(info.value) and CONVERT_ADVICE in str(info.value)
    assert CONVERT_ADVICE == ('convert it with python tools/convert_checkpoint.py IN OUT '
                              '--src-format vissl --dst-format mmseg')


def test_unconverted_or_missing_checkpoint_is_refused(tmp_path):
    raw = str(tmp_path / 'raw.pth')
    torch.save(_torchvision_resnet(18).state_dict(), raw)  # no 'state_dict' wrapper
    with pytest.raises(CheckpointMismatchError, match='not a converted backbone checkpoint'):
        FrozenResNet(depth=18, checkpoint=raw).init_weights()
    with pytest.raises(FileNotFoundError, match='backbone checkpoint not found'):
        FrozenResNet(depth=18, checkpoint=str(tmp_path / 'nope.pth')).init_weights()


def test_checkpoint_is_loaded_weights_only(tmp_path):
    path = _converted(str(tmp_path / 'pickled.pth'), _torchvision_resnet(18),
                      meta={'args': argparse.Namespace(lr=0.1)})  # arbitrary pickled object
    with pytest.raises(CheckpointMismatchError, match=r'cannot read backbone checkpoint.*'
                                                      r'Unsupported global: GLOBAL '
                                                      r'argparse\.Namespace'):
        FrozenResNet(depth=18, checkpoint=path).init_weights()


def test_random_init_is_deterministic_under_the_seed_and_not_degenerate():
    from mmengine.runner import set_random_seed

    def build(seed):
        set_random_seed(seed)
        backbone = FrozenResNet(depth=18)
        backbone.init_weights()
        return backbone
    a, b, c = build(0), build(0), build(1)
    torch.testing.assert_close(a.layer3[0].conv1.weight, b.layer3[0].conv1.weight)
    assert not torch.equal(a.layer3[0].conv1.weight, c.layer3[0].conv1.weight)
    # zero_init_residual is off: residual branches of a random probe are not zeroed
    assert a.layer2[1].bn2.weight.abs().min() > 0


def _probe_cfg():
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    return Config.fromfile(osp.join(repo, PROBE_CONFIG))


def test_linear_probe_head_is_conv1x1_bn_conv1x1_without_activation():
    from mmcv.cnn import ConvModule
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    head = MODELS.build(_probe_cfg().model.decode_head)
    (block,) = head.convs
    assert isinstance(block, ConvModule) and block.order == ('conv', 'norm', 'act')
    assert block.conv.kernel_size == (1, 1) and block.conv.padding == (0, 0)
    assert (block.conv.in_channels, block.conv.out_channels) == (512, 256)
    assert type(block.bn) is torch.nn.BatchNorm2d and not block.with_activation
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.Dropout2d, torch.nn.Dropout))
                   for m in head.modules())
    assert head.conv_seg.kernel_size == (1, 1)
    assert (head.conv_seg.in_channels, head.conv_seg.out_channels) == (256, 8)
    assert head.dropout is None and not head.concat_input
    x = torch.randn(2, 512, 8, 16)
    head.train()
    with torch.no_grad():  # the output is exactly conv_seg(bn(conv(x))), nothing else
        bn = torch.nn.functional.batch_norm(block.conv(x), None, None, block.bn.weight,
                                            block.bn.bias, training=True, eps=block.bn.eps)
        torch.testing.assert_close(head([x]), head.conv_seg(bn), rtol=1e-5, atol=1e-5)


def test_probe_model_from_config_trains_only_the_head():
    from mmseg.registry import MODELS
    cfg = _probe_cfg()
    assert cfg.model.backbone.type == 'FrozenResNet' and cfg.model.backbone.checkpoint is None
    assert cfg.model.backbone.depth == 18 and tuple(cfg.model.backbone.strides) == (1, 2, 1, 1)
    assert tuple(cfg.model.backbone.dilations) == (1, 1, 2, 4)
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.model.data_preprocessor.std == [58.395, 57.12, 57.375]
    # ViCE's optimiser; lr 0.1 instead of 0.01 for the 80-iteration schedule
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1, momentum=0.9,
                                               weight_decay=5e-4)
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.param_scheduler[0].power == 0.9
    assert cfg.param_scheduler[0].eta_min == 1e-4 and cfg.randomness.seed == 0
    model = MODELS.build(cfg.model)
    model.init_weights()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('decode_head.') for n in trainable)
    model.train()
    assert not model.backbone.training and model.decode_head.training
    inputs = torch.randint(0, 255, (2, 3, 64, 128)).float()
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
    assert tuple(logits.shape) == (2, 8, 8, 16)
