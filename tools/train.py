#!/usr/bin/env python
"""MMSegmentation's train entry point with densessl's plugins (same arguments as mmseg's).

    python tools/train.py configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py \
        --cfg-options model.backbone.checkpoint=work_dirs/simclr_r18_mmseg.pth
    tools/dist_train.sh CONFIG NUM_PROC [args]     # torchrun; CPU uses gloo
"""
import argparse
import os
import os.path as osp

import mmseg_plugins  # noqa: F401  (registers the plugins, applies the framework fixes)
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmseg_plugins.compat import adapt_config_for_device
from mmseg_plugins.config_options import check_cfg_options


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor (densessl)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true', default=False,
                        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (keys must exist)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args):
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.resume = args.resume
    return adapt_config_for_device(cfg)


def main():
    args = parse_args()
    runner = Runner.from_cfg(build_config(args))
    runner.train()


if __name__ == '__main__':
    main()
