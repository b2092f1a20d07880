"""Benchmark: throughput of SlotCon's two-crop data pipeline (slotcon_two_crop), one process.

Two shapes: the original's (2 views x 224 px, defaults of DATA.TRAIN.TWO_CROP) on 640x480
synthetic street scenes (COCO's typical size), and 2 views x 96 px on the built-in 256x128
scenes. Each sample is a full ``__getitem__`` (load the PNG, crop pair, flips, colour
augmentation of both views, normalisation); the table splits it into the core
``two_crop_views`` (and, within it, the crop-pair sampling and the colour augmentation of each
view, timed by calling the same core functions) and the rest (image loading). The images are
generated into a temporary folder first.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/slotcon_data.py [--samples 50] [--threads 1]
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision.transforms.functional as TF
from omegaconf import OmegaConf
from torchvision.transforms import InterpolationMode

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import vissl_plugins  # noqa: E402,F401  (registers sources and dataset types)
from densessl import synthetic_scenes  # noqa: E402
from densessl.slotcon.two_crop import photometric, sample_crop_pair, two_crop_views  # noqa: E402
from vissl_plugins.slotcon.two_crop_dataset import SlotConTwoCropDataset  # noqa: E402

SHAPES = {  # name: (image height, width, TWO_CROP overrides)
    'original': (480, 640, {}),
    'synthetic': (128, 256, {'SIZE': 96}),
}


def build_dataset(root, two_crop):
    import vissl.config
    from vissl.config import AttrDict

    from vissl_plugins.config_check import with_plugin_defaults
    base = OmegaConf.load(osp.join(osp.dirname(vissl.config.__file__), 'defaults.yaml'))
    data = {'DATASET_TYPE': 'slotcon_two_crop', 'DATA_SOURCES': ['synthetic_scenes'],
            'DATASET_NAMES': ['synthetic_scenes'], 'DATA_PATHS': [root], 'TWO_CROP': two_crop}
    cfg = with_plugin_defaults(OmegaConf.merge(base, {'config': {'DATA': {'TRAIN': data}}}))
    return SlotConTwoCropDataset(cfg=AttrDict(OmegaConf.to_container(cfg.config, resolve=True)),
                                 split='TRAIN')


def timed(function, repeats):
    start = time.perf_counter()
    for i in range(repeats):
        function(i)
    return 1000 * (time.perf_counter() - start) / repeats


def measure(dataset, samples):
    """ms per sample: full __getitem__, two_crop_views, crop pair, colour of view 1 / view 2."""
    n, o = len(dataset), dataset.options
    images = [dataset.load_image(i)[0] for i in range(n)]
    dataset[0]  # warm-up (imports, first-use allocations)
    full = timed(lambda i: dataset[i % n], samples)
    core = timed(lambda i: two_crop_views(images[i % n], o, dataset.sample_rng(i)), samples)
    width, height = images[0].size
    crops = timed(lambda i: sample_crop_pair(width, height, o, dataset.sample_rng(i)), samples)
    view = TF.resized_crop(images[0], 0, 0, height, width, [o.size, o.size],
                           InterpolationMode.BICUBIC)
    colour = [timed(lambda i: photometric(view, aug, dataset.sample_rng(i)), samples)
              for aug in (o.view1, o.view2)]
    return full, core, crops, colour


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=50)
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (height, width, two_crop) in SHAPES.items():
            root = osp.join(tmp, name)
            synthetic_scenes.generate(root, synthetic_scenes.SyntheticScenesConfig(
                num_train=0, num_val=0, num_unlabeled=min(args.samples, 16), height=height,
                width=width), progress=False)
            dataset = build_dataset(root, two_crop)
            full, core, crops, colour = measure(dataset, args.samples)
            rows.append(f'| {name} | {width}x{height} | 2 x {dataset.options.size} | '
                        f'{1000 / full:.1f} | {full:.1f} | {core:.1f} | {crops:.2f} | '
                        f'{colour[0]:.1f} | {colour[1]:.1f} | {full - core:.1f} |')
    print(f'slotcon_two_crop, 1 process, {args.threads} thread(s), {args.samples} samples per row')
    print('| shape | image | views x px | samples/s | ms/sample | ms two_crop_views | '
          'ms crop pair | ms colour view 1 | ms colour view 2 | ms load |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
