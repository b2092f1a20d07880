"""Init type ``CheckedPretrained`` and compat fix 4 (plain ``Pretrained`` is checked, and
``CheckedPretrained`` runs after the children's own init): converted files load through a
real mmseg model build + ``init_weights``; files that do not fit fail naming the keys."""
import contextlib
import logging

import pytest
import torch
import torchvision

import mmseg_plugins  # noqa: F401  (registers CheckedPretrained, applies compat fix 4)
from converters import convert
from mmseg_plugins import compat
from mmseg_plugins.checked_pretrained import (CONVERT_ADVICE, CheckedPretrainedInit,
                                              CheckpointMismatchError)

CHECKED_TYPES = ['CheckedPretrained', 'Pretrained']  # ours, and SlotCon's command line


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def resnet18():
    """A torchvision ResNet-18 state dict with non-trivial BN statistics."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5), m.bias.normal_()
    return net.state_dict()


@pytest.fixture(scope='module')
def converted(resnet18, tmp_path_factory):
    """``tools/convert_checkpoint.py IN OUT --src-format torchvision --dst-format mmseg``."""
    root = tmp_path_factory.mktemp('converted')
    torch.save(resnet18, root / 'r18.pth')
    convert(str(root / 'r18.pth'), str(root / 'r18_mmseg.pth'), 'torchvision', 'mmseg',
            log=lambda *a: None)
    return str(root / 'r18_mmseg.pth')


def _backbone_state(resnet18):
    return {k: v for k, v in resnet18.items() if not k.startswith('fc.')}


def _model(backbone_init=None, head_init=None):
    """A real mmseg EncoderDecoder: ResNet-18 (torchvision stem) + FCNHead whose conv_cat is
    a ConvModule child of the head (ConvModule.init_weights re-initialises its conv)."""
    from mmseg.registry import MODELS
    head = dict(type='FCNHead', in_channels=512, in_index=3, channels=8, num_convs=1,
                concat_input=True, num_classes=3, norm_cfg=dict(type='BN', requires_grad=True))
    if head_init is not None:
        head['init_cfg'] = head_init
    torch.manual_seed(1)
    return MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='ResNet', depth=18, style='pytorch', deep_stem=False,
                      norm_cfg=dict(type='BN', requires_grad=True), init_cfg=backbone_init),
        decode_head=head))


def _save(path, state_dict):
    torch.save({'state_dict': state_dict, 'meta': {'converter': 'test'}}, path)
    return str(path)


@contextlib.contextmanager
def _mmengine_log():
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


@pytest.mark.parametrize('init_type', CHECKED_TYPES)
def test_converted_torchvision_resnet_loads_through_init_cfg(init_type, resnet18, converted):
    saved = torch.load(converted, weights_only=True)['state_dict']
    assert set(saved) == set(_backbone_state(resnet18))  # no prefix: mmseg's layout
    model = _model(dict(type=init_type, checkpoint=converted))
    model.init_weights()
    state = model.backbone.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


def test_without_fix_4_plain_pretrained_only_logs_and_loads_nothing(resnet18, tmp_path):
    """The problem: mmengine's own PretrainedInit takes an old-layout file without a word
    (keys 'backbone.*' do not match a backbone's), leaving the random init."""
    from mmengine.model.weight_init import PretrainedInit
    from mmengine.registry import WEIGHT_INITIALIZERS
    old = _save(tmp_path / 'old.pth', {f'backbone.{k}': v
                                       for k, v in _backbone_state(resnet18).items()})
    model = _model()
    before = model.backbone.conv1.weight.clone()
    PretrainedInit(checkpoint=old)(model.backbone)  # no error
    assert torch.equal(model.backbone.conv1.weight, before)
    # the fix: the registry's 'Pretrained' is the checked init (what configs build)
    assert compat.install_checked_pretrained.original is PretrainedInit
    assert WEIGHT_INITIALIZERS.get('Pretrained') is CheckedPretrainedInit
    assert not compat.install_checked_pretrained()  # idempotent


@pytest.mark.parametrize('init_type', CHECKED_TYPES)
def test_missing_key_fails_naming_file_and_key_and_loads_nothing(init_type, converted,
                                                                 tmp_path):
    saved = torch.load(converted, weights_only=True)['state_dict']
    del saved['layer3.1.bn2.running_var'], saved['conv1.weight']
    path = _save(tmp_path / 'missing.pth', saved)
    model = _model(dict(type=init_type, checkpoint=path))
    before = model.backbone.layer1[0].conv1.weight.clone()
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    message = str(e.value)
    assert path in message and CONVERT_ADVICE in message
    assert '2 missing keys [conv1.weight, layer3.1.bn2.running_var]' in message
    assert 'Nothing was loaded' in message
    assert torch.equal(model.backbone.layer1[0].conv1.weight, before)


@pytest.mark.parametrize('init_type', CHECKED_TYPES)
def test_old_backbone_prefix_fails_and_says_what_to_do(init_type, resnet18, tmp_path):
    old = _save(tmp_path / 'old.pth', {f'backbone.{k}': v
                                       for k, v in _backbone_state(resnet18).items()})
    with pytest.raises(CheckpointMismatchError) as e:
        _model(dict(type=init_type, checkpoint=old)).init_weights()
    message = str(e.value)
    assert old in message and "carry a 'backbone.' prefix" in message
    assert "prefix='backbone.'" in message and '--dst-format mmseg' in message
    assert '120 missing keys [bn1.bias' in message and 'unexpected keys [backbone.bn1' in message
    # what the message offers works: the prefix is stripped, every key checked
    model = _model(dict(type=init_type, checkpoint=old, prefix='backbone.'))
    model.init_weights()
    assert torch.equal(model.backbone.layer4[1].bn2.running_var,
                       resnet18['layer4.1.bn2.running_var'])


def test_unexpected_and_shape_mismatched_keys_fail_unless_allowed(resnet18, converted,
                                                                  tmp_path):
    saved = torch.load(converted, weights_only=True)['state_dict']
    raw = _save(tmp_path / 'with_fc.pth', dict(resnet18))  # torchvision's file: fc.* too
    with pytest.raises(CheckpointMismatchError,
                       match=r'0 missing keys \[\]; 2 unexpected keys \[fc\.bias, fc\.weight\]'):
        _model(dict(type='Pretrained', checkpoint=raw)).init_weights()
    model = _model(dict(type='CheckedPretrained', checkpoint=raw, allow_unexpected=['fc.']))
    model.init_weights()
    assert torch.equal(model.backbone.conv1.weight, resnet18['conv1.weight'])

    bad = _save(tmp_path / 'shape.pth', dict(saved, **{'layer2.0.conv1.weight':
                                                       torch.zeros(128, 64, 1, 1)}))
    with pytest.raises(CheckpointMismatchError, match=r'1 shape mismatches \[layer2\.0\.conv1'
                                                      r'\.weight: checkpoint \(128, 64, 1, 1\) '
                                                      r'vs model \(128, 64, 3, 3\)\]'):
        _model(dict(type='CheckedPretrained', checkpoint=bad)).init_weights()
    with pytest.raises(TypeError, match='allow_missing must be a list of key prefixes'):
        _model(dict(type='CheckedPretrained', checkpoint=bad,
                    allow_missing='conv_seg.')).init_weights()


def test_missing_file_names_the_option_to_set(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        _model(dict(type='CheckedPretrained', checkpoint='PRETRAIN')).init_weights()
    assert 'checkpoint not found: PRETRAIN' in str(e.value)
    assert 'model.backbone.init_cfg.checkpoint=FILE' in str(e.value)


def _head_state(model_head_keys, seed=5):
    torch.manual_seed(seed)
    return {f'decode_head.{k}': torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point()
            else v.clone() for k, v in model_head_keys.items() if not k.startswith('conv_seg.')}


def _head_init(path):
    return [dict(type='CheckedPretrained', checkpoint=path, prefix='decode_head.',
                 allow_missing=['conv_seg.']),
            dict(type='Normal', std=0.01, override=dict(name='conv_seg'))]


def test_backbone_and_head_parts_of_one_file(resnet18, tmp_path):
    """A ViCE-style file: backbone keys + decode_head.*; the backbone's init sets the head's
    keys aside (logged), the head loads its part (prefix), only conv_seg stays new."""
    head = _head_state(_model().decode_head.state_dict())
    path = _save(tmp_path / 'vice.pth', {**_backbone_state(resnet18), **head})
    model = _model(dict(type='CheckedPretrained', checkpoint=path), _head_init(path))
    with _mmengine_log() as records:
        model.init_weights()
    assert any('keys of other model parts (decode_head.*)' in r and "prefix='decode_head.'" in r
               for r in records), records
    state = model.state_dict()
    for key, value in head.items():
        assert torch.equal(state[key], value), key
    assert torch.equal(state['backbone.conv1.weight'], resnet18['conv1.weight'])
    assert state['decode_head.conv_seg.weight'].std() < 0.05  # mmseg's Normal(0.01) init

    # a head key missing beyond conv_seg is an error as well
    del head['decode_head.conv_cat.bn.running_var']
    path = _save(tmp_path / 'vice_missing.pth', {**_backbone_state(resnet18), **head})
    with pytest.raises(CheckpointMismatchError, match=r"prefix 'decode_head\.'.*1 missing keys "
                                                      r"\[conv_cat\.bn\.running_var\]"):
        _model(None, _head_init(path)).init_weights()


def test_without_fix_4b_checked_init_of_a_head_is_overwritten(resnet18, tmp_path, monkeypatch):
    """The problem of (b): mmengine runs only inits named 'Pretrained' after the children's
    init_weights; a 'CheckedPretrained' head init would run first and ConvModule's own
    init_weights would then re-initialise conv_cat."""
    from mmengine.model import BaseModule
    head = _head_state(_model().decode_head.state_dict())
    path = _save(tmp_path / 'vice.pth', {**_backbone_state(resnet18), **head})
    assert BaseModule.init_weights is compat._init_weights_checked_pretrained_last
    monkeypatch.setattr(BaseModule, 'init_weights',
                        compat._init_weights_checked_pretrained_last.original)
    model = _model(None, _head_init(path))
    model.init_weights()
    assert not torch.equal(model.decode_head.conv_cat.conv.weight,
                           head['decode_head.conv_cat.conv.weight'])
    monkeypatch.undo()
    model = _model(None, _head_init(path))
    model.init_weights()
    assert torch.equal(model.decode_head.conv_cat.conv.weight,
                       head['decode_head.conv_cat.conv.weight'])
    assert model.decode_head.init_cfg[0]['type'] == 'CheckedPretrained'  # cfg left as given
