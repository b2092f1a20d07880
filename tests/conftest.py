"""Shared fixtures: the repository root, the venv's python, tiny synthetic data sets, a free
port, tools/convert_checkpoint.py's main()."""
import importlib.util
import os
import os.path as osp
import socket
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


@pytest.fixture
def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, as a string (for PORT /
    MASTER_PORT of a multi-process run)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.fixture(scope='session')
def convert_checkpoint_main():
    """tools/convert_checkpoint.py's main(argv), run in this process (no import start-up)."""
    spec = importlib.util.spec_from_file_location(
        'convert_checkpoint', osp.join(REPO_ROOT, 'tools', 'convert_checkpoint.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
