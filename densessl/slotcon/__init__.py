"""SlotCon (Wen et al., NeurIPS 2022, "Self-Supervised Visual Representation Learning with
Semantic Grouping"), framework-free. Spec: shared/specs/pretrain.md section 2, 6.7, 6.8.

1. Two overlapping crops of an image (boxes of their overlap, h-flip flags; ``two_crop``) go
   through a student and an EMA teacher: ResNet encoder -> DINOHead2d projector (``projector``).
2. SemanticGrouping (``grouping``) scores every pixel against K learnable prototypes (cosine)
   and pools one slot per prototype with the softmax (tau 0.07) as soft mask.
3. The score maps are cut to the crops' overlap and un-flipped (``alignment``).
4. Grouping loss: the student's aligned map of one view predicts the teacher's centred,
   sharpened map of the other, per pixel (DINO-style; ``losses``).
5. Slot contrast: slots valid in both views (argmax of some pixel) go through a DINOHead1d
   predictor and must find the teacher's slot of the same (image, prototype) in the other
   view among all valid teacher slots of all processes (InfoNCE, tau 0.2).
6. L = 0.5 (grouping both ways) + 0.5 (contrast both ways); the teacher follows the student
   by EMA with a cosine momentum 0.99 -> 1 (``momentum``); the centre by EMA 0.9.
Runs on one process without torch.distributed; gathers and all-reduces when it is set up.
"""
from densessl.slotcon.alignment import align_to_overlap
from densessl.slotcon.grouping import SemanticGrouping
from densessl.slotcon.losses import (batch_center, grouping_loss, query_selection,
                                     slot_contrastive_loss, slot_validity, slotcon_loss,
                                     updated_center)
from densessl.slotcon.model import SlotConBranch, SlotConViewOutputs
from densessl.slotcon.momentum import ema_update_, teacher_momentum
from densessl.slotcon.projector import DINOHead1d, DINOHead2d
from densessl.slotcon.two_crop import (InvalidTwoCropOption, NoOverlapError, TwoCropOptions,
                                       TwoCropViews, ViewPhotometric, two_crop_views)

__all__ = ['DINOHead1d', 'DINOHead2d', 'InvalidTwoCropOption', 'NoOverlapError',
           'SemanticGrouping', 'SlotConBranch', 'SlotConViewOutputs', 'TwoCropOptions',
           'TwoCropViews', 'ViewPhotometric', 'align_to_overlap', 'batch_center', 'ema_update_',
           'grouping_loss', 'query_selection', 'slot_contrastive_loss', 'slot_validity',
           'slotcon_loss', 'teacher_momentum', 'two_crop_views', 'updated_center']
