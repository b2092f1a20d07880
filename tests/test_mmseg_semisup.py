"""Semi-supervised segmentation in MMSeg: the mean-teacher hook, and tiny real runs of the
ReCo-family methods through tools/train.py on the synthetic scenes with a split file."""
import json
import os
import os.path as osp
import subprocess
import sys
import types

import pytest
import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/mmseg/semisup/reco_r18_synthetic_5pct.py'
U2PL_CONFIG = 'configs/mmseg/semisup/u2pl_r18_synthetic_5pct.py'
# one supervised-only iteration, then the semi-supervised ones; a small bank and few queries
TINY_U2PL = ('model.u2pl.sup_only_iters=1',  # the teacher hook follows it
             'model.contrast_loss.queue_size=64', 'model.contrast_loss.queue_size_class0=64',
             'model.contrast_loss.num_queries=16')


def test_mean_teacher_hook_moves_parameters_by_the_schedule_and_keeps_teacher_buffers():
    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.semisup.mean_teacher_hook import MeanTeacherHook

    torch.manual_seed(0)
    model = nn.Module()
    model.student = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model.teacher = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model.teacher[1].running_mean.fill_(7.0)
    scalars = {}
    hub = types.SimpleNamespace(update_scalar=lambda k, v: scalars.__setitem__(k, v))
    runner = types.SimpleNamespace(model=model, iter=3, message_hub=hub)
    hook = MeanTeacherHook(first_semi_iteration=1)
    before = model.teacher[0].weight.detach().clone()
    hook.after_train_iter(runner, 0)
    m = 1 - 1 / (2 + 1)  # t = 3 - 1 = 2
    expected = m * before + (1 - m) * model.student[0].weight.detach()
    assert torch.allclose(model.teacher[0].weight, expected)
    assert scalars['train/teacher_momentum'] == pytest.approx(m)
    assert torch.all(model.teacher[1].running_mean == 7.0)  # its own BN statistics
    runner.iter = 0  # before the first semi-supervised iteration: no update
    weight = model.teacher[0].weight.detach().clone()
    hook.after_train_iter(runner, 0)
    assert torch.equal(model.teacher[0].weight, weight)

    # unset: the schedule starts at the model's first_semi_iteration (U2PL's warm-up)
    model.first_semi_iteration = 3
    follower = MeanTeacherHook()
    follower.before_train(runner)
    runner.iter = 3
    follower.after_train_iter(runner, 0)
    assert scalars['train/teacher_momentum'] == 0.0  # t = 0: the copy
    assert torch.equal(model.teacher[0].weight, model.student[0].weight)
    with pytest.raises(ValueError, match='first_semi_iteration=1 but the model starts its '
                                         'semi-supervised steps at 3'):
        hook.before_train(runner)


@pytest.fixture(scope='module')
def split_scenes(tmp_path_factory):
    """Tiny scenes (64x128, 12 train) with a 4 / 8 labelled / unlabelled split."""
    from densessl import synthetic_scenes
    root = str(tmp_path_factory.mktemp('semisup_scenes'))
    synthetic_scenes.generate(root, synthetic_scenes.SyntheticScenesConfig(
        num_train=12, num_val=3, num_unlabeled=0, height=64, width=128), progress=False)
    split = osp.join(root, 'split')
    subprocess.run([sys.executable, 'tools/make_splits.py', '--dataset', 'synthetic_scenes',
                    '--root', root, '--labelled-count', '4', '--out', split], cwd=REPO,
                   check=True, capture_output=True)
    return root, split


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _train(root, split, work, method, extra=(), config=CONFIG, processes=1):
    options = [f'train_dataloader.dataset.datasets.0.data_root={root}',
               f'train_dataloader.dataset.datasets.0.split_file={split}/labeled.txt',
               f'train_dataloader.dataset.datasets.1.data_root={root}',
               f'train_dataloader.dataset.datasets.1.split_file={split}/unlabeled.txt',
               f'val_dataloader.dataset.data_root={root}',
               f'test_dataloader.dataset.data_root={root}',
               'train_dataloader.batch_size=4', 'train_dataloader.sampler.batch_size=4',
               'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
               'model.labelled_per_batch=2', f'model.method={method}',
               'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
               'default_hooks.logger.interval=1', *extra]
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PORT=_free_port())
    entry = ([sys.executable, 'tools/train.py', config] if processes == 1 else
             ['bash', 'tools/dist_train.sh', config, str(processes)])
    proc = subprocess.run([*entry, '--work-dir', work, '--cfg-options', *options], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


@pytest.mark.slow
@pytest.mark.parametrize('method, losses', [
    ('reco', ('loss_sup', 'loss_unsup', 'loss_reco')),
    ('mean_teacher', ('loss_sup', 'loss_unsup')),
    ('supervised', ('loss_sup',))])
def test_tiny_run_of_each_method(method, losses, split_scenes, tmp_path):
    root, split = split_scenes
    work = str(tmp_path / method)
    log = _train(root, split, work, method)
    train_lines = [line for line in log.splitlines() if 'Iter(train)' in line]
    assert len(train_lines) == 3
    for name in losses:
        assert f'{name}: ' in train_lines[-1], train_lines[-1]
    assert ('loss_reco' in train_lines[-1]) == (method == 'reco')
    assert 'teacher_momentum: 0.6667' in train_lines[-1]  # third update: m_2 = 2/3
    assert 'mIoU' in log
    metrics = json.load(open(osp.join(work, 'metrics_val.json')))
    assert 0.0 <= metrics['mIoU'] <= 100.0


@pytest.mark.slow
def test_tiny_u2pl_run_keeps_its_memory_bank_in_the_checkpoint(split_scenes, tmp_path):
    root, split = split_scenes
    work = str(tmp_path / 'u2pl')
    log = _train(root, split, work, 'u2pl', TINY_U2PL, config=U2PL_CONFIG)
    lines = [line for line in log.splitlines() if 'Iter(train)' in line]
    assert 'teacher_momentum' not in lines[0]  # supervised-only first iteration
    assert 'loss_contrast: 0.0000' in lines[0] and 'loss_aux' in lines[0]
    assert 'teacher_momentum: 0.5000' in lines[-1]  # m_1 after the copy at iteration 1
    state = torch.load(osp.join(work, 'iter_3.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    counts = state['contrast_loss.memory_bank.counts']
    assert counts.sum() > 0 and state['contrast_loss.memory_bank.features'].shape[1] == 256


@pytest.mark.slow
def test_two_process_u2pl_run_gathers_the_bank(split_scenes, tmp_path):
    root, split = split_scenes
    work = str(tmp_path / 'u2pl_ddp')
    log = _train(root, split, work, 'u2pl', TINY_U2PL, config=U2PL_CONFIG, processes=2)
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'Iter(train) [3/3]' in log and 'loss_contrast' in log


@pytest.mark.slow
def test_starts_from_a_converted_checkpoint_and_refuses_a_wrong_one(split_scenes, tmp_path):
    import torchvision
    root, split = split_scenes
    good = str(tmp_path / 'r18.pth')
    weights = torchvision.models.resnet18().state_dict()
    torch.save(weights, good)
    work = str(tmp_path / 'good')
    _train(root, split, work, 'supervised', [f'model.network.init_cfg.checkpoint={good}',
                                             'optim_wrapper.optimizer.lr=0.0',
                                             'param_scheduler.0.eta_min=0.0'])
    state = torch.load(osp.join(work, 'iter_3.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    for key in ('conv1.weight', 'layer4.1.conv2.weight'):  # lr 0: still the file's weights
        assert torch.equal(state[f'student.net.backbone.{key}'], weights[key])
    bad = str(tmp_path / 'r50.pth')
    torch.save(torchvision.models.resnet50().state_dict(), bad)
    with pytest.raises(AssertionError, match='does not fit'):
        _train(root, split, str(tmp_path / 'bad'), 'supervised',
               [f'model.network.init_cfg.checkpoint={bad}'])
