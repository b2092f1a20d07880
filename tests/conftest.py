"""Shared fixtures: the repository root, the venv's python, tiny synthetic data sets."""
import os
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='session')
def python():
    return sys.executable


@pytest.fixture(scope='session')
def tiny_scenes(tmp_path_factory):
    """A 64x128 synthetic-scenes set: 8 train, 4 val, 16 unlabelled images."""
    from densessl import synthetic_scenes
    root = str(tmp_path_factory.mktemp('tiny_scenes'))
    config = synthetic_scenes.SyntheticScenesConfig(num_train=8, num_val=4, num_unlabeled=16,
                                                    height=64, width=128)
    synthetic_scenes.generate(root, config, progress=False)
    return root


@pytest.fixture
def cpu_env():
    """Environment for subprocess runs on CPU: one thread per process, no GPU."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    env.pop('WORLD_SIZE', None)
    return env
