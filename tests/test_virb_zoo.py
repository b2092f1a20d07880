"""The original ViRB's encoder zoo formats through tools/convert_checkpoint.py --dst-format
virb (its scripts/*_to_virb.py): SwAV, MoCo v1 / v2, SimSiam, and VISSL checkpoints (PIRL,
SimCLR), each a synthetic checkpoint in the method's real layout built from one seeded
torchvision ResNet-50 state dict; every tensor is checked. The SimSiam file goes to virb
and back to torchvision, and loads (strictly) as a ViRB encoder directly."""

import pytest
import torch
import torch.nn as nn
import torchvision

from converters import convert
from converters.readers.detect import detect_format
from virb.encoders import build_resnet_encoder

WIDTH = 2048  # ResNet-50's embedding


@pytest.fixture(scope='module')
def r50():
    """A seeded random torchvision ResNet-50 state dict with non-default BN statistics."""
    torch.manual_seed(3)
    model = torchvision.models.resnet50(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _backbone(state):
    return {k: v for k, v in state.items() if not k.startswith('fc.')}


def _prefixed(prefix, state):
    return {prefix + k: v for k, v in state.items()}


def _bn1d(prefix, n, affine=True):
    out = {f'{prefix}running_mean': torch.randn(n), f'{prefix}running_var': torch.rand(n),
           f'{prefix}num_batches_tracked': torch.tensor(7)}
    if affine:
        out.update({f'{prefix}weight': torch.randn(n), f'{prefix}bias': torch.randn(n)})
    return out


def simsiam_checkpoint(encoder, hidden=16, dim=32):
    """facebookresearch/simsiam main_simsiam.py's save_checkpoint: the DDP state dict of
    SimSiam(encoder with fc -> 3-layer projector, predictor), arch, epoch, optimizer.
    (Projector / predictor widths shrunk; the layout is what counts.)"""
    state = _prefixed('module.encoder.', _backbone(encoder))
    state.update({'module.encoder.fc.0.weight': torch.randn(hidden, WIDTH),
                  **_bn1d('module.encoder.fc.1.', hidden),
                  'module.encoder.fc.3.weight': torch.randn(hidden, hidden),
                  **_bn1d('module.encoder.fc.4.', hidden),
                  'module.encoder.fc.6.weight': torch.randn(dim, hidden),
                  'module.encoder.fc.6.bias': torch.randn(dim),
                  **_bn1d('module.encoder.fc.7.', dim, affine=False),
                  'module.predictor.0.weight': torch.randn(hidden, dim),
                  **_bn1d('module.predictor.1.', hidden),
                  'module.predictor.3.weight': torch.randn(dim, hidden),
                  'module.predictor.3.bias': torch.randn(dim)})
    return {'epoch': 100, 'arch': 'resnet50', 'state_dict': state,
            'optimizer': {'state': {}, 'param_groups': [{'lr': 0.05, 'params': [0, 1]}]}}


def swav_release(encoder):
    """swav_800ep_pretrain.pth.tar: the DDP state dict with projection head + prototypes."""
    state = _prefixed('module.', _backbone(encoder))
    state.update({'module.projection_head.0.weight': torch.randn(16, WIDTH),
                  'module.projection_head.0.bias': torch.randn(16),
                  **_bn1d('module.projection_head.1.', 16),
                  'module.projection_head.3.weight': torch.randn(8, 16),
                  'module.prototypes.weight': torch.randn(30, 8)})
    return state


def moco_checkpoint(encoder, mlp):
    """main_moco.py: encoder_q (fc: Linear, or the v2 MLP), encoder_k, queue."""
    state = _prefixed('module.encoder_q.', _backbone(encoder))
    fc = ({'fc.0.weight': torch.randn(16, WIDTH), 'fc.0.bias': torch.randn(16),
           'fc.2.weight': torch.randn(8, 16), 'fc.2.bias': torch.randn(8)} if mlp else
          {'fc.weight': torch.randn(8, WIDTH), 'fc.bias': torch.randn(8)})
    state.update(_prefixed('module.encoder_q.', fc))
    state.update(_prefixed('module.encoder_k.', {**_backbone(encoder), **fc}))
    state.update({'module.queue': torch.randn(8, 64),
                  'module.queue_ptr': torch.zeros(1, dtype=torch.long)})
    return {'epoch': 800 if mlp else 200, 'arch': 'resnet50', 'state_dict': state,
            'optimizer': {'state': {}, 'param_groups': []}}


def vissl_checkpoint(encoder):
    """A VISSL model-zoo checkpoint (PIRL, SimCLR): the trunk in classy_state_dict."""
    return {'type': 'consolidated', 'phase_idx': 799,
            'classy_state_dict': {'base_model': {
                'model': {'trunk': _prefixed('_feature_blocks.', _backbone(encoder)),
                          'heads': {'0.clf.0.weight': torch.randn(8, WIDTH)}}},
                'loss': {}, 'optimizer': {}}}


ZOO = {'simsiam': (simsiam_checkpoint, 'simsiam'),
       'swav': (swav_release, 'swav'),
       'moco_v1': (lambda e: moco_checkpoint(e, mlp=False), 'moco'),
       'moco_v2': (lambda e: moco_checkpoint(e, mlp=True), 'moco'),
       'pirl_vissl': (vissl_checkpoint, 'vissl')}


def _assert_virb_file(path, encoder):
    written = torch.load(path, weights_only=True)
    expected = _prefixed('model.', _backbone(encoder))
    assert set(written) == set(expected)
    for key, value in expected.items():
        assert written[key].dtype == value.dtype and torch.equal(written[key], value), key


@pytest.mark.parametrize('case', sorted(ZOO))
def test_zoo_format_to_virb_with_the_cli(case, r50, tmp_path, capsys, convert_checkpoint_main):
    build, src_format = ZOO[case]
    src, dst = str(tmp_path / f'{case}.pth.tar'), str(tmp_path / f'{case}_virb.pt')
    torch.save(build(r50), src)
    assert convert_checkpoint_main([src, dst, '--src-format', src_format,
                                    '--dst-format', 'virb']) == 0
    out = capsys.readouterr().out
    assert 'status: written' in out and 'missing (0)' in out and 'unexpected (0)' in out
    _assert_virb_file(dst, r50)


def test_simsiam_round_trip_to_virb_and_back(r50, tmp_path):
    src = str(tmp_path / 'checkpoint_0099.pth.tar')
    checkpoint = simsiam_checkpoint(r50)
    torch.save(checkpoint, src)
    detection = detect_format(checkpoint)
    assert detection.format == 'simsiam' and 'predictor' in detection.evidence

    virb_file = str(tmp_path / 'SimSiam_100.pt')
    report = convert(src, virb_file, 'auto', 'virb', log=lambda *_: None)
    assert report['source_format'] == 'simsiam' and report['status'] == 'written'
    assert report['num_matched'] == len(_backbone(r50))
    dropped = report['dropped_keys']
    assert 'module.encoder.fc.6.weight' in dropped and 'module.predictor.3.bias' in dropped
    _assert_virb_file(virb_file, r50)

    back = str(tmp_path / 'back.pth')
    report = convert(virb_file, back, 'auto', 'torchvision', log=lambda *_: None)
    assert report['source_format'] == 'virb' and report['status'] == 'written'
    restored, expected = torch.load(back, weights_only=True), _backbone(r50)
    assert list(restored) == list(expected)
    for key, value in expected.items():
        assert restored[key].dtype == value.dtype and torch.equal(restored[key], value), key

    # an experiment list may name the SimSiam file itself: read strictly as a resnet50
    encoder, weights = build_resnet_encoder(None, src, log=lambda *_: None)
    assert weights.source_format == 'simsiam' and weights.arch == 'resnet50'
    assert torch.equal(encoder.model.layer4[2].bn3.running_var, r50['layer4.2.bn3.running_var'])


def test_simsiam_reader_refuses_a_file_without_an_encoder(r50, tmp_path):
    src = str(tmp_path / 'predictor_only.pth')
    torch.save({'state_dict': {'module.predictor.0.weight': torch.randn(4, 4)}}, src)
    from converters import ConversionError
    with pytest.raises(ConversionError, match='no SimSiam encoder'):
        convert(src, str(tmp_path / 'x.pt'), 'simsiam', 'virb', log=lambda *_: None)


def test_a_bare_encoder_prefix_is_simsiam_only_when_asked(r50, tmp_path):
    """Other methods prefix their ResNet with 'encoder.' too: without SimSiam's predictor or
    MLP projector auto does not claim the file, and --src-format simsiam still reads it."""
    bare = _prefixed('encoder.', _backbone(r50))
    assert detect_format(bare).format is None
    projector_only = {**bare, 'encoder.fc.0.weight': torch.randn(4, WIDTH)}
    assert detect_format(projector_only).format == 'simsiam'
    src = str(tmp_path / 'encoder_only.pth')
    torch.save(bare, src)
    report = convert(src, str(tmp_path / 'out.pt'), 'simsiam', 'virb', log=lambda *_: None)
    assert report['status'] == 'written' and report['num_matched'] == len(bare)
