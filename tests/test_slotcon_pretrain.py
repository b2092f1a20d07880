"""SlotCon in VISSL: head and per-view model, the loss wrapper against densessl's slotcon_loss,
the teacher hook's EMA schedule (in process and across a real resume), config inference and
the shipped configs, and tiny real runs through tools/run_distributed_engines.py."""
import copy
import glob
import json
import math
import os.path as osp
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import torch

import vissl_plugins  # noqa: F401  (registration, config search path)
from densessl.slotcon import (DINOHead1d, SlotConViewOutputs, align_to_overlap, batch_center,
                              slotcon_loss, updated_center)
from vissl_plugins.slotcon.slotcon_config import infer_slotcon_config
from vissl_plugins.slotcon.slotcon_head import SlotConHead
from vissl_plugins.slotcon.slotcon_hooks import SlotConTeacherHook
from vissl_plugins.slotcon.slotcon_loss import (SlotConCheckpointError, SlotConConfigError,
                                                SlotConLoss)

CONFIG = 'config=pretrain/slotcon/slotcon_synthetic_cpu'
TINY_MODEL = ['config.MODEL.HEAD.PARAMS=[[slotcon_head,{hidden_dim:32,out_dim:16,'
              'num_prototypes:8}]]']


def composed(overrides):
    """The config as tools/run_distributed_engines.py builds it (checked and inferred)."""
    from vissl.utils.hydra_config import compose_hydra_configuration, convert_to_attrdict

    from vissl_plugins.config_check import check_config_keys, with_plugin_defaults
    cfg = with_plugin_defaults(compose_hydra_configuration(overrides))
    check_config_keys(cfg)
    _, config = convert_to_attrdict(cfg)
    return infer_slotcon_config(config)


# ---- head and model ------------------------------------------------------------------------
def test_head_gives_slots_and_score_maps():
    torch.manual_seed(0)
    head = SlotConHead(None, in_dim=12, num_prototypes=5, hidden_dim=16, out_dim=8)
    slots, dots = head(torch.randn(3, 12, 4, 6))
    assert slots.shape == (3, 5, 8) and dots.shape == (3, 5, 4, 6)
    assert dots.abs().max() <= 1 + 1e-6  # cosine scores
    assert head.predictor(slots.reshape(-1, 8)).shape == (15, 8)
    teacher = SlotConHead(None, in_dim=12, num_prototypes=5, hidden_dim=16, out_dim=8,
                          with_predictor=False)
    assert not any(k.startswith('predictor') for k in teacher.state_dict())
    with pytest.raises(ValueError, match='in_dim'):
        head(torch.randn(3, 10, 4, 6))


def _tiny_model(train=True):
    from vissl.models import build_model
    config = composed([CONFIG, *TINY_MODEL])
    torch.manual_seed(0)
    model = build_model(config.MODEL, config.OPTIMIZER)
    return model.train(train), config


def test_model_normalises_each_view_on_its_own():
    """In training mode a view's outputs depend on that view's images only (BatchNorm per
    view, as the original's separate forwards); VISSL's default model would mix the views."""
    model, _ = _tiny_model()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 64, 64, generator=g)  # 2 images x 2 views
    slots, dots = model(images)[0]
    assert slots.shape == (4, 8, 16) and dots.shape == (4, 8, 2, 2)  # layer4 of 64 px
    changed = images.clone()
    changed[2:] = torch.randn(2, 3, 64, 64, generator=g) * 3 + 1  # other view-2 images
    slots2, dots2 = model(changed)[0]
    torch.testing.assert_close(slots2[:2], slots[:2])
    torch.testing.assert_close(dots2[:2], dots[:2])
    assert not torch.allclose(dots2[2:], dots[2:])


# ---- loss wrapper --------------------------------------------------------------------------
def _random_step(seed=0, num=3, k=6, dim=8, size=4):
    g = torch.Generator().manual_seed(seed)
    student = [torch.randn(2 * num, k, dim, generator=g),
               torch.rand(2 * num, k, size, size, generator=g) * 2 - 1]
    teacher = [torch.randn(2 * num, k, dim, generator=g),
               torch.rand(2 * num, k, size, size, generator=g) * 2 - 1]
    lo = torch.rand(num, 2, 2, generator=g) * 0.5
    hi = lo + 0.2 + torch.rand(num, 2, 2, generator=g) * 0.3
    flips = (torch.rand(num, 2, 1, generator=g) > 0.5).float()
    target = torch.cat([lo, hi, flips], dim=2)  # (B, 2, 5): x1, y1, x2, y2, flipped
    return student, teacher, target


def test_loss_wrapper_is_densessl_slotcon_loss_and_moves_the_centre_after():
    student, teacher, target = _random_step()
    torch.manual_seed(0)
    predictor = DINOHead1d(8, 16, 8)
    loss_fn = SlotConLoss(num_prototypes=6)
    center0 = torch.randn(1, 6) * 0.1
    loss_fn.center.copy_(center0)
    loss_fn.set_teacher_output(teacher)
    loss_fn.set_student_predictor(predictor)
    loss = loss_fn(student, target)

    def views(slots, dots):
        out = []
        for v, (s, d) in enumerate(zip(slots.chunk(2), dots.chunk(2))):
            out.append(SlotConViewOutputs(s, d, align_to_overlap(d, target[:, v, :4],
                                                                 target[:, v, 4] > 0.5)))
        return out
    expected, terms = slotcon_loss(views(*student), views(*teacher), predictor, center0)
    torch.testing.assert_close(loss, expected)
    assert float(loss_fn.last_terms['grouping']) == pytest.approx(float(terms['grouping']))
    torch.testing.assert_close(loss_fn.center, updated_center(
        center0, batch_center(list(teacher[1].chunk(2))), 0.9))
    assert not any('predictor' in k for k in loss_fn.state_dict())  # not the loss's module
    with pytest.raises(RuntimeError, match='SlotConTeacherHook'):
        loss_fn(student, target)  # the teacher output is used once


def test_loss_refuses_a_target_that_is_not_boxes_and_flags():
    student, teacher, target = _random_step()
    loss_fn = SlotConLoss(num_prototypes=6)
    loss_fn.set_teacher_output(teacher)
    loss_fn.set_student_predictor(DINOHead1d(8, 16, 8))
    with pytest.raises(ValueError, match=r'\(B, 2, 5\)'):
        loss_fn(student, target[:, :, :4])


def test_loss_state_is_checked_and_held_until_the_teacher_exists():
    loss_fn = SlotConLoss(num_prototypes=6)
    teacher = torch.nn.Linear(2, 3)
    state = {'center': torch.ones(1, 6),
             **{f'momentum_teacher.{k}': v + 1 for k, v in teacher.state_dict().items()}}
    loss_fn.load_state_dict(state)
    torch.testing.assert_close(loss_fn.center, torch.ones(1, 6))
    assert set(loss_fn.pending_teacher_state) == {'weight', 'bias'}
    loss_fn.momentum_teacher = teacher
    loss_fn.load_teacher_state(loss_fn.pending_teacher_state)
    torch.testing.assert_close(loss_fn.state_dict()['momentum_teacher.bias'], state[
        'momentum_teacher.bias'])
    with pytest.raises(SlotConCheckpointError, match='teacher'):
        SlotConLoss(num_prototypes=6).load_state_dict({'center': torch.ones(1, 6)})
    with pytest.raises(SlotConCheckpointError, match='queue'):
        SlotConLoss(num_prototypes=6).load_state_dict({**state, 'queue': torch.ones(1)})
    with pytest.raises(SlotConCheckpointError, match='num_prototypes=4'):
        SlotConLoss(num_prototypes=4).load_state_dict(state)
    other = SlotConLoss(num_prototypes=6)
    other.momentum_teacher = torch.nn.Linear(2, 4)
    with pytest.raises(SlotConCheckpointError, match='momentum_teacher.weight'):
        other.load_state_dict({**state, 'momentum_teacher.extra': torch.ones(1)})


# ---- teacher hook --------------------------------------------------------------------------
def _fake_task(model, config, max_iteration):
    loss = SlotConLoss.from_config(config.LOSS.slotcon_loss)
    return SimpleNamespace(model=model, loss=loss, config=config, device=torch.device('cpu'),
                           train=True, iteration=0, max_iteration=max_iteration,
                           amp_type=None, last_batch=SimpleNamespace(sample={}))


def reference_momentum(k, total, base=0.99):
    return 1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2


def test_hook_builds_the_teacher_and_follows_the_cosine_momentum():
    model, config = _tiny_model()
    task = _fake_task(model, config, max_iteration=5)
    hook = SlotConTeacherHook()
    g = torch.Generator().manual_seed(0)
    expected = None
    for k in range(4):
        task.iteration = k
        task.last_batch.sample['input'] = torch.randn(4, 3, 64, 64, generator=g)
        hook.on_forward(task)
        teacher = task.loss.momentum_teacher
        student = dict(model.named_parameters())
        if expected is None:  # built from the student: parameters equal, no predictor
            expected = {n: p.detach().clone() for n, p in student.items() if 'predictor' not in n}
            assert set(expected) == {n for n, _ in teacher.named_parameters()}
            assert not any(p.requires_grad for p in teacher.parameters())
        m = reference_momentum(k, 5)
        for name in expected:
            expected[name] = m * expected[name] + (1 - m) * student[name].detach()
        for name, p in teacher.named_parameters():
            torch.testing.assert_close(p, expected[name], rtol=1e-6, atol=1e-7)
        assert task.loss.last_teacher_momentum == pytest.approx(m)
        slots, dots = task.loss.teacher_output
        assert slots.shape == (4, 8, 16) and dots.shape == (4, 8, 2, 2)
        with torch.no_grad():  # the student takes a step the teacher must follow
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.01)
    state = task.loss.state_dict()
    assert 'momentum_teacher.trunk._feature_blocks.layer4.1.bn2.running_var' in state
    assert 'momentum_teacher.heads.0.grouping.prototypes.weight' in state
    assert not any('predictor' in k for k in state)


def test_hook_restores_a_checkpointed_teacher_instead_of_copying_the_student():
    model, config = _tiny_model()
    task = _fake_task(model, config, max_iteration=10)
    task.last_batch.sample['input'] = torch.randn(4, 3, 64, 64)
    SlotConTeacherHook().on_forward(task)
    saved = {k: v + 0.5 if v.is_floating_point() else v
             for k, v in task.loss.state_dict().items()}
    resumed = _fake_task(model, config, max_iteration=10)
    resumed.iteration = 7
    resumed.loss.load_state_dict(saved)
    resumed.last_batch.sample['input'] = torch.randn(4, 3, 64, 64)
    SlotConTeacherHook().on_forward(resumed)
    m = reference_momentum(7, 10)
    weight = 'trunk._feature_blocks.conv1.weight'
    torch.testing.assert_close(
        dict(resumed.loss.momentum_teacher.named_parameters())[weight],
        m * saved['momentum_teacher.' + weight] + (1 - m) * dict(model.named_parameters())[
            weight].detach())
    torch.testing.assert_close(resumed.loss.center, saved['center'])


@pytest.mark.parametrize('device,convert,synced', [('gpu', True, True), ('gpu', False, False),
                                                   ('cpu', True, False)])
def test_teacher_gets_syncbn_exactly_when_vissl_converts_the_student(device, convert, synced):
    from vissl_plugins.slotcon.slotcon_hooks import build_teacher
    model, config = _tiny_model()
    config.MACHINE.DEVICE = device
    config.MODEL.SYNC_BN_CONFIG.update(CONVERT_BN_TO_SYNC_BN=convert, SYNC_BN_TYPE='pytorch',
                                       GROUP_SIZE=0)
    teacher = build_teacher(_fake_task(model, config, max_iteration=1))
    kinds = {type(m) for m in teacher.modules()}
    assert (torch.nn.SyncBatchNorm in kinds) == synced
    assert (torch.nn.BatchNorm2d in kinds) == (not synced)


# ---- config --------------------------------------------------------------------------------
def _config():
    return {
        'LOSS': {'name': 'slotcon_loss', 'slotcon_loss': {'teacher_temp': 0.05}},
        'MODEL': {'BASE_MODEL_NAME': 'slotcon_model',
                  'HEAD': {'PARAMS': [['slotcon_head', {'num_prototypes': 32}]]},
                  'TRUNK': {'NAME': 'torchvision_resnet', 'TORCHVISION_RESNET': {'DEPTH': 18}}},
        'DATA': {'TRAIN': {'DATASET_TYPE': 'slotcon_two_crop',
                           'COLLATE_FUNCTION': 'slotcon_collator'}},
    }


def test_sizes_are_inferred_from_the_head_trunk_and_loss():
    config = infer_slotcon_config(_config())
    assert config['LOSS']['slotcon_loss'] == {'teacher_temp': 0.05, 'num_prototypes': 32}
    assert config['MODEL']['HEAD']['PARAMS'][0][1] == {'num_prototypes': 32, 'in_dim': 512,
                                                        'grouping_temp': 0.05}


@pytest.mark.parametrize('change,message', [
    (lambda c: c['MODEL'].update(BASE_MODEL_NAME='multi_input_output_model'), 'slotcon_model'),
    (lambda c: c['MODEL']['HEAD'].update(PARAMS=[['mlp', {'dims': [512, 128]}]]), 'slotcon_head'),
    (lambda c: c['DATA']['TRAIN'].update(COLLATE_FUNCTION='simclr_collator'), 'slotcon_collator'),
    (lambda c: c['MODEL']['HEAD']['PARAMS'][0][1].update(in_dim=2048), 'in_dim=2048'),
    (lambda c: c['MODEL']['HEAD']['PARAMS'][0][1].update(grouping_temp=0.1), 'teacher_temp'),
    (lambda c: c['LOSS']['slotcon_loss'].update(num_prototypes=64), 'num_prototypes'),
    (lambda c: c['LOSS']['slotcon_loss'].update(teacher_tmp=0.1), 'teacher_tmp'),
    (lambda c: c['LOSS']['slotcon_loss'].update(center_momentum=1.5), 'center_momentum'),
])
def test_parts_that_do_not_fit_are_refused(change, message):
    config = copy.deepcopy(_config())
    change(config)
    with pytest.raises(SlotConConfigError, match=message):
        infer_slotcon_config(config)


# name: (K, epochs, images per GPU, GPUs, peak lr, warm-up share, checkpoint every N epochs)
REAL_CONFIGS = {
    'slotcon_coco_r50_800ep': (256, 800, 64, 8, 2.0, 5 / 800, 50),
    'slotcon_cocoplus_r50_800ep': (256, 800, 64, 8, 2.0, 5 / 800, 50),
    'slotcon_imagenet_r50_100ep': (2048, 100, 64, 8, 2.0, 5 / 100, 5),
    'slotcon_imagenet_r50_200ep': (2048, 200, 64, 8, 2.0, 5 / 200, 5),
}


@pytest.mark.parametrize('name', [*REAL_CONFIGS, 'slotcon_synthetic_cpu'])
def test_shipped_configs_compose_check_and_infer(name):
    config = composed([f'config=pretrain/slotcon/{name}'])
    head = config.MODEL.HEAD.PARAMS[0][1]
    loss = config.LOSS.slotcon_loss
    assert config.OPTIMIZER.name == 'slotcon_lars' and config.OPTIMIZER.momentum == 0.9
    assert config.OPTIMIZER.weight_decay == pytest.approx(1e-5)
    assert head['grouping_temp'] == loss['teacher_temp'] == 0.07
    assert (loss['student_temp'], loss['contrast_temp'], loss['group_loss_weight'],
            loss['center_momentum'], loss['teacher_momentum']) == (0.1, 0.2, 0.5, 0.9, 0.99)
    lr = config.OPTIMIZER.param_schedulers.lr
    assert lr.update_interval == 'step' and lr.name == 'composite'
    warmup, cosine = lr.schedulers
    assert (warmup['name'], cosine['name']) == ('linear', 'cosine')
    assert warmup['start_value'] == pytest.approx(warmup['end_value'] / 100)
    assert cosine['start_value'] == warmup['end_value']
    assert cosine['end_value'] == pytest.approx(1e-6)
    assert list(lr.interval_scaling) == ['rescaled', 'rescaled']
    if name not in REAL_CONFIGS:
        assert config.MODEL.TRUNK.TORCHVISION_RESNET.DEPTH == 18
        return
    k, epochs, images, gpus, peak, warm, every = REAL_CONFIGS[name]
    assert head['num_prototypes'] == loss['num_prototypes'] == k
    assert (head['in_dim'], head['hidden_dim'], head['out_dim']) == (2048, 4096, 256)
    assert config.MODEL.TRUNK.TORCHVISION_RESNET.DEPTH == 50
    assert config.OPTIMIZER.num_epochs == epochs
    assert config.DATA.TRAIN.BATCHSIZE_PER_REPLICA == images
    assert config.DISTRIBUTED.NUM_PROC_PER_NODE * config.DISTRIBUTED.NUM_NODES == gpus
    assert warmup['end_value'] == pytest.approx(1.0 * images * gpus / 256) == peak
    assert lr.lengths[0] == pytest.approx(warm)
    assert config.CHECKPOINT.CHECKPOINT_FREQUENCY == every and config.CHECKPOINT.AUTO_RESUME
    assert config.MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN
    assert config.MODEL.AMP_PARAMS.USE_AMP and config.MODEL.AMP_PARAMS.AMP_TYPE == 'pytorch'
    assert config.DATA.TRAIN.TWO_CROP.SIZE == 224


# ---- real runs -----------------------------------------------------------------------------
def _overrides(data_root, out_dir, procs, epochs=1):
    return [CONFIG, *TINY_MODEL, f'config.CHECKPOINT.DIR={out_dir}',
            f'config.DATA.TRAIN.DATA_PATHS=[{data_root}]', 'config.DATA.TRAIN.DATA_LIMIT=16',
            'config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=4', 'config.DATA.TRAIN.TWO_CROP.SIZE=64',
            'config.DATA.NUM_DATALOADER_WORKERS=0', f'config.OPTIMIZER.num_epochs={epochs}',
            'config.CHECKPOINT.CHECKPOINT_FREQUENCY=1', 'config.LOG_FREQUENCY=1',
            f'config.DISTRIBUTED.NUM_PROC_PER_NODE={procs}']


def _run(python, repo_root, env, overrides):
    proc = subprocess.run([python, osp.join(repo_root, 'tools', 'run_distributed_engines.py'),
                           *overrides], cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


@pytest.mark.slow
@pytest.mark.parametrize('procs', [1, 2])
def test_slotcon_pretraining_runs_through_vissl(procs, python, repo_root, tiny_scenes, tmp_path,
                                                cpu_env):
    out_dir = str(tmp_path / 'run')
    log = _run(python, repo_root, cpu_env, _overrides(tiny_scenes, out_dir, procs))
    state = torch.load(osp.join(out_dir, 'model_final_checkpoint_phase0.torch'),
                       weights_only=False)['classy_state_dict']
    model = state['base_model']['model']
    assert 'layer4.1.conv2.weight' in ''.join(model['trunk'])
    assert model['heads']['0.grouping.prototypes.weight'].shape == (8, 16)
    loss_state = state['loss']
    # the layout converters/ reads: the teacher ResNet under momentum_teacher.trunk._feature_blocks.
    assert {k for k in loss_state if k.startswith('momentum_teacher.trunk.')} == {
        'momentum_teacher.trunk.' + k for k in model['trunk']}
    assert all(k.startswith('_feature_blocks.') for k in model['trunk'])
    assert {k for k in loss_state if k.startswith('momentum_teacher.heads.0.')} == {
        'momentum_teacher.heads.' + k for k in model['heads'] if '.predictor.' not in k}
    assert loss_state['center'].shape == (1, 8) and loss_state['center'].abs().sum() > 0
    with open(osp.join(out_dir, 'stdout.json')) as f:
        losses = [json.loads(line)['loss'] for line in f if '"loss"' in line]
    iterations = 16 // (4 * procs)
    assert len(losses) == iterations and all(math.isfinite(x) and x > 0 for x in losses)
    assert len(re.findall(r'slotcon_loss terms: grouping_1to2 [0-9.]+', log)) == iterations
    events = glob.glob(osp.join(out_dir, 'tb_logs', '**', 'events.out.tfevents.*'), recursive=True)
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = EventAccumulator(osp.dirname(events[0])).Reload().Tags()['scalars']
    assert {'Losses/slotcon_grouping', 'Losses/slotcon_contrastive',
            'Losses/slotcon_teacher_momentum'} <= set(tags)


@pytest.mark.slow
def test_resumed_run_ends_with_the_teacher_of_the_uninterrupted_run(python, repo_root,
                                                                    tiny_scenes, tmp_path, cpu_env):
    """2 epochs x 4 iterations in one go vs. the first epoch's checkpoint resumed: the resumed
    run restores the teacher and the centre, and its first EMA step uses the momentum of
    iteration 4 of 8, so both runs end with the same teacher."""
    whole, resumed = tmp_path / 'whole', tmp_path / 'resumed'
    _run(python, repo_root, cpu_env, _overrides(tiny_scenes, str(whole), 1, epochs=2))
    resumed.mkdir()
    shutil.copy(whole / 'model_phase0.torch', resumed / 'model_phase0.torch')
    log = _run(python, repo_root, cpu_env, _overrides(tiny_scenes, str(resumed), 1, epochs=2))
    assert 'teacher restored from the checkpoint' in log
    first = re.search(r'slotcon_loss terms: .*teacher_momentum ([0-9.]+)', log)
    assert float(first.group(1)) == pytest.approx(reference_momentum(4, 8), abs=1e-6)

    def loss_state(folder):
        return torch.load(str(folder / 'model_final_checkpoint_phase1.torch'),
                          weights_only=False)['classy_state_dict']['loss']
    a, b = loss_state(whole), loss_state(resumed)
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    # and the teacher did move in the second epoch (the comparison is not of two copies)
    c = torch.load(str(whole / 'model_phase0.torch'), weights_only=False)['classy_state_dict']
    key = 'momentum_teacher.heads.0.grouping.prototypes.weight'
    assert not torch.allclose(c['loss'][key], a[key])
