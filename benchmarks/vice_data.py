"""Benchmark: throughput of ViCE's dense data pipeline (dense_ssl_dataset), one process.

Two shapes: ViCE's exp27 (5 views x 400 px, SLIC grid 20 px, standardised side >= 500) on
640x480 synthetic street scenes (COCO's typical size), and the small synthetic config (3 views
x 96 px, SLIC grid 10 px, side >= 128) on the built-in 128x256 scenes. Each sample is a full
``__getitem__`` (load, views, SLIC, masks, VISSL's photometric transforms, noise); the table
also splits it into the view / label part and the rest, and gives the learnable regions per
view. The images are generated into a temporary folder first.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vice_data.py [--samples 20] [--threads 1]
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import vissl_plugins  # noqa: E402,F401  (registers sources and dataset types)
from densessl import synthetic_scenes  # noqa: E402
from vissl_plugins.vice.dense_ssl_dataset import DenseSSLDataset, generate_dense_views  # noqa: E402

TRANSFORMS = [
    {'name': 'ImgPilColorDistortion', 'strength': 1.0},
    {'name': 'ImgPilGaussianBlur', 'p': 0.5, 'radius_min': 0.1, 'radius_max': 2.0},
    {'name': 'ToTensor'},
    {'name': 'Normalize', 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]},
]
SHAPES = {  # name: (image height, width, DENSE_SSL overrides)
    'exp27': (480, 640, {}),
    'synthetic': (128, 256, {'VIEW_N': 3, 'VIEW_SIZE': 96, 'STANDARDIZE_MIN_SIDE': 128,
                             'SLIC_REGION_SIZE': 10}),
}


def build_dataset(root, dense):
    import vissl.config
    from vissl.config import AttrDict

    from vissl_plugins.config_check import with_plugin_defaults
    base = OmegaConf.load(osp.join(osp.dirname(vissl.config.__file__), 'defaults.yaml'))
    data = {'DATASET_TYPE': 'dense_ssl_dataset', 'TRANSFORMS': TRANSFORMS,
            'DATA_SOURCES': ['synthetic_scenes'], 'DATASET_NAMES': ['synthetic_scenes'],
            'DATA_PATHS': [root], 'DENSE_SSL': dense}
    cfg = with_plugin_defaults(OmegaConf.merge(base, {'config': {'DATA': {'TRAIN': data}}}))
    return DenseSSLDataset(cfg=AttrDict(OmegaConf.to_container(cfg.config, resolve=True)),
                           split='TRAIN')


def measure(dataset, samples):
    """(samples/s, ms per sample, ms of generate_dense_views, regions per view)."""
    n = len(dataset)
    dataset[0]  # warm-up (imports, first-use allocations)
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % n]
    total = (time.perf_counter() - start) / samples
    views_time, regions = 0.0, []
    for i in range(samples):
        image, _ = dataset.load_image(i % n)
        start = time.perf_counter()
        views = generate_dense_views(image, dataset.options, dataset.sample_rng(i, 0))
        views_time += time.perf_counter() - start
        regions += [len(np.unique(m)) - 1 for m in views.superpixels]
    return 1 / total, 1000 * total, 1000 * views_time / samples, float(np.mean(regions))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=20)
    parser.add_argument('--threads', type=int, default=1, help='torch / OpenCV threads')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import cv2
    cv2.setNumThreads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (height, width, dense) in SHAPES.items():
            root = osp.join(tmp, name)
            synthetic_scenes.generate(root, synthetic_scenes.SyntheticScenesConfig(
                num_train=0, num_val=0, num_unlabeled=min(args.samples, 16), height=height,
                width=width), progress=False)
            dataset = build_dataset(root, dense)
            o = dataset.options
            rate, ms, ms_views, regions = measure(dataset, args.samples)
            rows.append(f'| {name} | {width}x{height} | {o.VIEW_N} x {o.VIEW_SIZE} | '
                        f'{rate:.2f} | {ms:.0f} | {ms_views:.0f} | {ms - ms_views:.0f} | '
                        f'{regions:.0f} |')
    print(f'dense_ssl_dataset, 1 process, {args.threads} thread(s), {args.samples} samples per row')
    print('| shape | image | views x px | samples/s | ms/sample | ms views+SLIC+masks | '
          'ms load+photometric+noise | learnable regions/view |')
    print('|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
