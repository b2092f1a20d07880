"""SlotCon's MMSeg fine-tuning configs (configs/mmseg/slotcon/): the three protocols' models,
data and schedules as the spec states them, a converted ResNet-50 loading through their
init_cfg, and real runs: the tiny synthetic variant through tools/train.py (1 process) and
tools/dist_train.sh (2 processes, gloo), and each real config for one iteration on a
stand-in data tree of its data set's layout."""
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import mmseg_plugins  # noqa: F401  (registers the plugins, compat fixes)
from converters import convert

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PYTHON = sys.executable
SLOTCON = 'configs/mmseg/slotcon'
VOC = f'{SLOTCON}/fcn_d6_r50-d16_513x513_30k_voc12aug.py'
CITYSCAPES = f'{SLOTCON}/fcn_d6_r50-d16_769x769_90k_cityscapes.py'
ADE20K = f'{SLOTCON}/fcn_r50-d8_512x512_80k_ade20k.py'
SYNTHETIC = f'{SLOTCON}/fcn_d6_r18-d16_synthetic.py'
IMAGENET = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


@pytest.fixture(autouse=True)
def mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


def _config(path):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, path))


def _torchvision_resnet(depth, seed=0):
    torch.manual_seed(seed)
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    with torch.no_grad():  # non-trivial BN statistics and affine, so loading them shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5), m.bias.normal_()
    return net.state_dict()


def _convert(state, tmp_path, name):
    src, dst = str(tmp_path / f'{name}.pth'), str(tmp_path / f'{name}_mmseg.pth')
    torch.save(state, src)
    convert(src, dst, 'torchvision', 'mmseg', log=lambda *a: None)
    return dst


# ---- the three protocols: structure, data, schedule ---------------------------------------

def _conv3x3(block):
    return block.conv2  # style 'pytorch' (torchvision): stride and dilation in the 3x3 conv


@pytest.mark.parametrize('path,os_,num_classes', [(VOC, 16, 21), (CITYSCAPES, 16, 19),
                                                  (ADE20K, 8, 150)])
def test_protocol_models(path, os_, num_classes):
    from mmseg.registry import MODELS
    cfg = _config(path)
    backbone = cfg.model.backbone
    assert backbone.type == 'ResNet' and backbone.depth == 50 and not backbone.deep_stem
    assert backbone.style == 'pytorch' and backbone.norm_eval is False
    assert backbone.norm_cfg.type == 'SyncBN' and cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert backbone.init_cfg == dict(type='CheckedPretrained', checkpoint='PRETRAIN')
    preprocessor = cfg.model.data_preprocessor
    assert {k: preprocessor[k] for k in IMAGENET} == IMAGENET
    model = MODELS.build(cfg.model).eval()
    assert hasattr(model.backbone, 'conv1') and not hasattr(model.backbone, 'stem')
    assert model.backbone.conv1.kernel_size == (7, 7)  # torchvision's stem
    layer3, layer4 = model.backbone.layer3, model.backbone.layer4
    if os_ == 16:  # strides (1, 2, 2, 1), dilations (1, 1, 1, 2), first block contracted
        assert _conv3x3(layer3[0]).stride == (2, 2) and _conv3x3(layer4[0]).stride == (1, 1)
        assert {_conv3x3(b).dilation for b in layer3} == {(1, 1)}
        assert _conv3x3(layer4[0]).dilation == (1, 1)
        assert {_conv3x3(b).dilation for b in list(layer4)[1:]} == {(2, 2)}
    else:  # strides (1, 2, 1, 1), dilations (1, 1, 2, 4)
        assert _conv3x3(layer3[0]).stride == (1, 1) and _conv3x3(layer4[0]).stride == (1, 1)
        assert {_conv3x3(b).dilation for b in list(layer3)[1:]} == {(2, 2)}
        assert {_conv3x3(b).dilation for b in list(layer4)[1:]} == {(4, 4)}
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert tuple(feats[3].shape) == (1, 2048, 64 // os_, 64 // os_)

    head = model.decode_head
    assert type(head).__name__ == 'FCNHead' and head.num_classes == num_classes
    assert head.conv_seg.out_channels == num_classes
    if os_ == 16:  # FCN-D6: 2 convs 3x3, 256 channels, dilation 6, no concat/dropout/aux
        assert len(head.convs) == 2 and head.channels == 256 and head.in_channels == 2048
        for block in head.convs:
            assert block.conv.kernel_size == (3, 3) and block.conv.dilation == (6, 6)
            assert block.conv.padding == (6, 6) and block.conv.out_channels == 256
        assert not head.concat_input and head.dropout is None and head.align_corners
        assert not model.with_auxiliary_head
    else:  # mmseg's standard FCN + auxiliary head on layer3
        assert len(head.convs) == 2 and head.channels == 512 and head.concat_input
        assert head.dropout.p == 0.1 and not head.align_corners
        aux = model.auxiliary_head
        assert aux.in_channels == 1024 and aux.in_index == 2 and aux.channels == 256
        assert len(aux.convs) == 1 and aux.num_classes == num_classes
        assert aux.loss_decode.loss_weight == 0.4
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert tuple(logits.shape) == (1, num_classes, 64 // os_, 64 // os_)


def test_protocol_data_and_schedules():
    from mmseg.registry import TRANSFORMS
    voc, city, ade = _config(VOC), _config(CITYSCAPES), _config(ADE20K)
    for cfg, crop, gpus_x_batch in ((voc, (513, 513), 8), (city, (769, 769), 8),
                                    (ade, (512, 512), 4)):
        assert tuple(cfg.model.data_preprocessor.size) == crop
        assert cfg.train_dataloader.batch_size == gpus_x_batch
        assert cfg.optim_wrapper.optimizer.type == 'SGD'
        assert cfg.optim_wrapper.optimizer.momentum == 0.9
        pipeline = (cfg.train_dataloader.dataset.get('datasets') or
                    [cfg.train_dataloader.dataset])[0].pipeline
        resize = next(t for t in pipeline if t.type == 'RandomResize')
        assert tuple(resize.ratio_range) == (0.5, 2.0)
        assert tuple(next(t for t in pipeline if t.type == 'RandomCrop').crop_size) == crop
        for transform in pipeline + cfg.test_dataloader.dataset.pipeline:
            TRANSFORMS.build(transform)
    # VOC12aug: train + SBD aug, lr 0.003, wd 1e-4, steps 21k / 27k, 30k
    train = voc.train_dataloader.dataset
    assert train.type == 'ConcatDataset'
    assert [(d.type, d.ann_file, d.data_prefix.seg_map_path) for d in train.datasets] == [
        ('PascalVOCDataset', 'ImageSets/Segmentation/train.txt', 'SegmentationClass'),
        ('PascalVOCDataset', 'ImageSets/Segmentation/aug.txt', 'SegmentationClassAug')]
    assert voc.val_dataloader.dataset.ann_file == 'ImageSets/Segmentation/val.txt'
    for cfg, lr, milestones, iters in ((voc, 0.003, [21000, 27000], 30000),
                                       (city, 0.01, [63000, 81000], 90000)):
        assert cfg.optim_wrapper.optimizer.lr == lr
        assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
        (scheduler,) = cfg.param_scheduler
        assert scheduler.type == 'MultiStepLR' and scheduler.milestones == milestones
        assert scheduler.gamma == 0.1 and not scheduler.by_epoch
        assert cfg.train_cfg.max_iters == iters and cfg.model.test_cfg.mode in ('whole', 'slide')
    assert voc.model.test_cfg.mode == 'whole'
    # Cityscapes: sliding-window test 769 / 513
    assert city.train_dataloader.dataset.type == 'CityscapesDataset'
    assert city.model.test_cfg == dict(mode='slide', crop_size=(769, 769), stride=(513, 513))
    # ADE20K: poly lr 0.01, wd 5e-4, 80k, labels with 0 = ignored
    assert ade.train_dataloader.dataset.type == 'ADE20KDataset'
    assert (ade.optim_wrapper.optimizer.lr, ade.optim_wrapper.optimizer.weight_decay) == (
        0.01, 5e-4)
    (scheduler,) = ade.param_scheduler
    assert scheduler.type == 'PolyLR' and scheduler.power == 0.9 and ade.train_cfg.max_iters == 80000
    assert all(t.reduce_zero_label for t in ade.train_dataloader.dataset.pipeline
               if t.type == 'LoadAnnotationsChecked')


def test_converted_resnet50_loads_through_the_protocol_init_cfg(tmp_path):
    from mmseg.registry import MODELS
    state = _torchvision_resnet(50)
    dst = _convert(state, tmp_path, 'r50')
    cfg = _config(VOC)
    cfg.model.backbone.init_cfg.checkpoint = dst
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith('fc.')}
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


# ---- real runs -----------------------------------------------------------------------------

def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1',
               PYTHON=PYTHON, **extra)
    for key in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(key, None)
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _run(cmd, env, cwd=REPO, expect_ok=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, f'{" ".join(cmd)}\n{out[-5000:]}'
    return proc.returncode, out


def _synthetic_options(root, iters, *extra):
    options = [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]
    options += [f'{split}_dataloader.num_workers=0' for split in ('train', 'val', 'test')]
    return options + [f'train_cfg.max_iters={iters}', 'train_dataloader.batch_size=2',
                      'default_hooks.logger.interval=1', *extra]


@pytest.fixture(scope='module')
def converted_r18(tmp_path_factory):
    """(torchvision ResNet-18 state, its converted mmseg file)."""
    state = _torchvision_resnet(18, seed=7)
    return state, _convert(state, tmp_path_factory.mktemp('r18'), 'r18')


def _losses(log):
    return [float(v) for v in re.findall(r'Iter\(train\) \[\s*\d+/\d+\].*? loss: ([\d.]+)', log)]


@pytest.mark.slow
def test_synthetic_finetune_through_train_py(tiny_scenes, converted_r18, tmp_path):
    state, dst = converted_r18
    work = str(tmp_path / 'work')
    _, log = _run([PYTHON, 'tools/train.py', SYNTHETIC, '--work-dir', work, '--cfg-options',
                   f'model.backbone.init_cfg.checkpoint={dst}',
                   *_synthetic_options(tiny_scenes, 4)], _env())
    assert f'CheckedPretrained: loaded 120 of 120 tensors of ResNet from {dst}' in log
    losses = _losses(log)
    assert len(losses) == 4 and all(np.isfinite(losses)), losses
    assert osp.exists(osp.join(work, 'metrics_val.json'))
    trained = torch.load(osp.join(work, 'iter_4.pth'))['state_dict']
    # the whole network trains (fine-tuning, not a probe)
    assert not torch.equal(trained['backbone.layer4.1.conv2.weight'], state['layer4.1.conv2.weight'])


@pytest.mark.slow
def test_synthetic_finetune_two_processes_with_slotcons_command_line(tiny_scenes, converted_r18,
                                                                     tmp_path):
    """tools/dist_train.sh, 2 processes (gloo), SlotCon's form: init_cfg.type=Pretrained.
    With lr 0 no weight moves, so the saved weights are exactly the file's: the run
    really started from it."""
    state, dst = converted_r18
    work = str(tmp_path / 'dist')
    _, log = _run(['bash', osp.join(REPO, 'tools/dist_train.sh'), SYNTHETIC, '2', '--work-dir',
                   work, '--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
                   f'model.backbone.init_cfg.checkpoint={dst}', 'optim_wrapper.optimizer.lr=0.0',
                   *_synthetic_options(tiny_scenes, 2)],
                  _env(PORT=_free_port()), cwd=str(tmp_path))
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert f'CheckedPretrained: loaded 120 of 120 tensors of ResNet from {dst}' in log
    saved = torch.load(osp.join(work, 'iter_2.pth'))['state_dict']
    for key, value in state.items():
        if key.startswith('fc.') or 'running_' in key or 'num_batches' in key:
            continue  # BN statistics move in train mode (norm_eval False)
        assert torch.equal(saved[f'backbone.{key}'], value), key


@pytest.mark.slow
def test_train_py_stops_on_a_file_that_does_not_fit(tiny_scenes, converted_r18, tmp_path):
    state, _ = converted_r18
    old = str(tmp_path / 'old_layout.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in state.items()
                               if not k.startswith('fc.')}}, old)
    code, out = _run([PYTHON, 'tools/train.py', SYNTHETIC, '--work-dir', str(tmp_path / 'w'),
                      '--cfg-options', f'model.backbone.init_cfg.checkpoint={old}',
                      *_synthetic_options(tiny_scenes, 2)], _env(), expect_ok=False)
    assert code != 0 and 'CheckpointMismatchError' in out
    assert old in out and "carry a 'backbone.' prefix" in out and 'Iter(train)' not in out


# ---- the real configs, one iteration each on a stand-in tree of their data set -------------

def _image(path, h, w, seed):
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _label(path, h, w, values, seed):
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.choice(values, size=(h, w)).astype(np.uint8)).save(path)


def _stand_in_tree(kind, root):
    """The file layout mmseg's data set class reads, two small images; returns the
    --cfg-options pointing the config at it."""
    h, w = 48, 64
    if kind == 'voc':
        for i, name in enumerate(('a', 'b')):
            _image(f'{root}/JPEGImages/{name}.jpg', h, w, i)
        _label(f'{root}/SegmentationClass/a.png', h, w, [0, 3, 20, 255], 0)
        _label(f'{root}/SegmentationClassAug/b.png', h, w, [0, 5, 15], 1)
        os.makedirs(f'{root}/ImageSets/Segmentation')
        for split, names in (('train', 'a'), ('aug', 'b'), ('val', 'a')):
            with open(f'{root}/ImageSets/Segmentation/{split}.txt', 'w') as f:
                f.write(names + '\n')
        roots = ['train_dataloader.dataset.datasets.0.data_root',
                 'train_dataloader.dataset.datasets.1.data_root']
    elif kind == 'cityscapes':
        for split in ('train', 'val'):
            _image(f'{root}/leftImg8bit/{split}/c/c_0_0_leftImg8bit.png', h, w, 2)
            _label(f'{root}/gtFine/{split}/c/c_0_0_gtFine_labelTrainIds.png', h, w,
                   [0, 7, 18, 255], 2)
        roots = ['train_dataloader.dataset.data_root']
    else:
        for split in ('training', 'validation'):
            _image(f'{root}/images/{split}/x.jpg', h, w, 3)
            _label(f'{root}/annotations/{split}/x.png', h, w, [0, 1, 75, 150], 3)
        roots = ['train_dataloader.dataset.data_root']
    roots += ['val_dataloader.dataset.data_root', 'test_dataloader.dataset.data_root']
    return [f'{key}={root}' for key in roots]


@pytest.mark.slow
@pytest.mark.parametrize('kind,path', [('voc', VOC), ('cityscapes', CITYSCAPES),
                                       ('ade20k', ADE20K)])
def test_real_config_one_iteration_through_train_py(kind, path, tmp_path):
    """The protocol config as it ships (ResNet-50, its pipelines, its data set class) for one
    iteration at batch 1 from a converted torchvision ResNet-50, then its validation; only the
    sizes are made small (65x65 crops and sliding windows, images resized to ~64 px) so that
    ResNet-50 fits the test budget on CPU."""
    dst = _convert(_torchvision_resnet(50), tmp_path, 'r50')
    train = _config(path).train_dataloader.dataset
    pipelines = ([f'train_dataloader.dataset.datasets.{i}.pipeline'
                  for i in range(len(train.datasets))] if 'datasets' in train
                 else ['train_dataloader.dataset.pipeline'])
    small = ['model.data_preprocessor.size=(65,65)']
    for key in pipelines:
        pipeline = train.datasets[0].pipeline if 'datasets' in train else train.pipeline
        assert [t.type for t in pipeline[2:4]] == ['RandomResize', 'RandomCrop']
        small += [f'{key}.2.scale=(256,64)', f'{key}.3.crop_size=(65,65)']
    assert _config(path).val_dataloader.dataset.pipeline[1].type == 'Resize'
    small.append('val_dataloader.dataset.pipeline.1.scale=(128,64)')
    if kind == 'cityscapes':  # sliding windows over the 64x85 image
        small += ['model.test_cfg.crop_size=(65,65)', 'model.test_cfg.stride=(43,43)']
    options = _stand_in_tree(kind, str(tmp_path / kind)) + small + [
        f'model.backbone.init_cfg.checkpoint={dst}', 'train_cfg.max_iters=1',
        'train_dataloader.batch_size=1', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1']
    _, log = _run([PYTHON, 'tools/train.py', path, '--work-dir', str(tmp_path / 'work'),
                   '--cfg-options', *options], _env())
    assert f'CheckedPretrained: loaded 318 of 318 tensors of ResNet from {dst}' in log
    (loss,) = _losses(log)
    assert np.isfinite(loss)
    assert osp.exists(tmp_path / 'work' / 'iter_1.pth')
    assert osp.exists(tmp_path / 'work' / 'metrics_val.json')  # validation ran (mIoU table)
