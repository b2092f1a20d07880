"""Benchmark: ViRB's grid search with and without the shared encoding, same run, on CPU.

A grid of 6 training configs (adam / sgd x 3 learning rates, StepLR / OneCycle / Poly
among them) on one image-level task, the built-in ``SyntheticCarCount`` (200 train + 60
test synthetic scenes, 64 x 128 px), for a random ResNet-18:

- **shared**: the task entry as shipped (``pre_encode: true``): the frozen encoder runs
  once over the train and test sets (fp16 features kept in memory), then the 6 heads train
  on the features (``virb.pre_encoding``);
- **not shared**: the same entry with ``pre_encode: false``: every config runs the frozen
  encoder over every batch of every epoch (what each config costs without the shared
  encoding; the original's behaviour for a task that is not pre-encoded).

Both go through ``virb.runner.run_benchmark`` (one in-process worker, no cache, no
TensorBoard), into fresh folders. Reported: wall time of each grid, the encode time and the
head-training time of the shared grid, the speed-up, and the best top-1 of each grid (the
heads see the same features either way, up to fp16 rounding; the runs are seeded).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/virb_grid.py [--epochs 8]
        [--data-root data/synthetic_scenes] [--out work_dirs/bench_virb_grid] [--json out.json]
"""
import argparse
import json
import os
import os.path as osp
import platform
import shutil
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

from densessl import synthetic_scenes  # noqa: E402
from virb.config import EncoderSpec, parse_task_spec  # noqa: E402
from virb.report import read_results  # noqa: E402
from virb.runner import run_benchmark, run_dir  # noqa: E402

GRID = {
    'adam-0.0001': {'optimizer': 'adam', 'lr': 0.0001},
    'adam-0.001': {'optimizer': 'adam', 'lr': 0.001},
    'sgd-0.01-StepLR': {'optimizer': 'sgd', 'lr': 0.01, 'momentum': 0.9,
                        'scheduler': {'type': 'StepLR', 'step_size': 2, 'gamma': 0.5}},
    'sgd-0.01-OneCycle': {'optimizer': 'sgd', 'lr': 0.01, 'momentum': 0.9,
                          'scheduler': {'type': 'OneCycle'}},
    'sgd-0.001-Poly': {'optimizer': 'sgd', 'lr': 0.001, 'momentum': 0.9,
                       'scheduler': {'type': 'Poly', 'exponent': 0.9}},
    'sgd-0.1-wd': {'optimizer': 'sgd', 'lr': 0.1, 'momentum': 0.9, 'weight_decay': 0.0001},
}


def run_grid(pre_encode, epochs, data_root, out):
    task = parse_task_spec('SyntheticCarCount', {
        'task': 'SyntheticCarCount', 'training_configs': GRID, 'num_epochs': epochs,
        'batch_size': 32, 'pre_encode': pre_encode}, 'benchmarks/virb_grid.py')
    encoder = EncoderSpec('Random_R18', arch='resnet18', seed=0)
    if osp.isdir(out):
        shutil.rmtree(out)
    start = time.perf_counter()
    run_benchmark([encoder], [task], out, data_root=data_root, workers=1, device='cpu',
                  tensorboard=False, log=lambda *_: None, stream=open(os.devnull, 'w'))
    wall = time.perf_counter() - start
    records = [read_results(run_dir(out, encoder.name, task.key, name)) for name in GRID]
    return {'wall_s': wall, 'encode_s': records[0]['encode_seconds'],
            'head_train_s': sum(r['train_seconds'] for r in records),
            'best_top1': {r['config_name']: r['best']['test_metric'] for r in records}}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--data-root', default='data/synthetic_scenes')
    p.add_argument('--out', default='work_dirs/bench_virb_grid')
    p.add_argument('--json')
    args = p.parse_args()
    synthetic_scenes.ensure(args.data_root, progress=False)
    shared = run_grid(True, args.epochs, args.data_root, osp.join(args.out, 'shared'))
    separate = run_grid(False, args.epochs, args.data_root, osp.join(args.out, 'not_shared'))
    speedup = separate['wall_s'] / shared['wall_s']
    result = {'shared': shared, 'not_shared': separate, 'speedup': speedup,
              'epochs': args.epochs, 'configs': len(GRID), 'threads': torch.get_num_threads(),
              'torch': torch.__version__, 'machine': platform.platform()}
    print(f'| grid (6 configs x {args.epochs} epochs, SyntheticCarCount, R18) | wall s | '
          f'encode s | head training s | best top-1 of the grid |')
    print('|---|---|---|---|---|')
    for name, r in (('shared encoding (pre_encode: true)', shared),
                    ('no shared encoding (pre_encode: false)', separate)):
        print(f"| {name} | {r['wall_s']:.1f} | {r['encode_s']:.1f} | {r['head_train_s']:.1f} | "
              f"{max(r['best_top1'].values()):.2f} |")
    print(f'speed-up: {speedup:.1f}x (target >= 4x)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
