"""Every semi-supervised protocol config's MODEL, shrunk to a ResNet-18 without a pretrained
start, builds and computes one ``loss()`` on a random 2 labelled + 2 unlabelled batch of
64x64 crops on CPU (finite losses, gradients reach the student); U2PL's optimizer puts the
decoder at its head multiplier."""
import os.path as osp

import pytest
import torch

import mmseg_plugins  # noqa: F401  (registers the plugins, applies compat fixes)
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

init_default_scope('mmseg')
CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'mmseg',
                      'semisup')
CONFIGS = sorted([
    'reco_r101_cityscapes_20labels.py', 'reco_r101_cityscapes_20labels_supervised.py',
    'reco_r101_cityscapes_p0.py', 'reco_r101_voc_60labels.py', 'reco_r101_sun_50labels.py',
    'u2pl_r101_voc_classic_1464.py', 'u2pl_r101_voc_blended_662.py',
    'u2pl_r101_cityscapes_744.py', 'u2pl_r101_voc_classic_1464_supervised.py',
    'u2pl_r101_cityscapes_744_supervised.py'])
SIZE = 64


def small_model_cfg(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    model = cfg.model
    model.network.depth = 18
    model.network.pop('init_cfg', None)
    model.labelled_per_batch = 2
    if model.get('contrast_loss') and model.contrast_loss.get('type') == 'U2PLContrastiveLoss':
        model.contrast_loss.queue_size = 500  # 30k keys per class: 0.6 GB for a unit test
        model.contrast_loss.queue_size_class0 = 500
    return cfg


def random_batch(num_classes, sparse=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(4, 3, SIZE, SIZE, generator=g)
    samples = []
    for _ in range(4):
        label = torch.randint(0, num_classes, (1, SIZE, SIZE), generator=g)
        label[:, :4] = 255
        if sparse:  # one labelled pixel per class, as p0
            flat = torch.full((SIZE * SIZE,), 255, dtype=torch.long)
            for c in label.unique():
                if c != 255:
                    flat[(label.view(-1) == c).nonzero()[0]] = c
            label = flat.view(1, SIZE, SIZE)
        sample = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                                             pad_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return inputs, samples


@pytest.fixture
def message_hub():
    hub = MessageHub.get_current_instance()
    yield hub
    hub.update_info('iter', 0)


@pytest.mark.parametrize('name', CONFIGS)
def test_protocol_model_builds_and_computes_a_loss(name, message_hub):
    cfg = small_model_cfg(name)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)  # the teacher starts as a copy of the student
    model.train()
    u2pl = cfg.model.get('u2pl') or {}
    # a semi-supervised step (after U2PL's supervised-only iterations)
    message_hub.update_info('iter', int(u2pl.get('sup_only_iters', 0)) + 1)
    message_hub.update_info('max_iters', int(cfg.train_cfg.max_iters))
    inputs, samples = random_batch(cfg.model.num_classes,
                                   sparse=bool(cfg.model.get('partial_labels')))
    losses = model.loss(inputs, samples)
    assert 'loss_sup' in losses or any('sup' in k for k in losses), losses.keys()
    total = 0
    for key, value in losses.items():
        if 'loss' in key:
            value = sum(value) if isinstance(value, (list, tuple)) else value
            assert torch.isfinite(value).all(), (key, value)
            total = total + value
    total.backward()
    grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    if cfg.model.method != 'supervised':
        assert len(losses) >= 3, losses.keys()  # supervised + unsupervised + contrastive


@pytest.mark.parametrize('name, backbone_lr, head_lr', [
    ('u2pl_r101_voc_classic_1464.py', 1e-3, 1e-2),
    ('u2pl_r101_voc_blended_662.py', 1e-3, 1e-2),
    ('u2pl_r101_cityscapes_744.py', 1e-2, 1e-2),
    ('reco_r101_voc_60labels.py', 2.5e-3, 2.5e-3)])
def test_optimizer_head_multiplier(name, backbone_lr, head_lr):
    cfg = small_model_cfg(name)
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    lr_of = {}
    for group in optim.optimizer.param_groups:
        for p in group['params']:
            lr_of[id(p)] = group['lr']
    names = [(n, p) for n, p in model.student.named_parameters() if p.requires_grad]
    assert names
    for n, p in names:
        expected = backbone_lr if '.backbone.' in n else head_lr
        assert lr_of[id(p)] == pytest.approx(expected), n
