"""Real tiny runs through the entry points, on CPU: tools/train.py, tools/test.py,
tools/dist_train.sh / dist_test.sh (2 processes, gloo), kill + --resume, slurm_*.sh (with a
stand-in srun), and the errors a user meets first (unknown --cfg-options key, no data)."""
import glob
import json
import os
import os.path as osp
import re
import signal
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mmseg_plugins  # noqa: F401  (compat fix 2: torch.load of mmengine checkpoints here)
from densessl import synthetic_scenes

pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py'
PYTHON = sys.executable
NUM_CLASSES = len(synthetic_scenes.CLASSES)


@pytest.fixture(scope='module')
def scenes(tiny_scenes):
    """The shared 64x128 synthetic set of tests/conftest.py (8 train, 4 val)."""
    return tiny_scenes


def _clean_env():
    """One thread per process, no GPU, unbuffered output, no inherited torchrun state."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1',
               PYTHON=PYTHON)
    for key in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(key, None)
    return env


@pytest.fixture
def env():
    return _clean_env()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _options(root, iters, workers=0, *extra):
    options = [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]
    options += [f'train_cfg.max_iters={iters}', 'train_dataloader.batch_size=2',
                'default_hooks.logger.interval=1']
    if workers is not None:
        options += [f'{split}_dataloader.num_workers={workers}'
                    for split in ('train', 'val', 'test')]
    return options + list(extra)


def _run(cmd, env, cwd=REPO, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(cmd)}\n{out[-5000:]}'
    return out


def _losses(log):
    return [float(v) for v in re.findall(r'Iter\(train\) \[\s*\d+/\d+\].*? loss: ([\d.]+)', log)]


def _metrics(path):
    with open(path) as f:
        metrics = json.load(f)
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert 0 <= metrics[key] <= 100, metrics
    return metrics


def _scores_from_predictions(pred_dir, root):
    """aAcc and mIoU recomputed from tools/test.py --out label maps and the ground truth."""
    intersect, union = np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES)
    correct = valid = 0
    predictions = sorted(glob.glob(osp.join(pred_dir, '*.png')))
    for path in predictions:
        stem = osp.basename(path).replace('_leftImg8bit.png', '')
        (label_path,) = glob.glob(osp.join(root, 'gtFine', 'val', '*',
                                           f'{stem}_gtFine_labelTrainIds.png'))
        pred, label = np.array(Image.open(path)), np.array(Image.open(label_path))
        mask = label != 255
        pred, label = pred[mask], label[mask]
        correct, valid = correct + (pred == label).sum(), valid + mask.sum()
        for c in range(NUM_CLASSES):
            intersect[c] += ((pred == c) & (label == c)).sum()
            union[c] += ((pred == c) | (label == c)).sum()
    present = union > 0
    miou = 100 * np.mean(intersect[present] / union[present])
    return len(predictions), 100 * correct / valid, miou


@pytest.fixture(scope='module')
def trained(scenes, tmp_path_factory):
    """One 12-iteration training through tools/train.py: (work_dir, log)."""
    work = str(tmp_path_factory.mktemp('trained') / 'work')
    # the config's own loader settings (2 workers) in this run
    log = _run([PYTHON, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
                *_options(scenes, 12, workers=None)], _clean_env())
    return work, log


def test_train_then_test(scenes, trained, tmp_path, env):
    work, log = trained
    losses = _losses(log)
    assert len(losses) == 12 and losses[-1] < losses[0], losses  # the head learns
    assert osp.exists(osp.join(work, 'iter_12.pth'))
    val = _metrics(osp.join(work, 'metrics_val.json'))
    assert val['iteration'] == 12 and val['checkpoint'] == osp.join(work, 'iter_12.pth')
    assert '| aAcc | mIoU | mAcc |' in open(osp.join(work, 'metrics_val.md')).read()
    manifest = json.load(open(osp.join(work, 'manifest.json')))
    assert manifest['kind'] == 'mmseg-train' and manifest['seeds']['seed'] == 0
    assert manifest['config']['train_cfg']['max_iters'] == 12
    assert manifest['config']['model']['backbone']['type'] == 'FrozenResNet'
    assert manifest['packages']['mmsegmentation'] == '1.2.2'
    assert any(a.endswith('tools/train.py') for a in manifest['command_line'])
    assert glob.glob(osp.join(work, '*', 'vis_data', 'events.out.tfevents.*'))  # TensorBoard
    assert glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))

    # a real mmseg checkpoint loads with torch.load's default weights_only=True (compat fix 2)
    checkpoint = torch.load(osp.join(work, 'iter_12.pth'))
    assert checkpoint['meta']['iter'] == 12
    assert any(k.startswith('backbone.layer4') for k in checkpoint['state_dict'])

    pred_dir, show_dir = str(tmp_path / 'pred'), str(tmp_path / 'show')
    out = _run([PYTHON, 'tools/test.py', CONFIG, osp.join(work, 'iter_12.pth'), '--work-dir',
                work, '--out', pred_dir, '--show-dir', show_dir, '--cfg-options',
                *_options(scenes, 12)], env)
    test = _metrics(osp.join(work, 'metrics_test.json'))
    assert test['checkpoint'] == osp.join(work, 'iter_12.pth') and test['iteration'] == 12
    for key in ('aAcc', 'mIoU', 'mAcc'):  # same weights, same images
        assert test[key] == pytest.approx(val[key], abs=0.01)
    printed = json.loads(re.search(r'test metrics: (\{.*\})', out).group(1))
    assert printed['mIoU'] == pytest.approx(test['mIoU'], abs=0.01)
    count, aacc, miou = _scores_from_predictions(pred_dir, scenes)
    assert count == 4
    assert aacc == pytest.approx(test['aAcc'], abs=0.02)
    assert miou == pytest.approx(test['mIoU'], abs=0.02)
    assert len(glob.glob(osp.join(show_dir, 'vis_data', 'vis_image', '*.png'))) == 4
    assert json.load(open(osp.join(work, 'manifest_test.json')))['kind'] == 'mmseg-test'
    assert json.load(open(osp.join(work, 'manifest.json')))['kind'] == 'mmseg-train'


def test_two_process_training_with_gloo_from_another_directory(scenes, tmp_path, env):
    work = str(tmp_path / 'dist')
    env = dict(env, PORT=_free_port())
    # run from outside the repository, with the config path relative to the repository
    log = _run(['bash', osp.join(REPO, 'tools/dist_train.sh'), CONFIG, '2', '--work-dir', work,
                '--cfg-options', *_options(scenes, 6)], env, cwd=str(tmp_path))
    for line in ('Distributed launcher: pytorch', 'Distributed training: True',
                 'GPU number: 2'):  # mmengine's name for the world size
        assert line in log, log[-3000:]
    assert 'Iter(train) [6/6]' in log and osp.exists(osp.join(work, 'iter_6.pth'))
    manifest = json.load(open(osp.join(work, 'manifest.json')))
    assert manifest['config']['env_cfg']['dist_cfg']['backend'] == 'gloo'
    assert manifest['config']['model_wrapper_cfg']['device_ids'] is None
    assert manifest['env']['WORLD_SIZE'] == '2'



def test_two_process_test_matches_single_process_validation(scenes, trained, tmp_path, env):
    work, _ = trained
    dist_work = str(tmp_path / 'dist_test')
    env = dict(env, PORT=_free_port())
    log = _run(['bash', osp.join(REPO, 'tools/dist_test.sh'), CONFIG,
                osp.join(work, 'iter_12.pth'), '2', '--work-dir', dist_work,
                '--cfg-options', *_options(scenes, 12)], env, cwd=str(tmp_path))
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    dist_metrics = _metrics(osp.join(dist_work, 'metrics_test.json'))
    val = _metrics(osp.join(work, 'metrics_val.json'))  # 1 process, the same weights
    for key in ('aAcc', 'mIoU', 'mAcc'):  # the results of both ranks are gathered
        assert dist_metrics[key] == pytest.approx(val[key], abs=0.01)


def test_killed_run_resumes_from_its_last_checkpoint(scenes, tmp_path, env):
    options = _options(scenes, 10, 0, 'default_hooks.checkpoint.interval=5')
    work = str(tmp_path / 'resume')
    cmd = [PYTHON, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options', *options]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    first = []
    try:
        for line in proc.stdout:
            first.append(line)
            if 'Iter(train) [ 6/10]' in line:  # iter_5.pth is saved: kill it now
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, ''.join(first)[-3000:]
    assert osp.exists(osp.join(work, 'iter_5.pth'))
    assert not osp.exists(osp.join(work, 'iter_10.pth'))
    assert open(osp.join(work, 'last_checkpoint')).read().strip().endswith('iter_5.pth')

    log = _run(cmd[:3] + ['--resume'] + cmd[3:], env)
    assert 'resumed epoch: 0, iter: 5' in log, log[-3000:]
    iters = [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/10\]', log)]
    assert iters == [6, 7, 8, 9, 10]
    assert _metrics(osp.join(work, 'metrics_val.json'))['iteration'] == 10

    # the resumed run ends where an uninterrupted one does (LR schedule, momentum, data order)
    straight = str(tmp_path / 'straight')
    straight_log = _run([PYTHON, 'tools/train.py', CONFIG, '--work-dir', straight,
                         '--cfg-options', *options], env)
    assert _losses(straight_log)[5:] == pytest.approx(_losses(log), rel=1e-3)
    resumed = torch.load(osp.join(work, 'iter_10.pth'))['state_dict']
    reference = torch.load(osp.join(straight, 'iter_10.pth'))['state_dict']
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=1e-4, atol=1e-5,
                                   msg=key)


def _fake_slurm(bin_dir, record):
    """Stand-ins for srun / scontrol: srun records its arguments and runs the command as
    the single task of a job (the SLURM_* variables mmengine's slurm launcher reads)."""
    os.makedirs(bin_dir)
    srun = osp.join(bin_dir, 'srun')
    with open(srun, 'w') as f:
        f.write(f'''#!/usr/bin/env bash
printf '%s\\n' "$@" > "{record}"
while [ $# -gt 0 ] && [[ "$1" == -* ]]; do
  if [ "$1" = "-p" ]; then shift 2; else shift; fi
done
export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST=localhost
exec "$@"
''')
    scontrol = osp.join(bin_dir, 'scontrol')
    with open(scontrol, 'w') as f:
        f.write('#!/usr/bin/env bash\necho 127.0.0.1\n')
    for path in (srun, scontrol):
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def test_slurm_scripts(scenes, tmp_path, env):
    record = str(tmp_path / 'srun_args.txt')
    _fake_slurm(str(tmp_path / 'bin'), record)
    env = dict(env, PATH=f'{tmp_path / "bin"}:{env["PATH"]}', GPUS='1', GPUS_PER_NODE='0',
               MASTER_PORT=_free_port())
    work = str(tmp_path / 'slurm')
    log = _run(['bash', 'tools/slurm_train.sh', 'cpu', 'probe', CONFIG, work, '--cfg-options',
                *_options(scenes, 3)], env)
    args = open(record).read().split('\n')
    assert args[:3] == ['-p', 'cpu', '--job-name=probe'] and '--ntasks=1' in args
    assert not any(a.startswith('--gres') for a in args)  # GPUS_PER_NODE=0: CPU nodes
    assert args[args.index('--launcher') + 1] == 'slurm'
    assert args[args.index('--work-dir') + 1] == work
    assert 'Distributed launcher: slurm' in log and osp.exists(osp.join(work, 'iter_3.pth'))

    test_work = str(tmp_path / 'slurm_test')
    _run(['bash', 'tools/slurm_test.sh', 'cpu', 'probe-test', CONFIG,
          osp.join(work, 'iter_3.pth'), test_work, '--cfg-options', *_options(scenes, 3)], env)
    args = open(record).read().split('\n')
    assert args[args.index('--launcher') + 1] == 'slurm' and 'tools/test.py' in ' '.join(args)
    assert _metrics(osp.join(test_work, 'metrics_test.json'))['iteration'] == 3


def test_first_errors_are_clear(scenes, tmp_path, env):
    proc = subprocess.run([PYTHON, 'tools/train.py', CONFIG, '--cfg-options',
                           'model.backbone.checkpiont=x.pth'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert ("error: unknown config key 'model.backbone.checkpiont': model.backbone has no "
            "'checkpiont'. Did you mean 'model.backbone.checkpoint'?") in proc.stderr

    missing = str(tmp_path / 'no_data')
    proc = subprocess.run([PYTHON, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                           '--cfg-options', *_options(missing, 2)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert (f'data root {missing} does not exist. Create it with: python '
            f'tools/gen_synthetic_scenes.py --out {missing}') in proc.stderr, proc.stderr[-2000:]
