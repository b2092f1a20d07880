"""Prototype retrieval of tools/viz_slots.py (densessl/slotcon/prototype_retrieval.py) against
a per-image, per-prototype loop written from its definition."""
import math

import torch

from densessl.slotcon.prototype_retrieval import owner_masks, prototype_scores, top_images


def reference_scores(dots):
    n_images, k_protos, h, w = dots.shape
    scores = torch.empty(n_images, k_protos)
    for n in range(n_images):
        for k in range(k_protos):
            owned = [dots[n, k, i, j].item() for i in range(h) for j in range(w)
                     if dots[n, :, i, j].argmax().item() == k]
            scores[n, k] = sum(owned) / len(owned) if owned else -math.inf
    return scores


def test_scores_are_the_mean_over_owned_pixels():
    torch.manual_seed(0)
    dots = torch.randn(5, 7, 4, 6)
    torch.testing.assert_close(prototype_scores(dots), reference_scores(dots))
    masks = owner_masks(dots)
    assert masks.dtype == torch.bool and bool((masks.sum(dim=1) == 1).all())


def test_top_images_rank_owned_images_first_and_flag_missing_ones():
    torch.manual_seed(1)
    dots = torch.randn(6, 3, 3, 3)
    dots[:, 2] = -10.0                      # prototype 2 owns no pixel anywhere
    dots[4, 1] = 10.0                       # image 4 belongs to prototype 1 entirely
    scores = prototype_scores(dots)
    indices, valid = top_images(scores, 4)
    assert indices.shape == valid.shape == (3, 4)
    assert int(indices[1, 0]) == 4 and bool(valid[1, 0])
    assert not bool(valid[2].any())         # never retrieved for a prototype it is not in
    reference = reference_scores(dots)
    for k in range(2):
        order = sorted(range(6), key=lambda n: -reference[n, k].item())[:4]
        expected_valid = [math.isfinite(reference[n, k].item()) for n in order]
        assert valid[k].tolist() == expected_valid
        assert [int(i) for i, v in zip(indices[k], valid[k]) if v] == \
            [n for n, v in zip(order, expected_valid) if v]


# ---- tools/viz_slots.py on a checkpoint in densessl's VISSL SlotCon layout -----------------
import json  # noqa: E402
import os.path as osp  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402
import torchvision  # noqa: E402

from densessl.slotcon import DINOHead2d, SemanticGrouping  # noqa: E402


def _vissl_slotcon_checkpoint(path, drop=None):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).state_dict()
    head = torch.nn.Module()
    head.projector, head.grouping = DINOHead2d(512, 32, 16), SemanticGrouping(6, 16)
    head_state = head.state_dict()
    loss = {'center': torch.zeros(1, 6)}
    loss.update({f'momentum_teacher.trunk._feature_blocks.{k}': v for k, v in resnet.items()
                 if not k.startswith('fc.')})
    loss.update({f'momentum_teacher.heads.0.{k}': v for k, v in head_state.items()})
    loss.pop(drop, None)
    trunk = {f'_feature_blocks.{k}': v for k, v in resnet.items() if not k.startswith('fc.')}
    torch.save({'classy_state_dict': {'base_model': {'model': {
        'trunk': trunk, 'heads': {f'0.{k}': v for k, v in head_state.items()}}}, 'loss': loss}},
        path)
    return path


def _viz(repo_root, python, *args):
    return subprocess.run([python, osp.join(repo_root, 'tools', 'viz_slots.py'), *args],
                          cwd=repo_root, capture_output=True, text=True, timeout=300)


def test_viz_slots_draws_the_top_images_of_each_prototype(tiny_scenes, tmp_path, repo_root,
                                                           python):
    ckpt = _vissl_slotcon_checkpoint(str(tmp_path / 'slotcon.torch'))
    out = str(tmp_path / 'viz' / 'slots.png')
    proc = _viz(repo_root, python, ckpt, osp.join(tiny_scenes, 'leftImg8bit', 'val'),
                '--recursive', '--resize', '0', '--crop', '0', '--topk', '2', '--out', out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert open(out, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    with open(out[:-4] + '.json') as f:
        listing = json.load(f)['top_images']
    assert listing and all(1 <= len(files) <= 2 for files in listing.values())
    assert all(name.endswith('.png') for files in listing.values() for name in files)


def test_viz_slots_refuses_a_checkpoint_without_a_prototype_key(tiny_scenes, tmp_path,
                                                                repo_root, python):
    ckpt = _vissl_slotcon_checkpoint(str(tmp_path / 'slotcon.torch'),
                                     drop='momentum_teacher.heads.0.grouping.prototypes.weight')
    proc = _viz(repo_root, python, ckpt, osp.join(tiny_scenes, 'leftImg8bit', 'val'),
                '--recursive', '--resize', '0', '--crop', '0')
    assert proc.returncode != 0 and 'grouping.prototypes.weight' in proc.stderr


def test_viz_slots_names_an_empty_image_folder(tmp_path, repo_root, python):
    (tmp_path / 'empty').mkdir()
    proc = _viz(repo_root, python, 'unused.torch', str(tmp_path / 'empty'))
    assert proc.returncode != 0 and 'no images' in proc.stderr and 'empty' in proc.stderr
