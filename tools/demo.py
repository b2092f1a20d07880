#!/usr/bin/env python
"""The end-to-end demo: synthetic data -> VISSL pretraining -> conversion -> linear probe.

    python tools/demo.py                       # SlotCon vs random init, ~7 min on 2 CPU cores
    python tools/demo.py --methods simclr      # VISSL's SimCLR vs random init, ~8.5 min
    python tools/demo.py --methods vice simclr # ViCE, SimCLR and both random inits, ~10.5 min
    python tools/demo.py --methods detection   # Mask R-CNN (detectron2) from SlotCon vs random
    python tools/demo.py --methods semisup     # ReCo / U2PL / supervised-only on 5% labels
    python tools/demo.py --methods virb        # ViRB sweep: the demo's encoders x 2 tasks
    python tools/demo.py --methods all         # SlotCon, ViCE, SimCLR, random inits, detection
    python tools/demo.py --bn-baselines        # + random weights with fitted BN statistics
    python tools/demo.py --out work_dirs/demo --fresh

Every step runs the project's real entry point in a subprocess, exactly as a user would:

1. ``tools/gen_synthetic_scenes.py``   the built-in data set (skipped when complete)
2. ``tools/run_distributed_engines.py`` self-supervised pretraining in VISSL
3. ``tools/convert_checkpoint.py``      VISSL checkpoint -> MMSeg backbone checkpoint (ResNet
   methods; ViCE's ``ViCEBackbone`` reads the VISSL checkpoint and its YAML directly)
4. ``tools/train.py`` + ``tools/test.py`` frozen-backbone linear probe in MMSeg, for each
   pretrained backbone and for the random init of each architecture (BatchNorm statistics
   (0, 1), i.e. no normalisation in eval mode). With ``--bn-baselines`` also random weights
   with BatchNorm statistics estimated on the pretraining views (the same pretraining run
   with learning rate 0 for 20 iterations: nothing else changes); docs/pretraining.md
   explains why the two random rows differ.

and prints one table (method, backbone, aAcc, mIoU, mAcc), also written to
OUT/results.{json,md}; for ViCE also pictures of its embeddings (OUT/embeddings_vice/), for
SlotCon the top images of its prototypes (OUT/slots_slotcon.png, tools/viz_slots.py).

``detection`` (needs detectron2, docs/install.md): the first ResNet-18 method given (SlotCon
unless SimCLR comes first) converted with ``--dst-format d2``, and a random init, each through
``tools/d2_train_net.py`` (Mask R-CNN R18-FPN on the scenes' car / person / pole instances,
COCO box and mask AP), one table in OUT/detection_results.{json,md} and a picture of the
predictions (OUT/detection_<method>.png, tools/d2_visualize.py).
``virb``: the ResNet-18 methods given (SlotCon by default), converted, and a random init, each
frozen over ViRB's two built-in tasks (``python -m virb.demo``: car counting, scene
segmentation); the summary table, and OUT/virb/summary.html with its plots.
How each method goes through these steps is its ``Recipe``.
Finished steps are skipped on a re-run (an interrupted demo resumes); ``--fresh`` restarts.
"""
import argparse
import dataclasses
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

METRICS = ('aAcc', 'mIoU', 'mAcc')


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One method's way from VISSL pretraining to the MMSeg linear probe."""
    pretrain_config: str       # VISSL config name (configs/config/<name>.yaml)
    probe_config: str          # MMSeg config of the linear probe
    backbone: str              # what the probe sees; one random-init row per backbone
    convert: bool              # checkpoint -> mmseg conversion first (ResNet backbones)
    batch_size: int            # images per pretraining step (20 steps estimate BN statistics)
    src_format: str = 'vissl'  # tools/convert_checkpoint.py --src-format of its checkpoint

    def probe_options(self, vissl_checkpoint, converted):
        """--cfg-options of the probe for this checkpoint (None, None = random init)."""
        if self.convert:
            return [f'model.backbone.checkpoint={converted or "None"}']
        return [f'model.backbone.vissl_config={self.vissl_yaml()}',
                f'model.backbone.checkpoint={vissl_checkpoint or "None"}']

    def vissl_yaml(self):
        return osp.join('configs', 'config', self.pretrain_config + '.yaml')


RECIPES = {
    'simclr': Recipe('pretrain/simclr/simclr_resnet18_synthetic_cpu',
                     'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py',
                     'ResNet-18 layer4 (512-d)', convert=True, batch_size=32),
    'slotcon': Recipe('pretrain/slotcon/slotcon_synthetic_cpu',
                      'configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py',
                      'ResNet-18 layer4 (512-d)', convert=True, batch_size=16,
                      src_format='slotcon'),  # the teacher's ResNet, as SlotCon transfers it
    'vice': Recipe('pretrain/vice/vice_synthetic_cpu',
                   'configs/mmseg/vice/fcn_linear_synthetic.py',
                   'DeepLabV3+ R18 embedding (128-d)', convert=False, batch_size=8),
}


ALL_METHODS = ('slotcon', 'vice', 'simclr')


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
            if any(k in line for k in ('loss:', 'Iter(', 'aAcc', 'Error', 'error:', 'wrote', 'ETA',
                                       'matched', 'REFUSED')):
                print('  ' + line.rstrip()[-160:], flush=True)
        proc.wait()
    if proc.returncode != 0:
        sys.exit(f'demo: step failed (exit {proc.returncode}) after {time.time() - start:.0f} s;'
                 f' see {log_path}')
    print(f'  done in {time.time() - start:.0f} s', flush=True)


BN_STATISTICS_STEPS = 20


def bn_statistics_only(recipe):
    """Overrides that turn a pretraining run into BN-statistics estimation: learning rate 0
    (every scheduler of the composite lr), 20 steps, one epoch. Weights stay as initialised."""
    return ['config.OPTIMIZER.num_epochs=1',
            f'config.DATA.TRAIN.DATA_LIMIT={BN_STATISTICS_STEPS * recipe.batch_size}',
            *[f'config.OPTIMIZER.param_schedulers.lr.schedulers.{i}.{end}=0.0'
              for i in (0, 1) for end in ('start_value', 'end_value')]]


def pretrain(method, data_root, out, name=None, extra=()):
    name = name or method
    ckpt_dir = osp.join(out, f'pretrain_{name}')
    if not glob.glob(osp.join(ckpt_dir, 'model_final_checkpoint_phase*.torch')):
        run([sys.executable, 'tools/run_distributed_engines.py',
             f'config={RECIPES[method].pretrain_config}',
             f'config.CHECKPOINT.DIR={ckpt_dir}',
             f'config.DATA.TRAIN.DATA_PATHS=[{data_root}]', *extra],
            osp.join(out, 'logs', f'pretrain_{name}.log'))
    final = sorted(glob.glob(osp.join(ckpt_dir, 'model_final_checkpoint_phase*.torch')))
    if not final:
        sys.exit(f'demo: no final checkpoint in {ckpt_dir}')
    return final[-1]


def convert(method, recipe, vissl_checkpoint, out):
    converted = osp.join(out, f'{method}_resnet18_mmseg.pth')
    if not osp.exists(converted):
        run([sys.executable, 'tools/convert_checkpoint.py', vissl_checkpoint, converted,
             '--src-format', recipe.src_format, '--dst-format', 'mmseg',
             '--report-json', osp.join(out, f'{method}_conversion_report.json')],
            osp.join(out, 'logs', f'convert_{method}.log'))
    return converted


def linear_probe(name, recipe, backbone_options, data_root, out):
    """Train and test the linear probe; returns the test metrics dict."""
    work_dir = osp.join(out, f'probe_{name}')
    metrics_file = osp.join(work_dir, 'metrics_test.json')
    options = [*backbone_options,
               'train_cfg.val_begin=1000000',  # no validation in training: test.py runs next
               f'train_dataloader.dataset.data_root={data_root}',
               f'val_dataloader.dataset.data_root={data_root}',
               f'test_dataloader.dataset.data_root={data_root}']
    if not osp.exists(metrics_file):
        last = osp.join(work_dir, 'last_checkpoint')
        run([sys.executable, 'tools/train.py', recipe.probe_config, '--work-dir', work_dir,
             '--resume', '--cfg-options', *options],
            osp.join(out, 'logs', f'probe_{name}_train.log'))
        with open(last) as f:
            probe_checkpoint = f.read().strip()
        run([sys.executable, 'tools/test.py', recipe.probe_config, probe_checkpoint,
             '--work-dir', work_dir, '--cfg-options', *options],
            osp.join(out, 'logs', f'probe_{name}_test.log'))
    with open(metrics_file) as f:
        return json.load(f)


def probe_vissl_checkpoint(name, recipe, vissl_checkpoint, data_root, out):
    """Convert (if the recipe needs it) and probe one VISSL checkpoint; the test metrics."""
    converted = convert(name, recipe, vissl_checkpoint, out) if recipe.convert else None
    return linear_probe(name, recipe, recipe.probe_options(vissl_checkpoint, converted),
                        data_root, out)


def visualise_embeddings(method, recipe, vissl_checkpoint, data_root, out):
    """Dense-embedding methods: PCA and k-means pictures of 4 val images (OUT/embeddings_*)."""
    folder = osp.join(out, f'embeddings_{method}')
    if not osp.exists(osp.join(folder, 'index.html')):
        run([sys.executable, 'tools/visualize_vice_embeddings.py',
             osp.join(data_root, 'leftImg8bit', 'val'), '--recursive',
             '--config', recipe.vissl_yaml(), '--checkpoint', vissl_checkpoint,
             '--out', folder, '--num-images', '4', '--size', '0'],
            osp.join(out, 'logs', f'embeddings_{method}.log'))


def visualise_slots(vissl_checkpoint, data_root, out):
    """SlotCon: the top val images of 8 of its prototypes (OUT/slots_slotcon.png)."""
    picture = osp.join(out, 'slots_slotcon.png')
    if not osp.exists(picture):
        run([sys.executable, 'tools/viz_slots.py', vissl_checkpoint,
             osp.join(data_root, 'leftImg8bit', 'val'), '--recursive', '--resize', '0',
             '--crop', '0', '--topk', '4', '--sampling', '8', '--out', picture],
            osp.join(out, 'logs', 'viz_slots.log'))


DETECTION_CONFIG = 'configs/d2/synthetic_mask_rcnn_R_18_FPN_cpu.yaml'
DETECTION_METRICS = (('bbox', 'AP'), ('bbox', 'AP50'), ('segm', 'AP'), ('segm', 'AP50'))
TRANSFER_METHODS = ('slotcon', 'simclr')  # ResNet-18 pretraining sent to detection / semisup


def detection_run(name, weights, out):
    """Train + evaluate the synthetic Mask R-CNN (tools/d2_train_net.py) from ``weights``
    ('' = random init); returns detectron2's {task: {metric: value}}."""
    out_dir = osp.join(out, f'detection_{name}')
    results = osp.join(out_dir, 'results.json')
    if not osp.exists(results):
        run([sys.executable, 'tools/d2_train_net.py', '--config-file', DETECTION_CONFIG,
             '--resume', 'MODEL.WEIGHTS', weights, 'OUTPUT_DIR', out_dir],
            osp.join(out, 'logs', f'detection_{name}.log'))
    with open(results) as f:
        return json.load(f)['results']


def detection_picture(name, out):
    """Predicted boxes and masks beside the ground truth for 4 val images."""
    picture = osp.join(out, f'detection_{name}.png')
    if not osp.exists(picture):
        run([sys.executable, 'tools/d2_visualize.py', '--config-file', DETECTION_CONFIG,
             '--out', picture, '--num-images', '4', 'MODEL.WEIGHTS',
             osp.join(out, f'detection_{name}', 'model_final.pth')],
            osp.join(out, 'logs', f'detection_picture_{name}.log'))


def detection_rows(method, vissl_checkpoint, out):
    """The detection table: ``method``'s converted trunk and a random init, same run."""
    weights = osp.join(out, f'{method}_resnet18_d2.pkl')
    if not osp.exists(weights):
        run([sys.executable, 'tools/convert_checkpoint.py', vissl_checkpoint, weights,
             '--src-format', RECIPES[method].src_format, '--dst-format', 'd2',
             '--report-json', osp.join(out, f'{method}_d2_conversion_report.json')],
            osp.join(out, 'logs', f'convert_{method}_d2.log'))
    rows = []
    for name, init, file in ((method, f'VISSL {method} ({osp.basename(vissl_checkpoint)})',
                              weights), ('random', 'random (detectron2 init, seed 0)', '')):
        results = detection_run(name, file, out)
        rows.append(dict(method='random init' if name == 'random' else method, init=init,
                         **{f'{task} {metric}': results[task][metric]
                            for task, metric in DETECTION_METRICS}))
    detection_picture(method, out)
    return rows


def write_detection_table(rows, out):
    columns = [f'{task} {metric}' for task, metric in DETECTION_METRICS]
    table = ('| method | init | ' + ' | '.join(columns) + ' |\n'
             + '|---|---|' + '---|' * len(columns) + '\n'
             + ''.join(f"| {r['method']} | {r['init']} | "
                       + ' | '.join(f'{r[c]:.2f}' for c in columns) + ' |\n' for r in rows))
    atomic_write_text('# Mask R-CNN R18-FPN on the synthetic scenes (val, COCO AP)\n\n' + table,
                      osp.join(out, 'detection_results.md'))
    atomic_write_json(rows, osp.join(out, 'detection_results.json'))
    return table


RECO_SYNTHETIC = 'configs/mmseg/semisup/reco_r18_synthetic_5pct.py'
U2PL_SYNTHETIC = 'configs/mmseg/semisup/u2pl_r18_synthetic_5pct.py'


def semisup_rows(method, vissl_checkpoint, data_root, out):
    """Semi-supervised segmentation with 5% of the labels (the shipped split): supervised
    only, ReCo, U2PL from random init, and from ``method``'s pretrained ResNet-18 supervised
    only and ReCo (ReCo's network), supervised only and U2PL (U2PL's network)."""
    pretrained = convert(method, RECIPES[method], vissl_checkpoint, out)
    start = f'model.network.init_cfg.checkpoint={pretrained}'
    u2pl_start = [start, 'model.network.deep_stem=False']  # the pretrained 7x7 stem
    supervised = 'model.method=supervised'
    runs = [  # (row name, work folder under OUT, config, --cfg-options)
        ('supervised only', 'semisup_supervised', RECO_SYNTHETIC, [supervised]),
        ('ReCo + ClassMix', 'semisup_reco', RECO_SYNTHETIC, []),
        ('U2PL (CutMix)', 'semisup_u2pl', U2PL_SYNTHETIC, []),
        (f'supervised only, {method} init', 'semisup_supervised_pretrained', RECO_SYNTHETIC,
         [supervised, start]),
        (f'ReCo + ClassMix, {method} init', 'semisup_reco_pretrained', RECO_SYNTHETIC, [start]),
        (f'supervised only (U2PL network), {method} init',
         'semisup_supervised_u2plnet_pretrained', U2PL_SYNTHETIC, [supervised, *u2pl_start]),
        (f'U2PL (CutMix), {method} init', 'semisup_u2pl_pretrained', U2PL_SYNTHETIC,
         u2pl_start)]
    rows = []
    for name, folder, config, options in runs:
        work_dir = osp.join(out, folder)
        metrics_file = osp.join(work_dir, 'metrics_val.json')
        if not osp.exists(metrics_file):
            root_options = [f'train_dataloader.dataset.datasets.{i}.data_root={data_root}'
                            for i in (0, 1)]
            run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir, '--resume',
                 '--cfg-options', *options, *root_options,
                 f'val_dataloader.dataset.data_root={data_root}',
                 f'test_dataloader.dataset.data_root={data_root}'],
                osp.join(out, 'logs', osp.basename(work_dir) + '.log'))
        with open(metrics_file) as f:
            metrics = json.load(f)
        rows.append(dict(method=name, **{m: metrics[m] for m in METRICS}))
    return rows


def virb_summary(methods, data_root, out):
    """ViRB over its two built-in tasks for the converted ResNet-18 of each of ``methods``
    (pretrained here if needed) and a random init; prints and returns the summary table."""
    encoders = {}
    for method in methods:
        if method in TRANSFER_METHODS:
            vissl_checkpoint = pretrain(method, data_root, out)
            encoders[method] = convert(method, RECIPES[method], vissl_checkpoint, out)
    options = [f'--encoder={name}={path}' for name, path in encoders.items()]
    virb_out = osp.join(out, 'virb')
    run([sys.executable, '-m', 'virb.demo', *options, '--encoder=random=', '--data-root',
         data_root, '--out', virb_out, '--workers', '2'], osp.join(out, 'logs', 'virb.log'))
    with open(osp.join(virb_out, 'summary.md')) as f:
        table = f.read()
    print(f'\nViRB, frozen encoders on the synthetic tasks:\n\n{table}')
    print(f'written: {osp.join(virb_out, "summary.md")}, {osp.join(virb_out, "summary.html")}')
    return table


def write_semisup_table(rows, out):
    table = ('| method | aAcc | mIoU | mAcc |\n|---|---|---|---|\n'
             + ''.join(f"| {r['method']} | " + ' | '.join(f'{r[m]:.2f}' for m in METRICS)
                       + ' |\n' for r in rows))
    atomic_write_text('# Semi-supervised segmentation, synthetic scenes, 5% labelled (val)\n\n'
                      + table, osp.join(out, 'semisup_results.md'))
    atomic_write_json(rows, osp.join(out, 'semisup_results.json'))
    return table


def detectron2_installed():
    import importlib.util
    return importlib.util.find_spec('detectron2') is not None


def table_row(method, recipe, init, metrics):
    """One row of the results table."""
    return dict(method=method, backbone=recipe.backbone, init=init,
                **{m: metrics[m] for m in METRICS})


def write_table(rows, out):
    header = ('| method | backbone | init | aAcc | mIoU | mAcc |\n'
              '|---|---|---|---|---|---|\n')
    lines = [f"| {r['method']} | {r['backbone']} | {r['init']} | "
             + ' | '.join(f'{r[m]:.2f}' for m in METRICS) + ' |' for r in rows]
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
    parser.add_argument('--methods', nargs='+', default=['slotcon'],
                        choices=sorted(RECIPES) + ['detection', 'semisup', 'virb', 'all'],
                        help='pretraining methods, in table order (default: slotcon; all = '
                             + ' '.join(ALL_METHODS) + ', + detection with detectron2); '
                             'detection: Mask R-CNN transfer of the first of '
                             + '/'.join(TRANSFER_METHODS) + ' given (default slotcon) '
                             'beside random init; semisup: supervised-only / ReCo / U2PL with '
                             '5%% of the labels, and ReCo from the first ResNet-18 method; '
                             'virb: the ResNet-18 encoders and random init over ViRB\'s two '
                             'built-in tasks')
    parser.add_argument('--bn-baselines', action='store_true',
                        help='also probe random weights with BatchNorm statistics of 20 lr-0 '
                             'pretraining steps (~1.5 min per backbone)')
    parser.add_argument('--fresh', action='store_true', help='delete OUT first')
    args = parser.parse_args()
    detection = 'detection' in args.methods
    semisup = 'semisup' in args.methods
    virb = 'virb' in args.methods
    if 'all' in args.methods:
        detection = detectron2_installed()
        if not detection:
            print('demo: detectron2 is not installed, so "all" leaves out detection')
        args.methods = list(ALL_METHODS)
    if detection and not detectron2_installed():
        sys.exit('demo: --methods detection needs detectron2 (docs/install.md, "detectron2"): '
                 'DENSESSL_DETECTRON2=<wheel|folder|git URL> bash tools/setup_env.sh')
    probe_methods = [m for m in args.methods if m in RECIPES]
    transfer_method = next((m for m in probe_methods if m in TRANSFER_METHODS), 'slotcon')
    out = osp.abspath(args.out)
    data_root = osp.abspath(args.data_root)
    if args.fresh and osp.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    write_manifest(out, vars(args), seeds={'pretrain': 0, 'probe': 0, 'detection': 0},
                   kind='demo')
    start = time.time()

    run([sys.executable, 'tools/gen_synthetic_scenes.py', '--out', data_root],
        osp.join(out, 'logs', 'data.log'))
    os.environ['DENSESSL_SYNTHETIC_SCENES'] = data_root  # d2_plugins' synthetic_scenes_*
    rows = []
    for method in probe_methods:
        recipe = RECIPES[method]
        vissl_checkpoint = pretrain(method, data_root, out)
        metrics = probe_vissl_checkpoint(method, recipe, vissl_checkpoint, data_root, out)
        if not recipe.convert:  # a dense embedding (ViCE): pictures of it
            visualise_embeddings(method, recipe, vissl_checkpoint, data_root, out)
        if method == 'slotcon':  # what its prototypes group
            visualise_slots(vissl_checkpoint, data_root, out)
        rows.append(table_row(method, recipe,
                              f'VISSL {method} ({osp.basename(vissl_checkpoint)})', metrics))
    # the random baselines of each backbone, probed exactly as the pretrained one
    first_method_of_backbone = {}
    for method in probe_methods:
        first_method_of_backbone.setdefault(RECIPES[method].backbone, method)
    for method in first_method_of_backbone.values():
        recipe = RECIPES[method]
        # one random row per backbone; the ResNet-18's keeps the demo's first directory name
        name = 'random' if recipe.backbone == RECIPES['simclr'].backbone else f'random_{method}'
        metrics = linear_probe(name, recipe, recipe.probe_options(None, None), data_root, out)
        rows.append(table_row('random init', recipe, 'random (seed 0), BN statistics (0, 1)',
                              metrics))
        if not args.bn_baselines:
            continue
        name = f'random_bn_{method}'
        vissl_checkpoint = pretrain(method, data_root, out, name, bn_statistics_only(recipe))
        metrics = probe_vissl_checkpoint(name, recipe, vissl_checkpoint, data_root, out)
        rows.append(table_row('random init', recipe, f'random, BN statistics of '
                              f'{BN_STATISTICS_STEPS} pretraining steps (lr 0)', metrics))

    if rows:
        table = write_table(rows, out)
        print(f'\nLinear probe, synthetic scenes val ({time.time() - start:.0f} s so far):\n')
        print(table)
        print(f'written: {osp.join(out, "results.md")}, {osp.join(out, "results.json")}')
    if semisup:
        vissl_checkpoint = pretrain(transfer_method, data_root, out)
        table = write_semisup_table(
            semisup_rows(transfer_method, vissl_checkpoint, data_root, out), out)
        print(f'\nSemi-supervised segmentation, synthetic scenes val, 5% labelled '
              f'({time.time() - start:.0f} s so far):\n')
        print(table)
        print(f'written: {osp.join(out, "semisup_results.md")}')
    if virb:
        virb_summary(probe_methods or [transfer_method], data_root, out)
    if detection:
        vissl_checkpoint = pretrain(transfer_method, data_root, out)
        table = write_detection_table(
            detection_rows(transfer_method, vissl_checkpoint, out), out)
        print(f'\nMask R-CNN R18-FPN, synthetic scenes val, COCO AP '
              f'({time.time() - start:.0f} s in all):\n')
        print(table)
        print(f'written: {osp.join(out, "detection_results.md")}, '
              f'{osp.join(out, "detection_results.json")}, '
              f'{osp.join(out, f"detection_{transfer_method}.png")}')


if __name__ == '__main__':
    main()
