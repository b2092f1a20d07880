#!/usr/bin/env python
"""MMSegmentation's test entry point with densessl's plugins (same arguments as mmseg's).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]

Prints aAcc / mIoU / mAcc and writes them to WORK_DIR/metrics_test.{json,md}.
"""
import argparse
import json
import os
import os.path as osp

import mmseg_plugins  # noqa: F401  (registers the plugins, applies the framework fixes)
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmseg_plugins.compat import adapt_config_for_device
from mmseg_plugins.config_options import check_cfg_options


def parse_args():
    parser = argparse.ArgumentParser(description='Test a segmentor (densessl)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dir to save the predicted label maps (as PNG)')
    parser.add_argument('--show-dir', help='dir to save images with the prediction overlaid')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (keys must exist)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        cfg.default_hooks.visualization.update(draw=True, interval=1, show=False)
        cfg.visualizer.save_dir = args.show_dir
    if args.out:
        cfg.test_evaluator.update(output_dir=args.out, keep_results=True)
    runner = Runner.from_cfg(adapt_config_for_device(cfg))
    metrics = runner.test()
    print(json.dumps({k: round(float(v), 2) for k, v in metrics.items()}))


if __name__ == '__main__':
    main()
