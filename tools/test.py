#!/usr/bin/env python
"""Test a trained segmentor with MMSegmentation + densessl's plugins (mmseg's CLI).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--show-dir DIR] \
        [--cfg-options KEY=VALUE ...]
    tools/dist_test.sh CONFIG CHECKPOINT NUM_PROC [same arguments]

Prints aAcc / mIoU / mAcc and writes WORK_DIR/metrics_test.{json,md} (ResultsTableHook)
and WORK_DIR/manifest_test.json (RunManifestHook). ``--out`` saves the predicted label maps
as PNG, ``--show-dir`` saves images with the prediction drawn over them.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import sys

import mmseg_plugins  # noqa: F401  (first: registers the plugins, applies compat fixes)
from mmengine.config import DictAction
from mmengine.dist import is_main_process

from mmseg_plugins.compat import adapt_config_for_device


def _load_train_tool():
    """tools/train.py as a module (tools/ is not a package: vissl installs one named so)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'train.py')
    spec = importlib.util.spec_from_file_location('densessl_tools_train', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_train_tool = _load_train_tool()
build_runner, load_config = _train_tool.build_runner, _train_tool.load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a segmentor (densessl, MMSeg 1.x)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dir to save the predicted label maps (PNG)')
    parser.add_argument('--show-dir', help='dir to save images with the prediction overlaid')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value; the keys must exist in the config')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _ensure_hook(cfg, hook_type):
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == hook_type for h in hooks):
        hooks.append(dict(type=hook_type))
    cfg.custom_hooks = hooks


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    _ensure_hook(cfg, 'ResultsTableHook')  # metrics_test.json, also for other configs
    _ensure_hook(cfg, 'RunManifestHook')
    if args.show_dir:
        visualization = cfg.default_hooks.get('visualization')
        if visualization is None:
            sys.exit('error: --show-dir needs default_hooks.visualization '
                     '(SegVisualizationHook) in the config')
        visualization.update(draw=True, show=False, interval=1)  # every image
        cfg.visualizer.save_dir = args.show_dir
    if args.out:
        cfg.test_evaluator = dict(cfg.test_evaluator, output_dir=args.out, keep_results=True)
    adapt_config_for_device(cfg)
    runner = build_runner(cfg)
    metrics = runner.test()
    if is_main_process():
        summary = {k: round(float(v), 2) for k, v in metrics.items()}
        print('test metrics: ' + json.dumps(summary))
        print(f'written: {osp.join(cfg.work_dir, "metrics_test.json")}')


if __name__ == '__main__':
    main()
