#!/usr/bin/env python
"""What SlotCon's prototypes group: the top-k images of each prototype, with the pixels it
owns (its argmax mask) overlaid, as one PNG grid (rows: rank 1..k, columns: prototypes).

    python tools/viz_slots.py work_dirs/slotcon/model_final_checkpoint_phase799.torch \\
        /data/coco/val2017 --out work_dirs/slotcon/viz_slots.png --topk 5 --sampling 16
    python tools/viz_slots.py ckpt_epoch_800.pth /data/coco/val2017 --prototypes 3 17 42

The checkpoint is a densessl VISSL SlotCon checkpoint or one of SlotCon's own
(``main_pretrain.py``); its teacher (encoder, projector, prototypes; ``--use-student`` for the
student) is read with every key checked. Images are resized (short side ``--resize``) and
centre-cropped (``--crop``), as SlotCon's viz_slots does for COCO val2017 (256 / 224);
``--resize 0 --crop 0`` keeps them as they are (equal sizes needed then). The score of an image
for a prototype is the mean cosine similarity over the pixels whose argmax it is
(densessl/slotcon/prototype_retrieval.py). Also writes OUT.json: the chosen prototypes and
their image files in rank order.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from densessl.atomic_io import atomic_write_json
from densessl.slotcon.prototype_retrieval import owner_masks, prototype_scores, top_images
from densessl.slotcon.eval_model import SlotConCheckpointError, SlotConEvalModel

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
OVERLAY_COLOUR = np.array([255, 0, 0], dtype=np.float32)


def load_eval_model(path, use_student):
    """The teacher (or student) branch of a SlotCon checkpoint, every key checked."""
    from converters import ConversionError
    from converters.readers.slotcon import read_slotcon_branch
    try:
        resnet_state, head_state = read_slotcon_branch(path, use_student=use_student,
                                                       log=lambda line: None)
        return SlotConEvalModel.from_state_dicts(resnet_state, head_state)
    except (ConversionError, SlotConCheckpointError) as e:
        raise SlotConCheckpointError(f'{path}: {e}') from e


def list_images(folder, recursive):
    if not osp.isdir(folder):
        sys.exit(f'viz_slots: image folder {folder} does not exist')
    if recursive:
        files = [osp.join(root, name) for root, _, names in os.walk(folder) for name in names]
    else:
        files = [osp.join(folder, name) for name in os.listdir(folder)]
    files = sorted(f for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        sys.exit(f'viz_slots: no images ({", ".join(IMAGE_EXTENSIONS)}) in {folder}'
                 + ('' if recursive else '; add --recursive to search its sub-folders'))
    return files


def load_image(path, resize, crop):
    """(crop, crop, 3) uint8 RGB: short side resized to ``resize``, centre crop ``crop``."""
    try:
        image = Image.open(path).convert('RGB')
    except (OSError, ValueError) as e:
        sys.exit(f'viz_slots: cannot read image {path} ({e})')
    if resize:
        w, h = image.size
        scale = resize / min(w, h)
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                             Image.BILINEAR)
    if crop:
        w, h = image.size
        left, top = (w - crop) // 2, (h - crop) // 2
        image = image.crop((left, top, left + crop, top + crop))
    return np.asarray(image)


def to_tensor(images):
    """[(H, W, 3) uint8] -> (N, 3, H, W) float, ImageNet-normalised."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@torch.no_grad()
def score_maps(model, files, resize, crop, batch_size, progress=True):
    """Every image's score map dots (N, K, h, w) and the images (uint8)."""
    images, dots = [], []
    for start in range(0, len(files), batch_size):
        batch = [load_image(f, resize, crop) for f in files[start:start + batch_size]]
        shapes = {b.shape for b in batch + images[:1]}
        if len(shapes) > 1:
            sys.exit(f'viz_slots: images of different sizes {sorted(shapes)}; set --resize and '
                     f'--crop so that all are cropped alike')
        images += batch
        dots.append(model(to_tensor(batch)))
        if progress:
            print(f'\rencoded {len(images)}/{len(files)} images', end='', file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    return torch.cat(dots), images


def overlay(image, mask, alpha):
    """Blend ``alpha`` of the image with the overlay colour where ``mask`` is set."""
    mask = mask[..., None].astype(np.float32)
    blended = (1 - alpha) * image + alpha * OVERLAY_COLOUR
    return (mask * blended + (1 - mask) * image).astype(np.uint8)


def draw_grid(images, dots, indices, valid, prototypes, alpha, out, dpi, files):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    topk = indices.shape[1]
    height, width = images[0].shape[:2]
    fig, axes = plt.subplots(topk, len(prototypes), squeeze=False, dpi=dpi,
                             figsize=(2 * len(prototypes), 2 * topk * height / width + 0.3))
    for col, k in enumerate(prototypes):
        axes[0, col].set_title(f'prototype {k}' if valid[k, 0] else f'prototype {k}\n(owns no pixel)',
                               fontsize=8)
        for row in range(topk):
            ax = axes[row, col]
            ax.axis('off')
            if not valid[k, row]:
                continue
            n = int(indices[k, row])
            upsampled = F.interpolate(dots[n:n + 1], size=(height, width), mode='bilinear',
                                      align_corners=False)
            mask = owner_masks(upsampled)[0, k].numpy()
            ax.imshow(overlay(images[n].astype(np.float32), mask, alpha))
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, bbox_inches='tight')
    plt.close(fig)
    listing = {str(k): [files[int(indices[k, r])] for r in range(topk) if valid[k, r]]
               for k in prototypes}
    atomic_write_json({'checkpoint_prototypes': len(dots[0]), 'top_images': listing},
                      osp.splitext(out)[0] + '.json')


def choose_prototypes(args, num_prototypes, used):
    """--prototypes as given; --sampling N: N of the prototypes that own a pixel somewhere
    (``used``, sorted), at random; else every used prototype."""
    if args.prototypes:
        bad = [k for k in args.prototypes if not 0 <= k < num_prototypes]
        if bad:
            sys.exit(f'viz_slots: --prototypes {bad} out of range; the checkpoint has '
                     f'{num_prototypes} prototypes (0..{num_prototypes - 1})')
        return list(args.prototypes)
    if args.sampling > 0:
        rng = np.random.default_rng(args.seed)
        count = min(args.sampling, len(used))
        return sorted(int(k) for k in rng.choice(used, count, replace=False))
    return list(used)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='SlotCon checkpoint (densessl VISSL or original)')
    parser.add_argument('images', help='folder of images (e.g. COCO val2017)')
    parser.add_argument('--out', default='viz_slots.png', help='PNG to write (and OUT.json)')
    parser.add_argument('--topk', type=int, default=5, help='images per prototype')
    parser.add_argument('--sampling', type=int, default=0,
                        help='show this many prototypes, drawn at random (--seed) from those '
                             'that own pixels; 0 = all of those')
    parser.add_argument('--prototypes', type=int, nargs='+', help='show these prototypes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--use-student', action='store_true',
                        help='the student branch instead of the teacher')
    parser.add_argument('--resize', type=int, default=256, help='short side; 0 = keep')
    parser.add_argument('--crop', type=int, default=224, help='centre crop side; 0 = none')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--alpha', type=float, default=0.6, help='overlay opacity')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument('--recursive', action='store_true', help='search sub-folders too')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error('--topk must be >= 1')
    files = list_images(args.images, args.recursive)
    try:
        model = load_eval_model(args.checkpoint, args.use_student)
    except (SlotConCheckpointError, FileNotFoundError) as e:
        sys.exit(f'viz_slots: {e}')
    print(f'viz_slots: {model.describe()}', file=sys.stderr)
    dots, images = score_maps(model, files, args.resize, args.crop, args.batch_size)
    indices, valid = top_images(prototype_scores(dots), args.topk)
    used = [k for k in range(dots.shape[1]) if bool(valid[k, 0])]
    print(f'viz_slots: {len(used)} of {dots.shape[1]} prototypes own pixels in these images',
          file=sys.stderr)
    prototypes = choose_prototypes(args, dots.shape[1], used)
    draw_grid(images, dots, indices, valid, prototypes, args.alpha, args.out, args.dpi, files)
    print(f'wrote {args.out} ({len(prototypes)} prototypes x top {indices.shape[1]} of '
          f'{len(files)} images) and {osp.splitext(args.out)[0]}.json')
    return 0


if __name__ == '__main__':
    sys.exit(main())
