"""The converter hub: MoCo / SwAV / SlotCon readers, --src-format auto, the wrong-format and
no-teacher errors, and the detectron2 writer (cross-checked against VISSL's own converter).

Fixtures are synthetic checkpoints in each method's real layout, built from seeded random
torchvision ResNet-18/50 state dicts; every conversion is checked tensor by tensor.
"""
import argparse
import os
import os.path as osp
import pickle
import subprocess

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from converters import ConversionError, convert
from converters.canonical_resnet import ARCHS, STRUCTURES, backbone_shapes
from converters.readers.detect import detect_format
from converters.writers.d2 import d2_name, d2_resnet_shapes

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _resnet_state_dict(arch, seed):
    """A seeded random torchvision ResNet state dict with non-default BN statistics."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(seed + 3)
            module.bias.data.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _backbone(state_dict):
    return {k: v for k, v in state_dict.items() if not k.startswith('fc.')}


@pytest.fixture(scope='module')
def r18():
    return _resnet_state_dict('resnet18', 0)


@pytest.fixture(scope='module')
def r18_other():
    return _resnet_state_dict('resnet18', 5)


@pytest.fixture(scope='module')
def r50():
    return _resnet_state_dict('resnet50', 1)


def _quiet(*args):
    pass


def _save(obj, path):
    torch.save(obj, path)
    return str(path)


def _prefixed(prefix, state_dict):
    return {prefix + k: v for k, v in state_dict.items()}


def _assert_same(given, reference):
    assert list(given) == list(reference)
    for key, value in reference.items():
        assert given[key].dtype == value.dtype and torch.equal(given[key], value), key


# ---- fixture checkpoints in each method's layout ----------------------------------------------

def moco_v2(encoder_q, encoder_k, arch='resnet18'):
    """facebookresearch/moco main_moco.py (v2 --mlp): DDP state dict + queue, arch, epoch."""
    width = encoder_q['fc.weight'].shape[1]
    state = _prefixed('module.encoder_q.', _backbone(encoder_q))
    state.update({'module.encoder_q.fc.0.weight': torch.randn(width, width),
                  'module.encoder_q.fc.0.bias': torch.randn(width),
                  'module.encoder_q.fc.2.weight': torch.randn(128, width),
                  'module.encoder_q.fc.2.bias': torch.randn(128)})
    state.update(_prefixed('module.encoder_k.', _backbone(encoder_k)))
    state.update({'module.encoder_k.fc.2.weight': torch.randn(128, width),
                  'module.queue': torch.randn(128, 64),
                  'module.queue_ptr': torch.zeros(1, dtype=torch.long)})
    return {'epoch': 200, 'arch': arch, 'state_dict': state,
            'optimizer': {'state': {}, 'param_groups': [{'lr': 0.03, 'params': [0, 1]}]}}


def swav_release(encoder):
    """SwAV's released swav_800ep_pretrain.pth.tar: the DDP state dict with its heads."""
    width = encoder['fc.weight'].shape[1]
    state = _prefixed('module.', _backbone(encoder))
    state.update({'module.projection_head.0.weight': torch.randn(32, width),
                  'module.projection_head.0.bias': torch.randn(32),
                  'module.projection_head.1.weight': torch.randn(32),
                  'module.projection_head.1.bias': torch.randn(32),
                  'module.projection_head.1.running_mean': torch.randn(32),
                  'module.projection_head.1.running_var': torch.rand(32),
                  'module.projection_head.1.num_batches_tracked': torch.tensor(4),
                  'module.projection_head.3.weight': torch.randn(16, 32),
                  'module.projection_head.3.bias': torch.randn(16),
                  'module.prototypes.weight': torch.randn(30, 16)})
    return state


def slotcon_original(student, teacher, arch='resnet18'):
    """SlotCon's main_pretrain.py save_checkpoint: args (a Namespace), the DDP model state
    dict (student encoder_q, teacher encoder_k, projectors, grouping, predictor, center),
    optimizer, scheduler, scaler, epoch. Small head widths (the layout is what counts)."""
    width = student['fc.weight'].shape[1]
    state = _prefixed('module.encoder_q.', _backbone(student))
    state.update(_prefixed('module.encoder_k.', _backbone(teacher)))
    for side in 'qk':
        state.update({f'module.projector_{side}.mlp.0.weight': torch.randn(16, width, 1, 1),
                      f'module.projector_{side}.mlp.0.bias': torch.randn(16),
                      f'module.projector_{side}.mlp.1.weight': torch.randn(16),
                      f'module.projector_{side}.mlp.1.running_var': torch.rand(16),
                      f'module.projector_{side}.mlp.6.weight': torch.randn(8, 16, 1, 1),
                      f'module.grouping_{side}.slot_embed.weight': torch.randn(12, 8)})
    state.update({'module.center': torch.zeros(1, 12),
                  'module.predictor_slot.mlp.0.weight': torch.randn(16, 8),
                  'module.predictor_slot.mlp.6.bias': torch.randn(8)})
    args = argparse.Namespace(arch=arch, dataset='COCO', num_prototypes=12, epochs=800)
    return {'args': args, 'model': state, 'optimizer': {'state': {}, 'param_groups': []},
            'scheduler': {'last_epoch': 10}, 'scaler': {'scale': 65536.0}, 'epoch': 800}


def slotcon_vissl(student, teacher):
    """densessl's VISSL SlotCon checkpoint (the contract with the VISSL plugin): student
    trunk in base_model, teacher trunk in the loss state under momentum_teacher.trunk."""
    trunk = _prefixed('_feature_blocks.', _backbone(student))
    loss = _prefixed('momentum_teacher.trunk._feature_blocks.', _backbone(teacher))
    loss.update({'momentum_teacher.heads.0.projector.mlp.0.weight': torch.randn(16, 512, 1, 1),
                 'momentum_teacher.heads.0.grouping.prototypes.weight': torch.randn(12, 16),
                 'center': torch.zeros(1, 12)})
    heads = {'0.projector.mlp.0.weight': torch.randn(16, 512, 1, 1),
             '0.grouping.prototypes.weight': torch.randn(12, 16),
             '0.predictor.mlp.0.weight': torch.randn(16, 16)}
    return {'phase_idx': 1, 'iteration': 20, 'type': 'consolidated', 'loss': loss,
            'classy_state_dict': {
                'base_model': {'model': {'trunk': trunk, 'heads': heads}, 'meta': {}},
                'loss': loss, 'optimizer': {'name': 'lars', 'state': {}}, 'phase_idx': 1}}


def vissl_plain(encoder):
    """A VISSL training checkpoint of a ResNet trunk (e.g. SimCLR): no teacher."""
    return {'type': 'consolidated', 'loss': {},
            'classy_state_dict': {
                'base_model': {'model': {'trunk': _prefixed('_feature_blocks.',
                                                            _backbone(encoder)),
                                         'heads': {'0.clf.0.weight': torch.randn(8, 512)}}},
                'loss': {}, 'optimizer': {}}}


def vice_trunk(encoder):
    """ViCE's VISSL deeplabv3plus trunk: backbone.* + (tiny) aspp / decoder keys."""
    trunk = _prefixed('_feature_blocks.backbone.', _backbone(encoder))
    trunk.update({'_feature_blocks.aspp.fuse_conv.weight': torch.randn(8, 40, 1, 1),
                  '_feature_blocks.decoder.skip_conv.weight': torch.randn(48, 64, 1, 1)})
    return {'trunk': trunk}


# ---- detectron2 key list and writer ---------------------------------------------------------

@pytest.mark.parametrize('arch', ARCHS)
def test_d2_key_list_is_torchvision_renamed_without_counters_and_fc(arch):
    """The d2 list is built from detectron2's construction rules (stem, BasicBlock /
    BottleneckBlock, shortcut where channels change); renaming torchvision's list must give
    exactly it, shapes included."""
    renamed = {d2_name(k): s for k, s in backbone_shapes(arch).items() if d2_name(k)}
    assert renamed == d2_resnet_shapes(arch)
    kind, blocks = STRUCTURES[arch]
    expected = 5 + 4 * 5 - (5 if kind == 'basic' else 0)  # stem + shortcuts (R18/34: no res2)
    expected += sum(blocks) * 5 * (2 if kind == 'basic' else 3)
    assert len(d2_resnet_shapes(arch)) == expected
    assert not any('num_batches_tracked' in k or k.startswith('fc.') for k in renamed)


def test_d2_names_of_basic_and_bottleneck_blocks():
    r18, r50 = d2_resnet_shapes('resnet18'), d2_resnet_shapes('resnet50')
    assert r18['stem.conv1.weight'] == (64, 3, 7, 7) and 'stem.conv1.norm.running_var' in r18
    assert 'res2.0.shortcut.weight' not in r18 and r18['res3.0.shortcut.weight'] == (128, 64, 1, 1)
    assert r18['res5.1.conv2.norm.bias'] == (512,) and 'res2.0.conv3.weight' not in r18
    assert r50['res2.0.shortcut.weight'] == (256, 64, 1, 1)
    assert r50['res4.5.conv3.weight'] == (1024, 256, 1, 1)
    assert r50['res5.0.shortcut.norm.running_mean'] == (2048,)
    assert d2_name('layer3.0.downsample.1.running_var') == 'res4.0.shortcut.norm.running_var'
    assert d2_name('layer1.2.bn3.weight') == 'res2.2.conv3.norm.weight'
    assert d2_name('bn1.num_batches_tracked') is None and d2_name('fc.bias') is None
    assert d2_name('layer9.weight') == 'layer9.weight'  # unknown: left to fail the check


def _load_d2(path):
    with open(path, 'rb') as f:
        return pickle.load(f, encoding='latin1')  # as detectron2's DetectionCheckpointer


def _assert_d2_round_trip(model, source):
    """Every source conv/bn tensor is in the d2 model under its d2 name, exactly."""
    expected = {d2_name(k): v for k, v in _backbone(source).items() if d2_name(k)}
    assert sorted(model) == sorted(expected)
    for name, value in expected.items():
        assert isinstance(model[name], np.ndarray), name
        assert torch.equal(torch.from_numpy(model[name]), value), name


@pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')
@pytest.mark.parametrize('arch', ['resnet18', 'resnet50'])
def test_vissl_to_d2_equals_vissls_own_converter(arch, r18, r50, tmp_path):
    """Same VISSL checkpoint through densessl's d2 writer and through VISSL's
    extra_scripts/convert_vissl_to_detectron2.py: same key set, same tensors."""
    from extra_scripts.convert_vissl_to_detectron2 import _rename_weights_to_d2
    source = r18 if arch == 'resnet18' else r50
    src = _save(vissl_plain(source), tmp_path / 'model_final_checkpoint_phase1.torch')
    dst = str(tmp_path / 'out.pkl')
    report = convert(src, dst, 'vissl', 'd2', log=_quiet)
    assert report['status'] == 'written' and report['arch'] == arch
    ours = _load_d2(dst)
    assert set(ours) == {'model', '__author__', 'matching_heuristics'}
    assert ours['__author__'] == 'densessl' and ours['matching_heuristics'] is True
    trunk = torch.load(src, weights_only=True)['classy_state_dict']['base_model']['model']['trunk']
    theirs = _rename_weights_to_d2(trunk, 'torch')
    assert set(ours['model']) == set(theirs)
    for name, value in theirs.items():
        assert torch.equal(torch.from_numpy(ours['model'][name]), value), name
    assert {k: v.shape for k, v in ours['model'].items()} == d2_resnet_shapes(arch)
    _assert_d2_round_trip(ours['model'], source)


def test_d2_report_counts_drops_and_notes(r18, tmp_path):
    src = _save(r18, tmp_path / 'r18.pth')  # with fc
    lines = []
    report = convert(src, str(tmp_path / 'r18.pkl'), 'torchvision', 'd2', log=lines.append)
    assert report['num_matched'] == report['num_expected'] == len(d2_resnet_shapes('resnet18'))
    assert report['dropped_keys'] == ['fc.weight', 'fc.bias'] and report['fc'] == 'dropped'
    text = '\n'.join(lines)
    assert 'missing (0): -' in text and 'unexpected (0): -' in text
    assert f"{report['num_matched']} matched" in text
    assert 'num_batches_tracked dropped (20 tensors)' in text
    assert 'RES2_OUT_CHANNELS 64' in text  # R18 in detectron2
    _assert_d2_round_trip(_load_d2(tmp_path / 'r18.pkl')['model'], r18)


def test_d2_writes_bfloat16_as_float32_and_says_so(r18, tmp_path):
    source = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in r18.items()}
    src = _save(source, tmp_path / 'bf16.pth')
    report = convert(src, str(tmp_path / 'out.pkl'), 'torchvision', 'd2', log=_quiet)
    assert any(n.startswith('100 bfloat16 tensors written as float32') for n in report['notes'])
    model = _load_d2(tmp_path / 'out.pkl')['model']
    assert model['stem.conv1.weight'].dtype == np.float32
    assert torch.equal(torch.from_numpy(model['res5.1.conv2.norm.running_var']),
                       source['layer4.1.bn2.running_var'].float())


def test_d2_output_must_be_a_pkl_and_nothing_is_read_or_written_otherwise(r18, tmp_path):
    src = _save(r18, tmp_path / 'r18.pth')
    with pytest.raises(ConversionError, match=r'out\.pth: --dst-format d2 files must be named '
                                              r'\*\.pkl.*out\.pkl'):
        convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'd2', log=_quiet)
    assert sorted(os.listdir(tmp_path)) == ['r18.pth']


def test_d2_refuses_a_missing_key_naming_it_in_d2_names(r18, tmp_path):
    source = dict(r18)
    del source['layer2.0.downsample.1.running_mean']
    src = _save(source, tmp_path / 'r18.pth')
    with pytest.raises(ConversionError, match=r'res3\.0\.shortcut\.norm\.running_mean'):
        convert(src, str(tmp_path / 'out.pkl'), 'torchvision', 'd2', log=_quiet)
    assert not osp.exists(tmp_path / 'out.pkl')


# ---- MoCo / SwAV ----------------------------------------------------------------------------

@pytest.mark.parametrize('dst_format', ['torchvision', 'd2'])
def test_moco_v2_query_encoder(dst_format, r50, tmp_path):
    encoder_k = {k: v + 1 for k, v in r50.items()}
    src = _save(moco_v2(r50, encoder_k, 'resnet50'), tmp_path / 'moco_v2_800ep.pth.tar')
    dst = str(tmp_path / ('out.pkl' if dst_format == 'd2' else 'out.pth'))
    lines = []
    report = convert(src, dst, 'moco', dst_format, log=lines.append)
    assert report['status'] == 'written' and report['arch'] == 'resnet50'
    assert report['fc'] == 'absent'  # MoCo's fc is its projection head, never a classifier
    dropped = report['dropped_keys']
    assert [k for k in dropped if '.fc.' in k] == [
        'module.encoder_q.fc.0.weight', 'module.encoder_q.fc.0.bias',
        'module.encoder_q.fc.2.weight', 'module.encoder_q.fc.2.bias',
        'module.encoder_k.fc.2.weight']
    assert 'module.queue' in dropped and 'module.encoder_k.conv1.weight' in dropped
    assert any("arch 'resnet50'" in line for line in lines)
    if dst_format == 'd2':
        _assert_d2_round_trip(_load_d2(dst)['model'], r50)
    else:
        _assert_same(torch.load(dst, weights_only=True), _backbone(r50))


def test_moco_v1_fc_head_is_dropped_although_its_shape_fits_a_classifier(r18, tmp_path):
    state = _prefixed('encoder_q.', _backbone(r18))
    state.update({'encoder_q.fc.weight': torch.randn(128, 512), 'encoder_q.fc.bias':
                  torch.randn(128), 'queue': torch.randn(128, 16)})
    src = _save({'state_dict': state, 'arch': 'resnet18', 'epoch': 1}, tmp_path / 'v1.pth')
    report = convert(src, str(tmp_path / 'out.pth'), 'moco', 'torchvision', log=_quiet)
    assert report['fc'] == 'absent'
    assert report['dropped_keys'] == ['encoder_q.fc.weight', 'encoder_q.fc.bias', 'queue']
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r18))


def test_moco_v3_base_encoder(r18, tmp_path):
    state = _prefixed('module.base_encoder.', _backbone(r18))
    state.update({'module.base_encoder.fc.0.weight': torch.randn(64, 512),
                  'module.momentum_encoder.conv1.weight': torch.randn(64, 3, 7, 7),
                  'module.predictor.0.weight': torch.randn(64, 256)})
    src = _save({'state_dict': state, 'arch': 'resnet18'}, tmp_path / 'v3.pth.tar')
    report = convert(src, str(tmp_path / 'out.pth'), 'auto', 'torchvision', log=_quiet)
    assert report['source_format'] == 'moco' and 'MoCo v3' in report['format_detection']
    assert report['dropped_keys'] == ['module.base_encoder.fc.0.weight',
                                      'module.momentum_encoder.conv1.weight',
                                      'module.predictor.0.weight']
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r18))


@pytest.mark.parametrize('wrapped', [False, True])
def test_swav_heads_are_dropped(wrapped, r18, tmp_path):
    state = swav_release(r18)
    obj = {'epoch': 800, 'state_dict': state, 'optimizer': {}} if wrapped else state
    src = _save(obj, tmp_path / 'swav_800ep_pretrain.pth.tar')
    report = convert(src, str(tmp_path / 'out.pkl'), 'swav', 'd2', log=_quiet)
    assert report['status'] == 'written'
    assert sorted(report['dropped_keys']) == sorted(
        k for k in state if 'projection_head' in k or 'prototypes' in k)
    _assert_d2_round_trip(_load_d2(tmp_path / 'out.pkl')['model'], r18)
    report = convert(src, str(tmp_path / 'out.pth'), 'swav', 'torchvision', log=_quiet)
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r18))


# ---- SlotCon --------------------------------------------------------------------------------

@pytest.mark.parametrize('use_student', [False, True])
def test_slotcon_original_teacher_by_default_student_on_request(use_student, r18, r18_other,
                                                                  tmp_path):
    student, teacher = r18, r18_other
    src = _save(slotcon_original(student, teacher), tmp_path / 'ckpt_epoch_800.pth')
    lines = []
    report = convert(src, str(tmp_path / 'out.pth'), 'slotcon', 'torchvision',
                     log=lines.append, use_student=use_student)
    chosen, other = ('encoder_q', 'encoder_k') if use_student else ('encoder_k', 'encoder_q')
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True),
                 _backbone(student if use_student else teacher))
    assert any(f'module.{chosen}.* in checkpoint[\'model\']' in n for n in report['notes'])
    assert f'module.{other}.conv1.weight' in report['dropped_keys']
    assert 'module.center' in report['dropped_keys']
    assert 'module.predictor_slot.mlp.0.weight' in report['dropped_keys']
    # more than ten dropped keys are printed by group
    (dropped_line,) = [line for line in lines if line.startswith('  dropped (')]
    assert dropped_line.startswith(f"  dropped ({len(report['dropped_keys'])}): "
                                   f"module.{'encoder_k' if use_student else 'encoder_q'}"
                                   f".<resnet> (120), ")
    assert 'module.center (1)' in dropped_line
    # the Namespace pickle: loaded with weights_only=False as trusted input, said in the report
    trusted = [n for n in report['notes'] if 'weights_only=False' in n]
    assert trusted and 'argparse.Namespace' in trusted[0] and 'trusted input' in trusted[0]
    assert any(line.startswith('  note: ') and 'trusted input' in line for line in lines)
    assert any("arch 'resnet18'" in n for n in report['notes'])


def test_slotcon_backbone_only_file_to_d2(r18, tmp_path):
    src = _save(_prefixed('encoder_k.', _backbone(r18)), tmp_path / 'slotcon_backbone.pth')
    report = convert(src, str(tmp_path / 'out.pkl'), 'slotcon', 'd2', log=_quiet)
    assert report['status'] == 'written' and report['dropped_keys'] == []
    assert not any('weights_only=False' in n for n in report['notes'])  # plain tensors
    _assert_d2_round_trip(_load_d2(tmp_path / 'out.pkl')['model'], r18)
    with pytest.raises(ConversionError, match='hold the teacher only: drop --use-student'):
        convert(src, str(tmp_path / 'o.pkl'), 'slotcon', 'd2', log=_quiet, use_student=True)


@pytest.mark.parametrize('use_student', [False, True])
@pytest.mark.parametrize('dst_format', ['torchvision', 'd2'])
def test_slotcon_vissl_teacher_by_default_student_on_request(use_student, dst_format, r18,
                                                             r18_other, tmp_path):
    student, teacher = r18, r18_other
    src = _save(slotcon_vissl(student, teacher), tmp_path / 'model_final_checkpoint_phase1.torch')
    dst = str(tmp_path / ('out.pkl' if dst_format == 'd2' else 'out.pth'))
    report = convert(src, dst, 'slotcon', dst_format, log=_quiet, use_student=use_student)
    expected = student if use_student else teacher
    if dst_format == 'd2':
        _assert_d2_round_trip(_load_d2(dst)['model'], expected)
    else:
        _assert_same(torch.load(dst, weights_only=True), _backbone(expected))
    dropped = report['dropped_keys']
    assert 'heads.0.projector.mlp.0.weight' in dropped and 'loss.center' in dropped
    assert 'loss.momentum_teacher.heads.0.grouping.prototypes.weight' in dropped
    assert ('trunk._feature_blocks.conv1.weight' in dropped) != use_student
    assert ('loss.momentum_teacher.trunk._feature_blocks.conv1.weight' in dropped) == use_student
    assert any(n.startswith('encoder: the ' + ('student' if use_student else 'teacher'))
               for n in report['notes'])


@pytest.mark.parametrize('use_student', [False, True])
@pytest.mark.parametrize('layout', ['original', 'vissl'])
def test_slotcon_branch_for_the_evaluation_model(layout, use_student, r18, r18_other, tmp_path):
    """read_slotcon_branch (tools/viz_slots.py): the encoder plus projector + grouping in
    densessl.slotcon names, of the teacher unless use_student; the predictor is left out."""
    from converters.readers.slotcon import read_slotcon_branch
    build = slotcon_original if layout == 'original' else slotcon_vissl
    ckpt = build(r18, r18_other)  # student r18, teacher r18_other
    src = _save(ckpt, tmp_path / 'slotcon.pth')
    resnet, head = read_slotcon_branch(src, use_student=use_student, log=_quiet)
    _assert_same(resnet, _backbone(r18 if use_student else r18_other))
    if layout == 'original':
        state, side = ckpt['model'], 'q' if use_student else 'k'
        expected = {'projector.' + k[len(f'module.projector_{side}.'):]: v for k, v in
                    state.items() if k.startswith(f'module.projector_{side}.')}
        expected['grouping.prototypes.weight'] = state[f'module.grouping_{side}.slot_embed.weight']
    else:
        source = (ckpt['classy_state_dict']['base_model']['model']['heads'] if use_student
                  else ckpt['classy_state_dict']['loss'])
        prefix = '0.' if use_student else 'momentum_teacher.heads.0.'
        expected = {k[len(prefix):]: v for k, v in source.items()
                    if k.startswith(prefix) and '.predictor.' not in '.' + k[len(prefix):]}
    assert sorted(head) == sorted(expected) and 'grouping.prototypes.weight' in head
    assert all(torch.equal(head[k], v) for k, v in expected.items())
    assert not any(k.startswith('predictor.') for k in head)
    backbone_only = _save(_prefixed('encoder_k.', _backbone(r18)), tmp_path / 'backbone.pth')
    with pytest.raises(ConversionError, match='no SlotCon teacher projector / grouping'):
        read_slotcon_branch(backbone_only, log=_quiet)


def test_slotcon_branch_of_an_original_checkpoint_builds_the_evaluation_model(r18, tmp_path):
    """SlotCon's own names (projector_k.mlp.*, grouping_k.slot_embed) land on
    densessl.slotcon's DINOHead2d / SemanticGrouping, every key checked by the model."""
    from converters.readers.slotcon import read_slotcon_branch
    from densessl.slotcon.eval_model import SlotConEvalModel
    from densessl.slotcon.grouping import SemanticGrouping
    from densessl.slotcon.projector import DINOHead2d
    torch.manual_seed(0)
    projector, grouping = DINOHead2d(512, 32, 16), SemanticGrouping(6, 16)
    state = _prefixed('module.encoder_k.', _backbone(r18))
    state.update(_prefixed('module.projector_k.', projector.state_dict()))
    state['module.grouping_k.slot_embed.weight'] = grouping.prototypes.weight.detach()
    src = _save({'args': argparse.Namespace(arch='resnet18'), 'model': state}, tmp_path / 'c.pth')
    model = SlotConEvalModel.from_state_dicts(*read_slotcon_branch(src, log=_quiet))
    assert model.num_prototypes == 6
    assert torch.equal(model.projector.mlp[6].weight, projector.mlp[6].weight)


def test_slotcon_without_teacher_is_one_error_pointing_to_use_student(r18, r18_other, tmp_path):
    ckpt = slotcon_original(r18, r18_other)
    ckpt['model'] = {k: v for k, v in ckpt['model'].items() if '.encoder_k.' not in k}
    src = _save(ckpt, tmp_path / 'no_teacher.pth')
    with pytest.raises(ConversionError) as e:
        convert(src, str(tmp_path / 'out.pth'), 'slotcon', 'torchvision', log=_quiet)
    message = str(e.value)
    assert src in message and 'no SlotCon teacher encoder' in message
    assert '--use-student' in message and 'module.encoder_q.<resnet>' in message
    report = convert(src, str(tmp_path / 'out.pth'), 'slotcon', 'torchvision', log=_quiet,
                     use_student=True)
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r18))
    os.remove(tmp_path / 'out.pth')

    # a VISSL checkpoint without momentum_teacher keys (another VISSL method)
    src = _save(vissl_plain(r18), tmp_path / 'simclr.torch')
    with pytest.raises(ConversionError) as e:
        convert(src, str(tmp_path / 'out.pth'), 'slotcon', 'torchvision', log=_quiet)
    message = str(e.value)
    assert src in message and 'no SlotCon teacher' in message and '--use-student' in message
    assert 'fit --src-format vissl' in message
    assert not osp.exists(tmp_path / 'out.pth')


def test_vissl_reader_on_a_slotcon_checkpoint_reads_the_student_and_says_so(r18, r18_other,
                                                                            tmp_path):
    src = _save(slotcon_vissl(r18, r18_other), tmp_path / 'slotcon.torch')
    report = convert(src, str(tmp_path / 'out.pth'), 'vissl', 'torchvision', log=_quiet)
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), _backbone(r18))
    assert any('fit --src-format slotcon best' in n for n in report['notes'])


# ---- auto-detection and the wrong-format error ----------------------------------------------

FORMAT_CASES = {
    'torchvision': lambda a, b: a,
    'vissl': lambda a, b: vissl_plain(a),
    'moco': lambda a, b: moco_v2(a, b),
    'swav': lambda a, b: swav_release(a),
    'slotcon': lambda a, b: slotcon_original(b, a),  # teacher = a
    'slotcon_vissl': lambda a, b: slotcon_vissl(b, a),  # teacher = a
    'vice': lambda a, b: vice_trunk(a),
}


@pytest.mark.parametrize('case', sorted(FORMAT_CASES))
def test_auto_detects_each_format_and_says_so(case, r18, r18_other, tmp_path):
    fmt = case.split('_')[0]
    src = _save(FORMAT_CASES[case](r18, r18_other), tmp_path / 'in.pth')
    lines = []
    report = convert(src, str(tmp_path / 'out.pth'), 'auto', 'torchvision', log=lines.append)
    assert report['source_format'] == fmt and report['format_detection'].startswith(fmt + ':')
    assert any(line.startswith(f'  format: auto-detected {fmt}: ') for line in lines)
    expected = r18 if fmt == 'torchvision' else _backbone(r18)  # torchvision keeps its fc
    _assert_same(torch.load(tmp_path / 'out.pth', weights_only=True), expected)


def test_key_groups_describe_where_keys_sit():
    from converters.readers.common import group_keys
    keys = ['module.encoder_q.conv1.weight', 'module.encoder_q.fc.0.weight', 'module.queue',
            'module.projector_q.mlp.0.weight', 'loss.center', 'loss.momentum_teacher.heads.0.w',
            '_feature_blocks.layer1.0.bn1.bias', 'conv1.weight', 'epoch']
    assert group_keys(keys) == (
        'module.encoder_q.<resnet> (2), module.queue (1), module.projector_q.* (1), '
        'loss.center (1), loss.momentum_teacher.* (1), _feature_blocks.<resnet> (1), '
        '<resnet> (1), epoch (1)')


def test_detect_format_candidates_and_unknown_layouts(r18, r18_other):
    assert detect_format(slotcon_vissl(r18, r18_other)).candidates == ['slotcon', 'vissl']
    assert detect_format(_prefixed('encoder_k.', _backbone(r18))).format == 'slotcon'
    assert detect_format({'encoder.weight': torch.zeros(1)}).format is None
    assert detect_format([1, 2]).format is None
    assert detect_format({0: torch.zeros(1), 'conv1.weight': torch.zeros(1)}).format == \
        'torchvision'  # keys that are not strings do not break the description


def test_auto_on_an_unknown_layout_names_the_keys(tmp_path):
    src = _save({'net': {'encoder.0.weight': torch.zeros(2, 2)}, 'step': 3},
                tmp_path / 'odd.pth')
    with pytest.raises(ConversionError, match=r"odd\.pth: --src-format auto cannot tell the "
                                              r"format.*'net', 'step'.*Pass --src-format"):
        convert(src, str(tmp_path / 'out.pth'), 'auto', 'torchvision', log=_quiet)


@pytest.mark.parametrize('given,case,fits', [
    ('torchvision', 'moco', 'moco'),        # the reader would "succeed" with encoder_q.* keys
    ('torchvision', 'swav', 'swav'),
    ('moco', 'slotcon', 'slotcon'),
    ('vissl', 'torchvision', 'torchvision'),  # the reader fails; its reason is kept
    ('swav', 'slotcon_vissl', 'slotcon'),
])
def test_a_src_format_the_keys_do_not_fit_is_one_error(given, case, fits, r18, r18_other,
                                                       tmp_path):
    src = _save(FORMAT_CASES[case](r18, r18_other), tmp_path / 'in.pth')
    with pytest.raises(ConversionError) as e:
        convert(src, str(tmp_path / 'out.pth'), given, 'torchvision', log=_quiet)
    message = str(e.value)
    assert message.startswith(f'{src}: --src-format {given} does not match the keys: ')
    assert f'fit --src-format {fits} (' in message and '--src-format auto' in message
    assert '<resnet>' in message  # what the keys look like
    assert (f'The {given} reader says: ' in message) == (given in ('vissl', 'swav'))
    assert not osp.exists(tmp_path / 'out.pth')


def test_use_student_only_for_slotcon(r18, tmp_path):
    src = _save(r18, tmp_path / 'r18.pth')
    with pytest.raises(ConversionError, match=r'--use-student applies to --src-format slotcon '
                                              r'only.*detected as torchvision'):
        convert(src, str(tmp_path / 'out.pth'), 'auto', 'torchvision', use_student=True,
                log=_quiet)
    with pytest.raises(ConversionError, match='--use-student applies'):
        convert(src, str(tmp_path / 'out.pth'), 'torchvision', 'torchvision',
                use_student=True, log=_quiet)


# ---- the command line (mmseg through the CLI: written, prefix not asserted) -----------------

def _cli(python, env, *args):
    return subprocess.run([python, osp.join(REPO, 'tools', 'convert_checkpoint.py'),
                           *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


def test_cli_slotcon_auto_and_mmseg(python, cpu_env, r18, r18_other, tmp_path):
    src = _save(slotcon_original(r18, r18_other), tmp_path / 'ckpt_epoch_800.pth')
    dst = tmp_path / 'slotcon_mmseg.pth'
    run = _cli(python, cpu_env, src, dst, '--src-format', 'auto', '--dst-format', 'mmseg')
    assert run.returncode == 0, run.stderr
    assert 'format: auto-detected slotcon' in run.stdout
    assert 'weights_only=False' in run.stdout and 'trusted input' in run.stdout
    assert 'missing (0)' in run.stdout and 'unexpected (0)' in run.stdout
    state = torch.load(dst, weights_only=True)['state_dict']
    prefix = list(state)[0][:-len('conv1.weight')]  # whatever prefix the mmseg writer uses
    _assert_same({k[len(prefix):]: v for k, v in state.items()}, _backbone(r18_other))


def test_cli_use_student_and_a_refused_format(r18, r18_other, tmp_path, capsys,
                                              convert_checkpoint_main):
    main = convert_checkpoint_main
    src = _save(slotcon_original(r18, r18_other), tmp_path / 'ckpt_epoch_800.pth')
    dst = tmp_path / 'student.pkl'
    assert main([src, str(dst), '--src-format', 'slotcon', '--dst-format', 'd2',
                 '--use-student']) == 0
    _assert_d2_round_trip(_load_d2(dst)['model'], r18)
    assert main([src, str(tmp_path / 'x.pth'), '--src-format', 'swav', '--dst-format',
                 'mmseg']) == 2
    # swav loads weights only: the Namespace pickle is refused before any key is read
    err = capsys.readouterr().err
    assert "the 'swav' reader loads weights only" in err and '--src-format auto' in err
    assert not (tmp_path / 'x.pth').exists()


@pytest.mark.parametrize('case', ['moco', 'swav', 'slotcon_vissl'])
def test_cli_readers_into_mmseg(case, r18, r18_other, tmp_path, capsys,
                                convert_checkpoint_main):
    src = _save(FORMAT_CASES[case](r18, r18_other), tmp_path / 'in.pth')
    assert convert_checkpoint_main([src, str(tmp_path / 'out.pth'), '--src-format',
                                    case.split('_')[0], '--dst-format', 'mmseg']) == 0
    out = capsys.readouterr().out
    assert 'status: written' in out and 'missing (0)' in out and 'unexpected (0)' in out
