"""Checkpoint converters: readers -> canonical torchvision ResNet state dict -> writers."""
import argparse
import json
import os
import os.path as osp
import random
import subprocess

import pytest
import torch
import torch.nn as nn
import torchvision

from converters import (READERS, WRITERS, CanonicalCheckpoint, ConversionError,
                        ConversionRefused, convert, register_reader)
from converters.canonical_resnet import (ARCHS, backbone_shapes, describe_structure,
                                         detect_arch, expected_shapes, verify)
from converters.loading import load_checkpoint

HEADS = {'0.clf.0.weight': torch.randn(128, 512), '0.clf.0.bias': torch.randn(128),
         '1.clf.0.weight': torch.randn(64, 128)}


def _resnet_state_dict(arch, seed=0):
    """A seeded random torchvision ResNet state dict with non-default BN statistics."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(seed + 7)
            module.bias.data.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope='module')
def r18():
    return _resnet_state_dict('resnet18')


@pytest.fixture(scope='module')
def r50():
    return _resnet_state_dict('resnet50', seed=1)


def _backbone(state_dict):
    return {k: v for k, v in state_dict.items() if not k.startswith('fc.')}


def _vissl_checkpoint(state_dict, heads=HEADS):
    """The layout of a VISSL training checkpoint (model_final_checkpoint_phaseN.torch)."""
    trunk = {'_feature_blocks.' + k: v for k, v in _backbone(state_dict).items()}
    return {'phase_idx': 3, 'iteration': 40, 'type': 'consolidated', 'loss': {},
            'classy_state_dict': {
                'base_model': {'model': {'trunk': trunk, 'heads': dict(heads)},
                               'meta': {'trunk': {}}},
                'optimizer': {'name': 'sgd', 'state': {}}, 'phase_idx': 3}}


def _save(obj, path):
    torch.save(obj, path)
    return str(path)


def _quiet(*args):
    pass


def _assert_same(given, reference):
    assert list(given) == list(reference)
    for key, value in reference.items():
        assert given[key].dtype == value.dtype and torch.equal(given[key], value), key


# ---- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize('arch', ['resnet18', 'resnet50'])
def test_torchvision_to_mmseg_loads_strict_into_torchvision(arch, r18, r50, tmp_path):
    source = r18 if arch == 'resnet18' else r50
    src = _save(source, tmp_path / 'in.pth')
    dst = str(tmp_path / 'out.pth')
    report = convert(src, dst, 'torchvision', 'mmseg', log=_quiet)
    assert report['status'] == 'written' and report['written']
    assert report['arch'] == arch and report['arch_from'] == 'detected'
    assert report['num_matched'] == len(_backbone(source)) == report['num_expected']
    assert report['fc'] == 'dropped' and report['dropped_keys'] == ['fc.weight', 'fc.bias']

    saved = torch.load(dst, weights_only=True)
    # MMSeg's layout: backbone names without prefix (what init_cfg Pretrained reads)
    assert set(saved['state_dict']) == set(_backbone(source))
    assert saved['meta'] == {'source_format': 'torchvision', 'source_path': osp.abspath(src),
                             'arch': arch, 'converter': 'densessl',
                             'dropped_keys': ['fc.weight', 'fc.bias']}
    stripped = saved['state_dict']
    model = getattr(torchvision.models, arch)(weights=None)
    model.fc = nn.Identity()
    model.load_state_dict(stripped, strict=True)
    _assert_same(model.state_dict(), _backbone(source))
    assert sorted(os.listdir(tmp_path)) == ['in.pth', 'out.pth']  # no temporary file left


def test_torchvision_to_torchvision_is_the_identity(r18, tmp_path):
    src = _save({'state_dict': {'module.' + k: v for k, v in r18.items()}, 'epoch': 3},
                tmp_path / 'in.pth')
    dst = str(tmp_path / 'out.pth')
    report = convert(src, dst, 'torchvision', 'torchvision', log=_quiet)
    assert report['fc'] == 'kept' and report['dropped_keys'] == []
    assert any("'module.'" in n for n in report['notes'])
    assert any("'epoch'" in n for n in report['notes'])
    out = torch.load(dst, weights_only=True)
    _assert_same(out, r18)
    torchvision.models.resnet18(weights=None).load_state_dict(out, strict=True)


def test_torchvision_writer_without_fc_is_backbone_only_and_says_so(r18, tmp_path):
    lines = []
    src = _save(_backbone(r18), tmp_path / 'in.pth')
    report = convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'torchvision',
                     log=lines.append)
    assert report['status'] == 'written' and report['fc'] == 'absent'
    assert any('fc.* absent' in line for line in lines)
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r18))


def test_fc_with_another_number_of_classes_is_kept(r18, tmp_path):
    source = dict(r18, **{'fc.weight': torch.randn(10, 512), 'fc.bias': torch.randn(10)})
    src = _save(source, tmp_path / 'in.pth')
    report = convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'torchvision', log=_quiet)
    assert report['status'] == 'written'
    assert torch.load(tmp_path / 'out.pth', weights_only=True)['fc.weight'].shape == (10, 512)


# ---- VISSL -----------------------------------------------------------------------------------

@pytest.mark.parametrize('dst_format', ['mmseg', 'torchvision'])
def test_vissl_training_checkpoint_converts_and_reports_dropped_heads(dst_format, r18, tmp_path):
    src = _save(_vissl_checkpoint(r18), tmp_path / 'model_final_checkpoint_phase3.torch')
    dst = str(tmp_path / 'out.pth')
    lines = []
    report = convert(src, dst, 'vissl', dst_format, log=lines.append)
    heads = ['heads.0.clf.0.weight', 'heads.0.clf.0.bias', 'heads.1.clf.0.weight']
    assert report['dropped_keys'] == heads and report['arch'] == 'resnet18'
    assert report['status'] == 'written' and report['num_matched'] == 120
    assert any('dropped (3): heads.0.clf.0.weight' in line for line in lines)
    saved = torch.load(dst, weights_only=True)
    if dst_format == 'mmseg':
        assert saved['meta']['dropped_keys'] == heads
        assert saved['meta']['source_format'] == 'vissl'
        saved = saved['state_dict']
    _assert_same(saved, _backbone(r18))


@pytest.mark.parametrize('layout', ['trunk_dict', 'flat', 'model_state_dict'])
def test_vissl_exported_layouts(layout, r50, tmp_path):
    trunk = {'_feature_blocks.' + k: v for k, v in _backbone(r50).items()}
    heads = {'0.weight': torch.randn(3, 2048)}
    if layout == 'trunk_dict':
        ckpt = {'trunk': trunk, 'heads': heads}
    elif layout == 'flat':
        ckpt = {**{'trunk.' + k: v for k, v in trunk.items()},
                **{'heads.' + k: v for k, v in heads.items()}}
    else:
        ckpt = {'model_state_dict': trunk}
    src = _save(ckpt, tmp_path / 'in.torch')
    report = convert(src, str(tmp_path / 'out.pth'), 'vissl', 'torchvision', log=_quiet)
    assert report['arch'] == 'resnet50' and report['status'] == 'written'
    assert report['dropped_keys'] == ([] if layout == 'model_state_dict' else ['heads.0.weight'])
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r50))


def test_vissl_checkpoint_without_the_nesting_names_the_missing_key(r18, tmp_path):
    ckpt = _vissl_checkpoint(r18)
    del ckpt['classy_state_dict']['base_model']['model']
    src = _save(ckpt, tmp_path / 'in.torch')
    with pytest.raises(ConversionError) as e:
        convert(src, str(tmp_path / 'out.pth'), 'vissl', 'mmseg', log=_quiet)
    message = str(e.value)
    assert "['classy_state_dict']['base_model'] has no 'model'" in message
    assert src in message and "'meta'" in message  # what was found instead
    assert not osp.exists(tmp_path / 'out.pth')


def test_wrong_src_format_says_which_to_use(r18, tmp_path):
    plain = _save(r18, tmp_path / 'plain.pth')
    with pytest.raises(ConversionError, match='--src-format torchvision'):
        convert(plain, str(tmp_path / 'o.pth'), 'vissl', 'mmseg', log=_quiet)
    vissl = _save(_vissl_checkpoint(r18), tmp_path / 'vissl.torch')
    with pytest.raises(ConversionError, match='--src-format vissl'):
        convert(vissl, str(tmp_path / 'o.pth'), 'torchvision', 'mmseg', log=_quiet)


def test_sharded_vissl_checkpoint_is_refused_with_the_consolidation_command(tmp_path):
    src = _save({'type': 'sharded', 'classy_state_dict': {}}, tmp_path / 'in.torch')
    with pytest.raises(ConversionError, match='convert_sharded_checkpoint'):
        convert(src, str(tmp_path / 'o.pth'), 'vissl', 'mmseg', log=_quiet)


# ---- refusals --------------------------------------------------------------------------------

def test_missing_keys_are_refused_and_nothing_is_written(r18, tmp_path):
    source = dict(r18)
    del source['layer3.1.bn2.running_var']
    src = _save(source, tmp_path / 'in.pth')
    dst = str(tmp_path / 'out.pth')
    report_json = str(tmp_path / 'report.json')
    with pytest.raises(ConversionRefused) as e:
        convert(src, dst, 'torchvision', 'mmseg', report_json=report_json, log=_quiet)
    message = str(e.value)
    assert 'layer3.1.bn2.running_var' in message
    assert '--allow-missing' in message and '--arch' in message
    assert 'Nothing was written' in message
    assert not osp.exists(dst)
    assert e.value.report['status'] == 'refused' and not e.value.report['written']
    assert e.value.report['missing_keys'] == ['layer3.1.bn2.running_var']
    assert e.value.report['arch'] == 'resnet18' and e.value.report['arch_from'] == 'closest match'
    assert json.load(open(report_json))['missing_keys'] == ['layer3.1.bn2.running_var']
    assert sorted(os.listdir(tmp_path)) == ['in.pth', 'report.json']


def test_allow_missing_writes_with_a_warning(r18, tmp_path):
    source = _backbone(r18)
    del source['layer4.1.conv2.weight']
    src = _save(source, tmp_path / 'in.pth')
    lines = []
    report = convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'torchvision',
                     allow_missing=True, log=lines.append)
    assert report['status'] == 'written_with_warnings' and report['written']
    assert report['missing_keys'] == ['layer4.1.conv2.weight']
    assert any(line.startswith('  WARNING:') and 'layer4.1.conv2.weight' in line
               for line in lines)
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), source)


def test_unexpected_trunk_key_is_refused(r18, tmp_path):
    ckpt = _vissl_checkpoint(r18)
    trunk = ckpt['classy_state_dict']['base_model']['model']['trunk']
    trunk['_feature_blocks.layer4.1.se.fc1.weight'] = torch.randn(32, 512)
    src = _save(ckpt, tmp_path / 'in.torch')
    with pytest.raises(ConversionRefused, match=r'1 unexpected keys: layer4\.1\.se'):
        convert(src, str(tmp_path / 'out.pth'), 'vissl', 'mmseg', log=_quiet)
    assert not osp.exists(tmp_path / 'out.pth')
    # heads are not unexpected: they are dropped
    report = convert(src, str(tmp_path / 'out.pth'), 'vissl', 'mmseg', allow_missing=True,
                     log=_quiet)
    assert report['unexpected_keys'] == ['layer4.1.se.fc1.weight']
    assert len(report['dropped_keys']) == len(HEADS)


def test_shape_mismatch_is_refused_naming_the_key(r18, tmp_path):
    source = dict(r18, **{'layer2.0.conv1.weight': torch.randn(128, 64, 5, 5)})
    src = _save(source, tmp_path / 'in.pth')
    with pytest.raises(ConversionRefused) as e:
        convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'torchvision', log=_quiet)
    assert ('layer2.0.conv1.weight: source (128, 64, 5, 5) vs expected (128, 64, 3, 3)'
            in str(e.value))
    assert not osp.exists(tmp_path / 'out.pth')


def test_wrong_given_arch_is_refused_with_the_missing_blocks(r18, tmp_path):
    src = _save(r18, tmp_path / 'in.pth')
    with pytest.raises(ConversionRefused) as e:
        convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'mmseg', arch='resnet34',
                log=_quiet)
    assert 'layer1.2.conv1.weight' in e.value.report['missing_keys']
    assert any('look like resnet18' in n for n in e.value.report['notes'])


def test_nothing_resnet_like_is_an_error_even_with_allow_missing(tmp_path):
    src = _save({'encoder.weight': torch.randn(4, 4)}, tmp_path / 'in.pth')
    with pytest.raises(ConversionError, match='no tensor matches a torchvision ResNet'):
        convert(src, str(tmp_path / 'o.pth'), 'torchvision', 'mmseg', allow_missing=True,
                log=_quiet)
    with pytest.raises(ConversionRefused, match='no tensor matches|0 matched|missing'):
        convert(src, str(tmp_path / 'o.pth'), 'torchvision', 'mmseg', arch='resnet18',
                allow_missing=True, log=_quiet)
    assert not osp.exists(tmp_path / 'o.pth')


# ---- unreadable input ------------------------------------------------------------------------

def test_missing_input_file(tmp_path):
    with pytest.raises(ConversionError, match='input checkpoint not found: .*nope.pth'):
        convert(str(tmp_path / 'nope.pth'), str(tmp_path / 'o.pth'), 'vissl', 'mmseg')


@pytest.mark.parametrize('damage,seed', [('truncated', 0), ('empty', 0)]
                         + [('random_bytes', seed) for seed in range(4)])
def test_corrupt_file_gives_a_clear_error(damage, seed, r18, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(r18, good)
    path = tmp_path / 'bad.pth'
    if damage == 'truncated':
        path.write_bytes(good.read_bytes()[:100000])
    elif damage == 'random_bytes':
        path.write_bytes(random.Random(seed).randbytes(5000))
    else:
        path.write_bytes(b'')
    with pytest.raises(ConversionError) as e:
        convert(str(path), str(tmp_path / 'o.pth'), 'torchvision', 'mmseg', log=_quiet)
    assert f'cannot read {path}' in str(e.value) and 'corrupt' in str(e.value)
    assert not osp.exists(tmp_path / 'o.pth')


def test_pickled_objects_need_a_trusted_reader(r18, tmp_path):
    src = _save({'state_dict': r18, 'args': argparse.Namespace(lr=0.1)}, tmp_path / 'in.pth')
    with pytest.raises(ConversionError, match='argparse.Namespace.*weights only'):
        convert(src, str(tmp_path / 'o.pth'), 'torchvision', 'mmseg', log=_quiet)
    lines = []
    ckpt = load_checkpoint(src, 'slotcon', trusted_pickle=True, log=lines.append)
    assert ckpt['args'].lr == 0.1
    assert any('trusted input' in line for line in lines)


# ---- canonical form --------------------------------------------------------------------------

@pytest.mark.parametrize('arch', ['resnet18', 'resnet34', 'resnet50'])
def test_arch_detection(arch):
    state_dict = getattr(torchvision.models, arch)(weights=None).state_dict()
    assert detect_arch(state_dict) == (arch, True)
    assert detect_arch(_backbone(state_dict)) == (arch, True)


def test_arch_detection_of_an_incomplete_resnet50_is_the_closest_match(r50):
    truncated = {k: v for k, v in r50.items() if not k.startswith('layer4.2.')}
    assert describe_structure(truncated) == 'bottleneck blocks 3-4-6-2'
    assert detect_arch(truncated) == ('resnet50', False)
    assert detect_arch({'foo': torch.zeros(1)}) == (None, False)


def test_expected_key_lists_are_torchvision_s():
    for arch in ARCHS:
        assert list(backbone_shapes(arch)) == [k for k in expected_shapes(arch)
                                               if not k.startswith('fc.')]
    reference = torchvision.models.resnet34(weights=None).state_dict()
    assert expected_shapes('resnet34') == {k: tuple(v.shape) for k, v in reference.items()}
    # stem 1 conv + 1 bn (5 keys each bn); 3+8+36+3 = 50 bottlenecks of 3 conv + 3 bn; 4 downsamples
    assert len(backbone_shapes('resnet152')) == 6 + 50 * 18 + 4 * 6


def test_verify_lists_missing_unexpected_and_mismatched(r18):
    state_dict = dict(r18)
    del state_dict['bn1.bias']
    state_dict['layer9.weight'] = torch.zeros(1)
    state_dict['conv1.weight'] = torch.zeros(64, 3, 3, 3)
    diff = verify(state_dict, 'resnet18')
    assert diff['missing'] == ['bn1.bias'] and diff['unexpected'] == ['layer9.weight']
    assert diff['mismatched'] == [{'key': 'conv1.weight', 'shape': '(64, 3, 3, 3)',
                                   'expected': '(64, 3, 7, 7)'}]
    assert 'fc.weight' in diff['matched'] and len(diff['matched']) == len(r18) - 2


def test_a_registered_reader_joins_every_writer(r18, tmp_path):
    @register_reader('test_encoder')
    def read_encoder(path, log=print):
        raw = torch.load(path, weights_only=True)
        state_dict = {k[len('encoder.'):]: v for k, v in raw.items() if k.startswith('encoder.')}
        dropped = [k for k in raw if not k.startswith('encoder.')]
        return CanonicalCheckpoint(state_dict, 'test_encoder', path, dropped_keys=dropped)

    try:
        raw = {**{'encoder.' + k: v for k, v in _backbone(r18).items()},
               'projector.weight': torch.randn(8, 512)}
        src = _save(raw, tmp_path / 'in.pth')
        for dst_format in WRITERS:
            report = convert(src, str(tmp_path / f'{dst_format}.pkl'), 'test_encoder',
                             dst_format, log=_quiet)
            assert report['status'] == 'written'
            assert report['dropped_keys'] == ['projector.weight']
    finally:
        del READERS['test_encoder']


def test_unknown_formats_list_the_known_ones(tmp_path):
    with pytest.raises(ConversionError, match='unknown --src-format .*torchvision, vissl'):
        convert('x', 'y', 'caffe', 'mmseg')
    with pytest.raises(ConversionError, match='unknown --dst-format .*mmseg, torchvision'):
        convert('x', 'y', 'vissl', 'caffe')


# ---- the command line ------------------------------------------------------------------------

def _cli(python, repo_root, *args):
    return subprocess.run([python, osp.join(repo_root, 'tools', 'convert_checkpoint.py'),
                           *map(str, args)], cwd=repo_root, capture_output=True, text=True,
                          timeout=300)


def test_cli_success_and_report_json(python, repo_root, r18, tmp_path):
    src = _save(_vissl_checkpoint(r18), tmp_path / 'model_final_checkpoint_phase3.torch')
    dst, report_json = tmp_path / 'r18_mmseg.pth', tmp_path / 'report.json'
    result = _cli(python, repo_root, src, dst, '--src-format', 'vissl', '--dst-format', 'mmseg',
                  '--report-json', report_json)
    assert result.returncode == 0, result.stderr
    assert 'arch: resnet18 (detected' in result.stdout
    assert 'dropped (3): heads.0.clf.0.weight' in result.stdout
    assert 'status: written' in result.stdout
    report = json.load(open(report_json))
    assert report['status'] == 'written' and report['num_matched'] == 120
    assert len(torch.load(dst, weights_only=True)['state_dict']) == 120


def test_cli_refusal_and_bad_input(python, repo_root, r18, tmp_path):
    source = dict(r18)
    del source['layer1.0.bn1.weight']
    src = _save(source, tmp_path / 'in.pth')
    dst = tmp_path / 'out.pth'
    result = _cli(python, repo_root, src, dst, '--src-format', 'torchvision',
                  '--dst-format', 'mmseg')
    assert result.returncode == 1
    assert 'refused' in result.stderr and 'layer1.0.bn1.weight' in result.stderr
    assert '--allow-missing' in result.stderr
    assert not dst.exists()

    result = _cli(python, repo_root, src, dst, '--src-format', 'torchvision',
                  '--dst-format', 'mmseg', '--allow-missing')
    assert result.returncode == 0, result.stderr
    assert 'WARNING' in result.stdout and dst.exists()

    result = _cli(python, repo_root, tmp_path / 'absent.torch', dst, '--src-format', 'vissl',
                  '--dst-format', 'mmseg')
    assert result.returncode == 2 and 'input checkpoint not found' in result.stderr
