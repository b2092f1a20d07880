"""SemiSupervisedSegmentor and its registered losses, in-process (no training run): the loss
modules equal the core functions, the draws of an iteration do not depend on the history
(resume), ReCo's partial-label mode, sliding-window inference, U2PL's world-size scaling
under bug_compat on two gloo processes, and the errors for bad settings."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MessageHub

import mmseg_plugins  # noqa: F401  (registers everything)
from mmseg.registry import MODELS
from mmseg_plugins.semisup import semi_segmentor as segmentor_module
from mmseg_plugins.semisup.losses import U2PLContrastiveLoss

from densessl.semisup.memory_bank import ClassMemoryBank
from densessl.semisup.reco_loss import confidence_weighted_ce, reco_loss
from densessl.semisup.u2pl_loss import entropy_drop_ce, u2pl_contrastive_loss

NUM_CLASSES = 4


def _segmentor(method='reco', **kwargs):
    network = dict(type='ReCoNetwork', num_classes=NUM_CLASSES, depth=18)
    if method == 'u2pl':
        network = dict(type='U2PLNetwork', num_classes=NUM_CLASSES, depth=18, aux=True)
        kwargs.setdefault('contrast_loss', dict(type='U2PLContrastiveLoss', queue_size=32,
                                                queue_size_class0=32, num_queries=8))
    model = MODELS.build(dict(type='SemiSupervisedSegmentor', network=network,
                              num_classes=NUM_CLASSES, labelled_per_batch=2, method=method,
                              **kwargs))
    model.init_weights()
    return model


def _batch(seed=0, size=32):
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    torch.manual_seed(seed)
    inputs = torch.randn(4, 3, size, size)
    samples = []
    for _ in range(4):
        label = torch.randint(0, NUM_CLASSES, (1, size, size))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return inputs, samples


def _set_iteration(iteration):
    MessageHub.get_current_instance().update_info('iter', iteration)


# ------------------------------------------------------------------ registered losses
def test_registered_losses_equal_the_core_functions():
    torch.manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 8, 8, requires_grad=True)
    pseudo = torch.randint(0, NUM_CLASSES, (2, 8, 8))
    confidence = torch.rand(2, 8, 8)
    loss = MODELS.build(dict(type='ConfidenceWeightedCELoss', strong_threshold=0.5,
                             loss_weight=2.0))
    assert torch.equal(loss(logits, pseudo, confidence),
                       2.0 * confidence_weighted_ce(logits, pseudo, confidence, 0.5))

    teacher = torch.randn(2, NUM_CLASSES, 8, 8)
    loss = MODELS.build(dict(type='EntropyDropCELoss', drop_percent=80))
    # epoch 1 of 4: alpha = (100 - 80)(1 - 1/4) = 15 % dropped
    assert torch.equal(loss(logits, pseudo, teacher, 1, 4),
                       entropy_drop_ce(logits, pseudo, teacher, 15.0))

    rep = torch.randn(2, 16, 8, 8, requires_grad=True)
    prob = torch.softmax(torch.randn(2, NUM_CLASSES, 8, 8), 1)
    mask = torch.rand(2, 8, 8) > 0.3
    loss = MODELS.build(dict(type='ReCoLoss', num_queries=5, num_negatives=7,
                             strong_threshold=0.9))
    expected = reco_loss(rep, pseudo, mask, prob, strong_threshold=0.9, num_queries=5,
                         num_negatives=7, generator=torch.Generator().manual_seed(3))
    got = loss(rep, pseudo, mask, prob, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, expected) and got.requires_grad


def _u2pl_inputs(seed=0):
    torch.manual_seed(seed)
    rep = torch.randn(4, 8, 6, 6, requires_grad=True)
    rep_teacher = torch.randn(4, 8, 6, 6)
    prob = torch.softmax(torch.randn(4, NUM_CLASSES, 6, 6), 1)
    labels = torch.randint(0, NUM_CLASSES, (4, 6, 6))
    low, high = torch.rand(4, 6, 6) > 0.5, torch.rand(4, 6, 6) > 0.5
    return rep, rep_teacher, prob, labels, low, high


def test_u2pl_contrastive_loss_module_keeps_its_bank_and_equals_the_core():
    loss = MODELS.build(dict(type='U2PLContrastiveLoss', num_classes=NUM_CLASSES, dim=8,
                             num_queries=6, num_negatives=5, queue_size=40,
                             queue_size_class0=50))
    bank = ClassMemoryBank(NUM_CLASSES, dim=8, capacity=[50, 40, 40, 40])
    inputs = _u2pl_inputs()
    got, _ = loss(*inputs, 2, generator=torch.Generator().manual_seed(1))
    expected, _ = u2pl_contrastive_loss(*inputs, 2, bank, num_queries=6, num_negatives=5,
                                        generator=torch.Generator().manual_seed(1))
    assert torch.equal(got, expected)
    assert torch.equal(loss.memory_bank.counts, bank.counts) and int(bank.counts.sum()) > 0
    assert 'memory_bank.features' in loss.state_dict()
    with pytest.raises(ValueError, match='unknown bug_compat'):
        U2PLContrastiveLoss(NUM_CLASSES, bug_compat={'typo'})


def _world_size_worker(rank, store, results):
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2)
    try:
        out = {}
        for compat in (False, {'world_size'}):
            loss = U2PLContrastiveLoss(NUM_CLASSES, dim=8, num_queries=6, num_negatives=5,
                                       queue_size=40, queue_size_class0=50, bug_compat=compat)
            rep, *rest = _u2pl_inputs(seed=rank)
            value, _ = loss(rep, *rest, 2, generator=torch.Generator().manual_seed(rank))
            value.backward()
            out[bool(compat)] = (float(value), rep.grad.clone())
        results[rank] = out
    finally:
        dist.destroy_process_group()


def test_u2pl_bug_compat_world_size_scales_the_gradient_on_two_processes(tmp_path):
    results = mp.get_context('fork').Manager().dict()
    # fork: pytest imports this module with --import-mode=importlib, so a spawned child
    # could not import the worker by name
    mp.start_processes(_world_size_worker, args=(str(tmp_path / 'store'), results), nprocs=2,
                       start_method='fork')
    values = {rank: results[rank] for rank in (0, 1)}
    mean = (values[0][False][0] + values[1][False][0]) / 2
    for rank in (0, 1):
        fixed_value, fixed_grad = values[rank][False]
        compat_value, compat_grad = values[rank][True]
        assert compat_value == pytest.approx(mean, rel=1e-6)  # the all-reduced mean
        assert torch.allclose(compat_grad, fixed_grad / 2, atol=1e-7)  # local / world size


# ------------------------------------------------------------------ the segmentor
def test_draws_depend_only_on_seed_rank_and_iteration():
    assert (segmentor_module.iteration_seed(0, 0, 5) == segmentor_module.iteration_seed(0, 0, 5)
            != segmentor_module.iteration_seed(0, 1, 5))
    assert segmentor_module.iteration_seed(0, 0, 5) != segmentor_module.iteration_seed(0, 0, 6)
    model = _segmentor('reco', contrast_loss=dict(type='ReCoLoss', num_queries=8,
                                                  num_negatives=8, strong_threshold=1.01))
    model.train()
    inputs, samples = _batch()
    _set_iteration(7)
    first = {k: float(v.detach()) for k, v in model.loss(inputs, samples).items()}
    for iteration in (0, 1, 2):  # other iterations in between: a resumed run's history differs
        _set_iteration(iteration)
        model.loss(inputs, samples)
    _set_iteration(7)
    again = {k: float(v.detach()) for k, v in model.loss(inputs, samples).items()}
    # no optimiser step: same weights, and train-mode BN uses batch statistics, so the
    # iteration's draws (mixing, augmentation, ReCo's sampling) alone decide the values
    assert set(first) == {'loss_sup', 'loss_unsup', 'loss_reco'} and first['loss_reco'] > 0
    assert again == first
    _set_iteration(8)
    assert {k: float(v.detach()) for k, v in model.loss(inputs, samples).items()} != first


def test_partial_label_mode_overwrites_pseudo_labels_with_the_sparse_ones(monkeypatch):
    model = _segmentor('reco', partial_labels=True)
    model.train()
    inputs, samples = _batch()
    sparse = torch.full((32, 32), 255, dtype=torch.long)
    sparse[3, 4], sparse[10, 20] = 2, 1
    for sample in samples[2:]:
        sample.gt_sem_seg.data[0] = sparse
    seen = {}

    class Stop(Exception):
        pass

    def capture(images, labels, confidence, *args, **kwargs):
        seen.update(labels=labels.clone(), confidence=confidence.clone())
        raise Stop

    monkeypatch.setattr(segmentor_module, 'mix_batch', capture)
    _set_iteration(0)
    with pytest.raises(Stop):
        model.loss(inputs, samples)
    pseudo, confidence = model._pseudo_labels(inputs[2:])
    assert torch.all(seen['labels'][:, 3, 4] == 2) and torch.all(seen['labels'][:, 10, 20] == 1)
    assert torch.all(seen['confidence'][:, 3, 4] == 1.0)
    other = sparse == 255
    assert torch.equal(seen['labels'][:, other], pseudo[:, other])

    # the labelled half of the contrast: the label where given, else the student's confident
    # prediction (>= strong_threshold); its mask
    logits = torch.zeros(2, NUM_CLASSES, 8, 8)
    logits[:, 3] = 10.0  # class 3 with confidence ~1 everywhere...
    logits[0, :, :4] = 0.0  # ...but uniform (0.25) on the top half of image 0
    out_l = dict(logits=logits)
    y_l = torch.full((2, 32, 32), 255, dtype=torch.long)
    y_l[0, 0, 0] = 1
    labels, valid = model._labelled_targets(out_l, y_l)
    assert labels[0, 0, 0] == 1 and valid[0, 0, 0]
    assert labels[1, 5, 5] == 3 and valid[1, 5, 5]
    assert not valid[0, 2, 2]  # no label, not confident


def test_slide_inference_equals_whole_when_one_window_covers_the_image():
    whole = _segmentor('reco')
    slide = _segmentor('reco', test_cfg=dict(mode='slide', crop_size=(32, 32), stride=(32, 32)))
    slide.load_state_dict(whole.state_dict())
    whole.eval(), slide.eval()
    inputs = torch.randn(1, 3, 32, 32)
    metas = [dict(ori_shape=(32, 32), img_shape=(32, 32), pad_shape=(32, 32))]
    with torch.no_grad():
        assert torch.allclose(slide.inference(inputs, metas), whole.inference(inputs, metas))
        small = _segmentor('reco', test_cfg=dict(mode='slide', crop_size=(32, 32),
                                                 stride=(16, 16)))
        small.load_state_dict(whole.state_dict())
        small.eval()
        big = torch.randn(1, 3, 32, 64)
        logits = small.inference(big, [dict(ori_shape=(32, 64), img_shape=(32, 64),
                                            pad_shape=(32, 64))])
        windows = [whole.encode_decode(big[..., x:x + 32], None) for x in (0, 16, 32)]
        expected = torch.zeros(1, NUM_CLASSES, 32, 64)
        count = torch.zeros(1, 1, 32, 64)
        for x, window in zip((0, 16, 32), windows):
            expected[..., x:x + 32] += window
            count[..., x:x + 32] += 1
        assert torch.allclose(logits, expected / count, atol=1e-5)


def test_bad_settings_fail_with_the_key_named():
    with pytest.raises(ValueError, match="unknown u2pl keys \\['queue_size'\\]"):
        _segmentor('u2pl', u2pl=dict(queue_size=10))
    with pytest.raises(TypeError, match='needs a ReCoLoss as contrast_loss'):
        _segmentor('reco', contrast_loss=dict(type='U2PLContrastiveLoss'))
    with pytest.raises(ValueError, match="partial_labels is ReCo's mode"):
        _segmentor('u2pl', partial_labels=True)
    with pytest.raises(ValueError, match="test_cfg.mode must be 'whole' or 'slide'"):
        _segmentor('reco', test_cfg=dict(mode='tiles'))
    with pytest.raises(ValueError, match="init_cfg must be dict\\(type='Pretrained'"):
        MODELS.build(dict(type='ReCoNetwork', num_classes=2, depth=18,
                          init_cfg=dict(type='Kaiming')))
    with pytest.raises(ValueError, match='takes no other key'):
        MODELS.build(dict(type='ReCoNetwork', num_classes=2, depth=18,
                          init_cfg=dict(type='Pretrained', checkpoint='x.pth', prefix='b.')))


def test_u2pl_step_runs_and_supervised_ignores_unused_losses():
    model = _segmentor('u2pl', u2pl=dict(sup_only_iters=1, iters_per_epoch=2))
    model.train()
    inputs, samples = _batch()
    _set_iteration(0)
    losses = model.loss(inputs, samples)
    assert float(losses['loss_contrast']) == 0.0 and 'loss_aux' in losses
    _set_iteration(1)
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_sup', 'loss_aux', 'loss_unsup', 'loss_contrast'}
    assert int(model.contrast_loss.memory_bank.counts.sum()) > 0
    supervised = _segmentor('supervised', unsup_loss=dict(type='ConfidenceWeightedCELoss'),
                            contrast_loss=dict(type='ReCoLoss'))
    assert supervised.unsup_loss is None and supervised.contrast_loss is None
