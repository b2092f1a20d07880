"""detectron2 loads of converted checkpoints: every backbone key matched, and every way a
weights file can be wrong is an error naming the file (d2_plugins.checked_checkpointer).

Real detectron2 models built from the shipped configs (R50-FPN and R50-C4 Mask R-CNN); the
checkpoints are the converter hub's fixtures in each method's layout (seeded random weights).
"""
import importlib.util
import logging
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

pytest.importorskip('detectron2', reason='detectron2 is not installed (docs/install.md); '
                                         'CI installs it from ../shared/wheels')

import d2_plugins  # noqa: E402,F401
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from converters import convert  # noqa: E402
from converters.writers.d2 import d2_name  # noqa: E402
from d2_plugins.checked_checkpointer import (CheckedDetectionCheckpointer,  # noqa: E402
                                             CheckpointKeyError, resnet_keys)
from d2_plugins.compat import adapt_config_for_device  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {'FPN': 'configs/d2/coco_mask_rcnn_R_50_FPN_1x_syncbn.yaml',
           'C4': 'configs/d2/coco_mask_rcnn_R_50_C4_1x.yaml',
           'R18-FPN': 'configs/d2/synthetic_mask_rcnn_R_18_FPN_cpu.yaml'}


def _hub():
    """The converter hub tests' fixture builders (checkpoints in each method's layout)."""
    spec = importlib.util.spec_from_file_location(
        'converter_hub_fixtures', osp.join(REPO, 'tests', 'test_converter_hub.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HUB = _hub()


@pytest.fixture(scope='module')
def r50():
    return HUB._resnet_state_dict('resnet50', 1)


@pytest.fixture(scope='module')
def r50_other():
    return HUB._resnet_state_dict('resnet50', 2)


def _model(kind):
    cfg = get_cfg()
    cfg.merge_from_file(osp.join(REPO, CONFIGS[kind]))
    adapt_config_for_device(cfg)
    torch.manual_seed(0)
    return build_model(cfg)


def _convert(ckpt, tmp_path, src_format='auto', name='backbone'):
    src = HUB._save(ckpt, tmp_path / f'{name}.pth')
    dst = str(tmp_path / f'{name}.pkl')
    report = convert(src, dst, src_format, 'd2', log=HUB._quiet)
    assert report['status'] == 'written'
    return dst


def _layouts(r50, r50_other):
    """(name, checkpoint, the encoder that must reach detectron2)."""
    return {
        'torchvision': (r50, r50),
        'moco': (HUB.moco_v2(r50, r50_other, arch='resnet50'), r50),       # encoder_q
        'swav': (HUB.swav_release(r50), r50),
        'slotcon': (HUB.slotcon_original(r50_other, r50, arch='resnet50'), r50),  # teacher
        'vissl': (HUB.vissl_plain(r50), r50),
    }


@pytest.mark.parametrize('kind', ['FPN', 'C4'])
@pytest.mark.parametrize('layout', ['torchvision', 'moco', 'swav', 'slotcon', 'vissl'])
def test_converted_checkpoint_fills_every_backbone_key(layout, kind, r50, r50_other, tmp_path):
    ckpt, encoder = _layouts(r50, r50_other)[layout]
    weights = _convert(ckpt, tmp_path)
    model = _model(kind)
    CheckedDetectionCheckpointer(model).load(weights)
    state = model.state_dict()
    by_d2_name = {d2_name(k): v for k, v in encoder.items() if d2_name(k)}
    keys = resnet_keys(state)
    assert len(keys) == len(by_d2_name) == 265  # 53 convs + 53 norms x 4
    for key in keys:
        short = key.split('bottom_up.')[-1].replace('roi_heads.', '').replace('backbone.', '')
        assert torch.equal(state[key], by_d2_name[short]), key
    if kind == 'C4':  # the extra norm of Res5ROIHeadsExtraNorm is new, not from the file
        assert 'roi_heads.res5.norm.weight' in state and 'roi_heads.res5.norm.weight' not in keys


def _drop_key(path, key, tmp_path):
    with open(path, 'rb') as f:
        data = pickle.load(f)
    del data['model'][key]
    out = str(tmp_path / 'one_key_short.pkl')
    with open(out, 'wb') as f:
        pickle.dump(data, f)
    return out


def test_a_file_missing_one_backbone_key_is_an_error_naming_it(r50, tmp_path):
    weights = _drop_key(_convert(r50, tmp_path), 'res4.2.conv2.norm.running_var', tmp_path)
    with pytest.raises(CheckpointKeyError) as info:
        CheckedDetectionCheckpointer(_model('FPN')).load(weights)
    message = str(info.value)
    assert weights in message and 'backbone.bottom_up.res4.2.conv2.norm.running_var' in message
    assert '1 of the 265 keys' in message and 'tools/convert_checkpoint.py' in message


def test_detectron2s_own_checkpointer_only_logs_that_key(r50, tmp_path, caplog):
    """The problem compat fix 3 solves: the same file loads without an error."""
    weights = _drop_key(_convert(r50, tmp_path), 'res4.2.conv2.norm.running_var', tmp_path)
    model = _model('FPN')
    with caplog.at_level(logging.INFO):
        DetectionCheckpointer(model).load(weights)  # logs, does not raise
    assert 'backbone.bottom_up.res4.2.conv2.norm.running_var' in caplog.text


def test_weights_of_another_architecture_are_an_error_with_the_shapes(tmp_path):
    r18 = HUB._resnet_state_dict('resnet18', 0)
    weights = _convert(r18, tmp_path)
    with pytest.raises(CheckpointKeyError) as info:
        CheckedDetectionCheckpointer(_model('FPN')).load(weights)
    message = str(info.value)
    assert 'shape differs' in message and 'MODEL.RESNETS.DEPTH' in message


def test_a_missing_weights_file_is_an_error_saying_what_to_do(tmp_path):
    missing = str(tmp_path / 'nowhere.pkl')
    with pytest.raises(FileNotFoundError) as info:
        CheckedDetectionCheckpointer(_model('R18-FPN')).load(missing)
    assert missing in str(info.value) and '--dst-format d2' in str(info.value)


def test_a_training_checkpoint_must_fill_the_whole_model(tmp_path):
    model = _model('R18-FPN')
    state = {k: v for k, v in model.state_dict().items() if 'box_predictor' not in k}
    path = str(tmp_path / 'model_0000099.pth')
    torch.save({'model': state, 'iteration': 99}, path)
    with pytest.raises(CheckpointKeyError) as info:
        CheckedDetectionCheckpointer(_model('R18-FPN')).load(path)
    assert 'roi_heads.box_predictor.cls_score.weight' in str(info.value)
    assert 'every key of the model' in str(info.value)


def test_checkpoints_are_saved_atomically_and_tagged(tmp_path):
    model = _model('R18-FPN')
    checkpointer = CheckedDetectionCheckpointer(model, save_dir=str(tmp_path))
    checkpointer.save('model_0000009', iteration=9)
    assert open(tmp_path / 'last_checkpoint').read() == 'model_0000009.pth'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint', 'model_0000009.pth']
    other = _model('R18-FPN')
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    checkpoint = CheckedDetectionCheckpointer(other, save_dir=str(tmp_path)).resume_or_load(
        '', resume=True)
    assert checkpoint['iteration'] == 9
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    assert np.isfinite(sum(float(v.float().sum()) for v in other.state_dict().values()))
