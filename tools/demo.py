#!/usr/bin/env python
"""The end-to-end demo: synthetic data -> VISSL pretraining -> conversion -> linear probe.

    python tools/demo.py                       # SimCLR vs random init, ~6-8 min on 2 CPU cores
    python tools/demo.py --out work_dirs/demo --fresh

Every step runs the project's real entry point in a subprocess, exactly as a user would:

1. ``tools/gen_synthetic_scenes.py``   the built-in data set (skipped when complete)
2. ``tools/run_distributed_engines.py`` self-supervised pretraining in VISSL
3. ``tools/convert_checkpoint.py``      VISSL checkpoint -> MMSeg backbone checkpoint
4. ``tools/train.py`` + ``tools/test.py`` frozen-backbone linear probe in MMSeg, for the
   pretrained backbone and for a randomly initialised one

and prints one table (method, aAcc, mIoU, mAcc), also written to OUT/results.{json,md}.
Finished steps are skipped on a re-run (an interrupted demo resumes); ``--fresh`` restarts.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

from densessl.atomic_io import atomic_write_json, atomic_write_text
from densessl.run_manifest import REPO_ROOT, write_manifest

PROBE_CONFIG = 'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py'
PRETRAIN_CONFIGS = {
    'simclr': 'pretrain/simclr/simclr_resnet18_synthetic_cpu',
}
METRICS = ('aAcc', 'mIoU', 'mAcc')


def run(cmd, log_path):
    """Run one entry point, teeing its output to ``log_path``; stop the demo on failure."""
    print(f'\n$ {" ".join(cmd)}\n  (log: {log_path})', flush=True)
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if any(k in line for k in ('loss:', 'Iter(', 'aAcc', 'Error', 'error:', 'wrote',
                                       'matched', 'REFUSED')):
                print('  ' + line.rstrip()[-160:], flush=True)
        proc.wait()
    if proc.returncode != 0:
        sys.exit(f'demo: step failed (exit {proc.returncode}) after {time.time() - start:.0f} s;'
                 f' see {log_path}')
    print(f'  done in {time.time() - start:.0f} s', flush=True)


def pretrain(method, data_root, out):
    ckpt_dir = osp.join(out, f'pretrain_{method}')
    if not glob.glob(osp.join(ckpt_dir, 'model_final_checkpoint_phase*.torch')):
        run([sys.executable, 'tools/run_distributed_engines.py',
             f'config={PRETRAIN_CONFIGS[method]}',
             f'config.CHECKPOINT.DIR={ckpt_dir}',
             f'config.DATA.TRAIN.DATA_PATHS=[{data_root}]'],
            osp.join(out, 'logs', f'pretrain_{method}.log'))
    final = sorted(glob.glob(osp.join(ckpt_dir, 'model_final_checkpoint_phase*.torch')))
    if not final:
        sys.exit(f'demo: no final checkpoint in {ckpt_dir}')
    return final[-1]


def convert(method, vissl_checkpoint, out):
    converted = osp.join(out, f'{method}_resnet18_mmseg.pth')
    if not osp.exists(converted):
        run([sys.executable, 'tools/convert_checkpoint.py', vissl_checkpoint, converted,
             '--src-format', 'vissl', '--dst-format', 'mmseg',
             '--report-json', osp.join(out, f'{method}_conversion_report.json')],
            osp.join(out, 'logs', f'convert_{method}.log'))
    return converted


def linear_probe(name, backbone_checkpoint, data_root, out):
    """Train and test the linear probe; returns the test metrics dict."""
    work_dir = osp.join(out, f'probe_{name}')
    metrics_file = osp.join(work_dir, 'metrics_test.json')
    ckpt_option = 'None' if backbone_checkpoint is None else backbone_checkpoint
    options = [f'model.backbone.checkpoint={ckpt_option}',
               f'train_dataloader.dataset.data_root={data_root}',
               f'val_dataloader.dataset.data_root={data_root}',
               f'test_dataloader.dataset.data_root={data_root}']
    if not osp.exists(metrics_file):
        last = osp.join(work_dir, 'last_checkpoint')
        run([sys.executable, 'tools/train.py', PROBE_CONFIG, '--work-dir', work_dir,
             '--resume', '--cfg-options', *options],
            osp.join(out, 'logs', f'probe_{name}_train.log'))
        with open(last) as f:
            probe_checkpoint = f.read().strip()
        run([sys.executable, 'tools/test.py', PROBE_CONFIG, probe_checkpoint,
             '--work-dir', work_dir, '--cfg-options', *options],
            osp.join(out, 'logs', f'probe_{name}_test.log'))
    with open(metrics_file) as f:
        return json.load(f)


def write_table(rows, out):
    header = '| method | backbone init | aAcc | mIoU | mAcc |\n|---|---|---|---|---|\n'
    lines = [f"| {r['method']} | {r['init']} | " + ' | '.join(f'{r[m]:.2f}' for m in METRICS)
             + ' |' for r in rows]
    table = header + '\n'.join(lines) + '\n'
    atomic_write_text('# Linear probe on the synthetic scenes (val)\n\n' + table,
                      osp.join(out, 'results.md'))
    atomic_write_json(rows, osp.join(out, 'results.json'))
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic_scenes')
    parser.add_argument('--methods', nargs='+', default=['simclr'], choices=sorted(PRETRAIN_CONFIGS))
    parser.add_argument('--fresh', action='store_true', help='delete OUT first')
    args = parser.parse_args()
    out = osp.abspath(args.out)
    data_root = osp.abspath(args.data_root)
    if args.fresh and osp.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    write_manifest(out, vars(args), seeds={'pretrain': 0, 'probe': 0}, kind='demo')
    start = time.time()

    run([sys.executable, 'tools/gen_synthetic_scenes.py', '--out', data_root],
        osp.join(out, 'logs', 'data.log'))
    rows = []
    for method in args.methods:
        vissl_checkpoint = pretrain(method, data_root, out)
        converted = convert(method, vissl_checkpoint, out)
        rows.append(dict(method=method, init=f'VISSL {method} ({osp.basename(vissl_checkpoint)})',
                         **{m: linear_probe(method, converted, data_root, out)[m] for m in METRICS}))
    rows.append(dict(method='random', init='random (seed 0)',
                     **{m: linear_probe('random', None, data_root, out)[m] for m in METRICS}))

    table = write_table(rows, out)
    print(f'\nLinear probe, synthetic scenes val ({time.time() - start:.0f} s in all):\n')
    print(table)
    print(f'written: {osp.join(out, "results.md")}, {osp.join(out, "results.json")}')


if __name__ == '__main__':
    main()
