"""VISSL collator ``slotcon_collator``: batches ``slotcon_two_crop`` samples, view-major.

Batch of B samples of S x S px (the contract with SlotCon's VISSL model and loss)::

    {'data': [float32 (2B, 3, S, S)],   # torch.cat([view 1 of images 0..B-1, view 2 of 0..B-1])
     'label': [float32 (B, 2, 5)],      # [b, v] = view v+1 of image b: (x1, y1, x2, y2, flipped)
     'data_valid': [int64 (B,)], 'data_idx': [int64 (B,)]}

VISSL's train step (``construct_sample_for_model``) turns this into ``sample['input']`` =
the (2B, 3, S, S) tensor (rows ``v * B + b``) and ``sample['target']`` = the (B, 2, 5) tensor,
whose ``size(0)`` = B images is the weight VISSL gives this step's loss in its logged
averages (``task.losses``). In ``target[b, v]``,
``(x1, y1, x2, y2)`` is the overlap of the two crops of image ``b`` in view ``v``'s
normalised [0, 1] coordinates, already mirrored when that view is flipped, and ``flipped`` is
1. or 0.; ``x1 < x2`` and ``y1 < y2`` always hold (densessl/slotcon/two_crop.py). So
``align_to_overlap(maps_v, target[:, v, :4], target[:, v, 4] > 0.5)`` aligns view ``v``.
``data_valid`` and ``data_idx`` are per image (B,); note that VISSL's train step leaves
``sample['data_valid']`` as the list ``[int64 (B,)]`` (it copies the batch key over its own).
Select it with ``DATA.TRAIN.COLLATE_FUNCTION: slotcon_collator``.
"""
import torch
from vissl.data.collators import register_collator


@register_collator('slotcon_collator')
def slotcon_collator(batch):
    """Collate a list of ``slotcon_two_crop`` samples (see the module docstring)."""
    if not batch:
        raise ValueError('slotcon_collator got an empty batch')
    for sample in batch:
        if (len(sample['data']) != 1 or len(sample['label']) != 1
                or sample['data'][0].dim() != 4 or sample['data'][0].shape[:2] != (2, 3)
                or tuple(sample['label'][0].shape) != (2, 5)):
            got = [tuple(t.shape) for t in sample['data'] + sample['label']]
            raise ValueError(f'slotcon_collator: sample {sample["data_idx"]} has data/label '
                             f'shapes {got}; expected one (2, 3, S, S) view tensor and one '
                             f'(2, 5) box tensor (slotcon_two_crop samples, one data source)')
    views = torch.stack([sample['data'][0] for sample in batch])  # (B, 2, 3, S, S)
    return {
        'data': [views.transpose(0, 1).flatten(0, 1)],
        'label': [torch.stack([sample['label'][0] for sample in batch]).float()],
        'data_valid': [torch.tensor([s['data_valid'][0] for s in batch], dtype=torch.long)],
        'data_idx': [torch.tensor([s['data_idx'][0] for s in batch], dtype=torch.long)],
    }
