#!/usr/bin/env python
"""Train a segmentor with MMSegmentation + densessl's plugins (mmseg's tools/train.py CLI).

    python tools/train.py configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py \
        [--work-dir DIR] [--resume] [--amp] [--cfg-options KEY=VALUE ...]
    tools/dist_train.sh CONFIG NUM_PROC [same arguments]     # torchrun; gloo on CPU

A thin wrapper: import mmseg_plugins (registers the plugins, applies the framework fixes
of mmseg_plugins.compat), load the config, refuse --cfg-options keys the config does not
have, adapt a GPU config to a machine without GPU, build mmengine's Runner and train.
"""
import argparse
import os
import os.path as osp
import sys

import mmseg_plugins  # noqa: F401  (first: registers the plugins, applies compat fixes)
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmseg_plugins.compat import adapt_config_for_device
from mmseg_plugins.config_options import UnknownConfigKeyError, check_cfg_options

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor (densessl, MMSeg 1.x)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true', default=False,
                        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training (needs a GPU)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value; the keys must exist in the config '
             '(e.g. model.backbone.checkpoint=PATH, train_cfg.max_iters=100)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def resolve_config(path):
    """``path`` as given, or relative to the repository root (so any cwd works)."""
    if not osp.isfile(path) and not osp.isabs(path) and osp.isfile(osp.join(REPO_ROOT, path)):
        return osp.join(REPO_ROOT, path)
    if not osp.isfile(path):
        sys.exit(f'config file not found: {path}')
    return path


def load_config(config_path, cfg_options, launcher, work_dir):
    """Config + checked --cfg-options + launcher + work_dir (CLI > config > default)."""
    config_path = resolve_config(config_path)
    cfg = Config.fromfile(config_path)
    if cfg_options:
        try:
            check_cfg_options(cfg, cfg_options)
        except UnknownConfigKeyError as e:
            sys.exit(f'error: {e}')
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    return cfg


def build_runner(cfg):
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        if not torch.cuda.is_available():
            sys.exit('error: --amp needs a GPU (mmengine\'s AmpOptimWrapper is CUDA/NPU/MLU '
                     'only); run without --amp on CPU.')
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper', (
                f'--amp is only supported with OptimWrapper, got {cfg.optim_wrapper.type}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    adapt_config_for_device(cfg)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
