"""Real tiny runs through tools/train.py, tools/test.py and tools/dist_train.sh (CPU)."""
import glob
import json
import os.path as osp
import subprocess

import pytest

pytestmark = pytest.mark.slow

CONFIG = 'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py'


def _options(data_root, iters, checkpoint_interval=None):
    options = [f'train_dataloader.dataset.data_root={data_root}',
               f'val_dataloader.dataset.data_root={data_root}',
               f'test_dataloader.dataset.data_root={data_root}',
               'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
               'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
               'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False',
               f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
               'default_hooks.logger.interval=1',
               f'default_hooks.checkpoint.interval={checkpoint_interval or iters}',
               f'param_scheduler.0.end={iters}']
    return options


def _run(cmd, repo_root, env, timeout=400):
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_train_then_test_writes_metrics_and_manifest(python, repo_root, tiny_scenes, tmp_path,
                                                     cpu_env):
    work = str(tmp_path / 'work')
    _run([python, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
          *_options(tiny_scenes, 4)], repo_root, cpu_env)
    val = json.load(open(osp.join(work, 'metrics_val.json')))
    assert val['iteration'] == 4 and 0 <= val['mIoU'] <= 100
    manifest = json.load(open(osp.join(work, 'manifest.json')))
    assert manifest['config']['train_cfg']['max_iters'] == 4
    assert manifest['seeds'] == {'seed': 0} and manifest['packages']['mmsegmentation'] == '1.2.2'
    assert glob.glob(osp.join(work, '*', 'vis_data', 'events.out.tfevents.*'))  # TensorBoard
    out = _run([python, 'tools/test.py', CONFIG, osp.join(work, 'iter_4.pth'), '--work-dir',
                work, '--cfg-options', *_options(tiny_scenes, 4)], repo_root, cpu_env)
    test = json.load(open(osp.join(work, 'metrics_test.json')))
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(test) and test['checkpoint'].endswith('iter_4.pth')
    assert abs(test['mIoU'] - val['mIoU']) < 1e-6  # same weights, same data
    assert '"mIoU"' in out and osp.exists(osp.join(work, 'metrics_test.md'))


def test_two_process_training_with_gloo(python, repo_root, tiny_scenes, tmp_path, cpu_env):
    work = str(tmp_path / 'dist')
    env = dict(cpu_env, PYTHON=python, PORT='29517')
    out = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work, '--cfg-options',
                *_options(tiny_scenes, 3)], repo_root, env)
    assert osp.exists(osp.join(work, 'iter_3.pth'))
    assert 'Distributed launcher: pytorch' in out or 'distributed: True' in out, out[-2000:]
    manifest = json.load(open(osp.join(work, 'manifest.json')))
    assert manifest['config']['env_cfg']['dist_cfg']['backend'] == 'gloo'


def test_resume_continues_from_the_last_checkpoint(python, repo_root, tiny_scenes, tmp_path,
                                                   cpu_env):
    work = str(tmp_path / 'resume')
    _run([python, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
          *_options(tiny_scenes, 3, checkpoint_interval=3)], repo_root, cpu_env)
    out = _run([python, 'tools/train.py', CONFIG, '--work-dir', work, '--resume',
                '--cfg-options', *_options(tiny_scenes, 6, checkpoint_interval=3)],
               repo_root, cpu_env)
    assert 'resumed epoch: 0, iter: 3' in out, out[-3000:]
    assert 'Iter(train) [1/6]' not in out and 'Iter(train) [4/6]' in out
    assert osp.exists(osp.join(work, 'iter_6.pth'))


def test_unknown_cfg_option_fails_before_training(python, repo_root, tiny_scenes, cpu_env):
    proc = subprocess.run([python, 'tools/train.py', CONFIG, '--cfg-options',
                           'model.backbone.checkpiont=x.pth'], cwd=repo_root, env=cpu_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown config key 'model.backbone.checkpiont'" in proc.stderr
    assert "Did you mean 'model.backbone.checkpoint'" in proc.stderr
