"""Real tiny pretraining runs through tools/run_distributed_engines.py (1 and 2 processes)."""
import glob
import json
import os.path as osp
import signal
import subprocess
import time

import pytest
import torch

pytestmark = pytest.mark.slow

CONFIG = 'config=pretrain/simclr/simclr_resnet18_synthetic_cpu'


def _overrides(data_root, out_dir, epochs=2, procs=1, batch=4):
    return [CONFIG, f'config.CHECKPOINT.DIR={out_dir}', f'config.DATA.TRAIN.DATA_PATHS=[{data_root}]',
            f'config.OPTIMIZER.num_epochs={epochs}', f'config.DATA.TRAIN.BATCHSIZE_PER_REPLICA={batch}',
            'config.DATA.TRAIN.TRANSFORMS.0.size=48', 'config.DATA.TRAIN.TRANSFORMS.2.size=32',
            'config.DATA.NUM_DATALOADER_WORKERS=0',
            'config.CHECKPOINT.CHECKPOINT_FREQUENCY=1', 'config.LOG_FREQUENCY=1',
            f'config.DISTRIBUTED.NUM_PROC_PER_NODE={procs}']


def _launch(python, repo_root, overrides, env, **kwargs):
    return subprocess.Popen([python, osp.join(repo_root, 'tools', 'run_distributed_engines.py'),
                             *overrides], cwd=repo_root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _run(python, repo_root, overrides, env, timeout=400):
    proc = _launch(python, repo_root, overrides, env)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _losses(out_dir):
    with open(osp.join(out_dir, 'stdout.json')) as f:
        return [json.loads(line)['loss'] for line in f if '"loss"' in line]


@pytest.mark.parametrize('procs', [1, 2])
def test_pretrain_runs_and_writes_checkpoint_manifest_tensorboard(procs, python, repo_root,
                                                                   tiny_scenes, tmp_path, cpu_env):
    out_dir = str(tmp_path / 'run')
    log = _run(python, repo_root, _overrides(tiny_scenes, out_dir, procs=procs), cpu_env)
    final = glob.glob(osp.join(out_dir, 'model_final_checkpoint_phase1.torch'))
    assert final, log[-3000:]
    trunk = torch.load(final[0])['classy_state_dict']['base_model']['model']['trunk']
    assert '_feature_blocks.layer4.1.conv2.weight' in trunk
    losses = _losses(out_dir)
    # 16 images / (4 per replica x procs) iterations per epoch, 2 epochs
    assert len(losses) == 2 * 16 // (4 * procs)
    assert all(0 < x < 10 for x in losses)
    manifest = json.load(open(osp.join(out_dir, 'manifest.json')))
    assert manifest['config']['DISTRIBUTED']['NUM_PROC_PER_NODE'] == procs
    assert manifest['packages']['vissl'] == '0.1.6' and manifest['git_commit'] is not None
    assert glob.glob(osp.join(out_dir, 'tb_logs', '**', 'events.out.tfevents.*'), recursive=True)
    if procs == 2:
        assert 'Rank: 1' in log or 'dist_rank: 1' in log


def test_killed_pretraining_resumes_from_its_last_checkpoint(python, repo_root, tiny_scenes,
                                                             tmp_path, cpu_env):
    out_dir = str(tmp_path / 'run')
    overrides = _overrides(tiny_scenes, out_dir, epochs=3, batch=2)
    proc = _launch(python, repo_root, overrides, cpu_env, start_new_session=True)
    deadline = time.time() + 300
    while not osp.exists(osp.join(out_dir, 'model_phase0.torch')):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    import os
    os.killpg(proc.pid, signal.SIGKILL)  # kill the whole run, no clean shutdown
    proc.wait()
    assert not osp.exists(osp.join(out_dir, 'model_final_checkpoint_phase2.torch'))
    log = _run(python, repo_root, overrides, cpu_env)
    assert 'Resume from file' in log and 'checkpoint.torch' in log, log[-3000:]
    assert '[ep: 0]' not in log  # epoch 0 was done before the kill and is not trained again
    assert osp.exists(osp.join(out_dir, 'model_final_checkpoint_phase2.torch'))
    ckpt = torch.load(osp.join(out_dir, 'model_final_checkpoint_phase2.torch'))
    assert ckpt['phase_idx'] == 2 and ckpt['iteration'] == 3 * 16 // 2


def test_unknown_key_fails_before_training(python, repo_root, tiny_scenes, tmp_path, cpu_env):
    proc = subprocess.run([python, 'tools/run_distributed_engines.py', CONFIG,
                           '+config.OPTIMIZER.num_epoch=2'], cwd=repo_root, env=cpu_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown config key 'config.OPTIMIZER.num_epoch'" in proc.stderr
