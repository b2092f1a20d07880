"""One SlotCon branch (student or teacher): encoder -> projector -> semantic grouping, plus
the score map aligned to the views' overlap.

Spec: shared/specs/pretrain.md 2(a). For a batch of one view's crops (B, 3, h, w) with the
overlap boxes (B, 4) in this view's normalised coordinates and the flip flags (B,):

    f = encoder(images)            (B, C, H, W)      e.g. ResNet-50 layer4, C = 2048, H = W = 7
    x = projector(f)               (B, D, H, W)      DINOHead2d, D = 256
    slots, dots = grouping(x)      (B, K, D), (B, K, H, W)
    aligned_dots = align_to_overlap(dots, boxes, flipped)

The student and the teacher are two ``SlotConBranch`` with the same structure (the teacher
an EMA of the student, run under no_grad); the student also owns a ``DINOHead1d`` slot
predictor, which ``losses.slotcon_loss`` applies to the selected query slots. Each view is
forwarded on its own (BatchNorm statistics per view, as in the original).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

from densessl.slotcon.alignment import align_to_overlap


@dataclass
class SlotConViewOutputs:
    """What one branch gives for one view: slots (B, K, D), dots (B, K, H, W) (cosine scores
    of every pixel against every prototype), aligned_dots (B, K, H, W) (dots on the overlap,
    in image orientation)."""
    slots: torch.Tensor
    dots: torch.Tensor
    aligned_dots: torch.Tensor


class SlotConBranch(nn.Module):
    """encoder (images -> (B, C, H, W)), projector (DINOHead2d), grouping (SemanticGrouping).
    forward(images (B, 3, h, w), boxes (B, 4), flipped (B,) bool) -> SlotConViewOutputs.

    ``channels_last``: keep the convolution weights and the input images in channels-last
    memory layout (same values, a different order in memory; off by default). On the 2-core
    CPU of benchmarks/RESULTS.md it did not speed up the whole SlotCon step; it is there for
    hardware where that layout is faster (e.g. GPUs with tensor cores; not measured)."""

    def __init__(self, encoder, projector, grouping, channels_last=False):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.grouping = grouping
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images, boxes, flipped):
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        slots, dots = self.grouping(self.projector(self.encoder(images)))
        return SlotConViewOutputs(slots, dots, align_to_overlap(dots, boxes, flipped))
