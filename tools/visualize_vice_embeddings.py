#!/usr/bin/env python
"""Visualise the dense 128-d embeddings of a ViCE DeepLabV3+ trunk on a few images.

    python tools/visualize_vice_embeddings.py data/synthetic_scenes/leftImg8bit/val \
        --config configs/config/pretrain/vice/<run>.yaml \
        --checkpoint work_dirs/vice/model_final_checkpoint_phase11.torch --out work_dirs/vice_viz
    python tools/visualize_vice_embeddings.py 'photos/*.jpg' a.png b.png --config RUN.yaml \
        --random-init --out /tmp/viz --size 256 --k 6 --num-images 4

IMAGES are files, folders (their image files, sorted; ``--recursive`` for sub-folders) or glob
patterns (quote them); the first ``--num-images`` of the sorted, de-duplicated list are used.
Each image is resized to ``--size`` pixels on its short side, ImageNet-normalised and passed
through the trunk (``mmseg_plugins.vice.ViCEBackbone``: built from the VISSL YAML's
config.MODEL.TRUNK, weights from the VISSL checkpoint with strict key / shape checks), giving
L2-normalised embeddings (128, H, W). For every image ``OUT/NNN_<stem>.png`` shows, side by side:

    image | PCA-to-RGB of the embeddings | k-means cluster map

PCA (3 components) and k-means (``--k`` clusters, seeded, on up to ``--kmeans-max-pixels``
pixels sampled from all images together) are fitted over all the chosen images jointly, so
colours mean the same in every panel; PCA components are scaled to [0, 1] by their 1st / 99th
percentiles over all pixels. ``OUT/index.html`` shows them all. Files are written atomically.
The embeddings of all chosen images are held in memory: 128 x H x W x 4 bytes per image
(64 MiB at 256 x 512).
"""
import argparse
import glob
import html
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from densessl import embedding_maps
from densessl.atomic_io import atomic_write, atomic_write_text

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PANEL_GAP = 4  # white pixels between the three panels


class VisualiserError(RuntimeError):
    """Bad input to the tool; the message names the offending path / option."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--config', required=True,
                        help='VISSL experiment YAML of the run (config.MODEL.TRUNK)')
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument('--checkpoint', help='VISSL checkpoint of the trunk')
    weights.add_argument('--random-init', action='store_true',
                         help='no checkpoint: a randomly initialised trunk (smoke tests only)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num-images', type=int, default=8, help='use the first N images')
    parser.add_argument('--size', type=int, default=256,
                        help='resize the short side to this many pixels (0: keep the size)')
    parser.add_argument('--k', type=int, default=8, help='number of k-means clusters')
    parser.add_argument('--kmeans-max-pixels', type=int, default=100000,
                        help='fit k-means on at most this many pixels sampled from all images')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random init, the pixel sample and k-means')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--recursive', action='store_true',
                        help='also take images in sub-folders of folder arguments')
    args = parser.parse_args(argv)
    for name in ('num_images', 'k', 'kmeans_max_pixels'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")}={getattr(args, name)} must be >= 1')
    if args.size < 0:
        parser.error(f'--size={args.size} must be >= 0 (0 keeps the image size)')
    return args


def _is_image(path):
    return osp.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


def collect_images(sources, num_images, recursive=False):
    """Files, folders and glob patterns -> the first ``num_images`` image paths (sorted within
    each source, in the order of the sources, without duplicates)."""
    found = []
    for source in sources:
        if any(c in source for c in '*?['):
            matches = sorted(p for p in glob.glob(source, recursive=True) if _is_image(p))
            if not matches:
                raise VisualiserError(f'{source}: the pattern matches no image file '
                                      f'({", ".join(IMAGE_EXTENSIONS)})')
        elif osp.isdir(source):
            pattern = osp.join(source, '**', '*') if recursive else osp.join(source, '*')
            matches = sorted(p for p in glob.glob(pattern, recursive=recursive) if _is_image(p))
            if not matches:
                raise VisualiserError(
                    f'{source}: no image files ({", ".join(IMAGE_EXTENSIONS)}) in this folder'
                    + ('' if recursive else '; use --recursive for sub-folders'))
        elif osp.isfile(source):
            matches = [source]
        else:
            raise VisualiserError(f'{source}: no such file or folder')
        found.extend(osp.abspath(p) for p in matches)
    return list(dict.fromkeys(found))[:num_images]


def load_image(path, size):
    """RGB uint8 (H, W, 3), bilinearly resized so that the short side is ``size`` (0: as is)."""
    try:
        with Image.open(path) as img:
            img = img.convert('RGB')
    except (UnidentifiedImageError, OSError) as e:
        raise VisualiserError(f'{path}: cannot be read as an image ({e})') from e
    if size:
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                         Image.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8)  # a writable copy


def to_input(image, device):
    """(H, W, 3) uint8 -> (1, 3, H, W) float, ImageNet-normalised."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return ((x - mean) / std)[None].to(device)


def resolve_device(name):
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise VisualiserError(f'--device {name}: not a device name ({e})') from e
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise VisualiserError(f'--device {name}: CUDA is not available here; use --device cpu')
    return device


def build_backbone(args):
    """``ViCEBackbone`` from --config and --checkpoint (or random init); its errors name the
    YAML / checkpoint problem (missing keys, shape mismatches)."""
    if not osp.isfile(args.config):
        raise VisualiserError(f'--config {args.config}: no such file; give the VISSL YAML of '
                              f'the pretraining run (with config.MODEL.TRUNK.NAME: deeplabv3plus)')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise VisualiserError(f'--checkpoint {args.checkpoint}: no such file; give the VISSL '
                              f'checkpoint (e.g. model_final_checkpoint_phaseN.torch), or '
                              f'--random-init for a smoke test')
    from mmseg_plugins.vice.vice_backbone import ViCEBackbone, ViCECheckpointError
    from densessl.vice.deeplabv3plus import PretrainedWeightsError
    torch.manual_seed(args.seed)
    try:
        return ViCEBackbone(vissl_config=args.config, checkpoint=args.checkpoint)
    except (ViCECheckpointError, PretrainedWeightsError, FileNotFoundError, ValueError,
            KeyError) as e:
        raise VisualiserError(e.args[0] if isinstance(e, KeyError) else str(e)) from e


def side_by_side(panels, gap=PANEL_GAP):
    """(H, W_i, 3) uint8 panels -> (H, sum W_i + gap * (n - 1), 3), white gaps."""
    height = panels[0].shape[0]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts = []
    for panel in panels:
        parts.extend([panel, spacer])
    return np.concatenate(parts[:-1], axis=1)


def save_png(array, path):
    atomic_write(path, lambda f: Image.fromarray(array).save(f, format='PNG'), 'wb')


def output_name(index, path):
    stem = ''.join(c if c.isalnum() or c in '-_.' else '_'
                   for c in osp.splitext(osp.basename(path))[0])
    return f'{index:03d}_{stem}.png'


def write_index(out, entries, settings):
    """``out/index.html``: every figure with its source image, and the settings."""
    rows = ''.join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>'
                   for k, v in settings.items())
    figures = ''.join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(source)}">'
        f'<figcaption>{html.escape(source)}</figcaption></figure>\n' for name, source in entries)
    page = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            '<title>ViCE embeddings</title><style>body{font-family:sans-serif}'
            'img{max-width:100%}figure{margin:1em 0}th{text-align:left;padding-right:1em}'
            '</style></head><body>\n<h1>ViCE embeddings</h1>\n'
            '<p>Each row: image | PCA-to-RGB of the L2-normalised embeddings | k-means clusters. '
            'PCA and k-means are fitted over all images jointly.</p>\n'
            f'<table>{rows}</table>\n{figures}</body></html>\n')
    return atomic_write_text(page, osp.join(out, 'index.html'))


def run(args):
    paths = collect_images(args.images, args.num_images, args.recursive)
    images = [load_image(p, args.size) for p in paths]
    device = resolve_device(args.device)
    backbone = build_backbone(args).to(device)
    start = time.time()
    embeddings = []
    for path, image in zip(paths, images):
        (z,) = backbone(to_input(image, device))
        embeddings.append(z[0].float().cpu())
        print(f'{path}: embeddings {tuple(z.shape[1:])}', flush=True)
    print(f'forward passes: {time.time() - start:.1f} s')

    start = time.time()
    pca = embedding_maps.EmbeddingPCA(embeddings)
    sample = embedding_maps.sample_pixels(embeddings, args.kmeans_max_pixels, seed=args.seed)
    if args.k > sample.shape[0]:
        raise VisualiserError(f'--k {args.k}: more clusters than pixels ({sample.shape[0]})')
    centroids = embedding_maps.fit_kmeans(sample, args.k, seed=args.seed)
    palette = embedding_maps.cluster_palette(args.k)
    print(f'PCA and k-means fits: {time.time() - start:.1f} s')

    os.makedirs(args.out, exist_ok=True)
    entries = []
    for index, (path, image, z) in enumerate(zip(paths, images, embeddings)):
        pca_rgb = np.round(pca.to_rgb(z) * 255).astype(np.uint8)
        clusters = embedding_maps.colour_clusters(embedding_maps.cluster_map(z, centroids),
                                                  palette)
        name = output_name(index, path)
        save_png(side_by_side([image, pca_rgb, clusters]), osp.join(args.out, name))
        entries.append((name, path))
    ratios = ', '.join(f'{r:.3f}' for r in pca.explained_variance_ratio.tolist())
    settings = {'config': osp.abspath(args.config),
                'checkpoint': (osp.abspath(args.checkpoint) if args.checkpoint
                               else 'none (--random-init)'),
                'images': len(paths), 'short side': args.size or 'original',
                'k-means clusters': args.k, 'k-means fit pixels': sample.shape[0],
                'seed': args.seed, 'PCA explained variance (3 components)': ratios}
    index_path = write_index(args.out, entries, settings)
    print(f'wrote {len(entries)} figures and {index_path}')
    return [osp.join(args.out, name) for name, _ in entries]


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except VisualiserError as e:
        sys.exit(f'visualize_vice_embeddings: error: {e}')


if __name__ == '__main__':
    main()
