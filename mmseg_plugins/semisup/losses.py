"""ReCo's and U2PL's losses as registered MMSeg modules (the math: ``densessl.semisup``).

``SemiSupervisedSegmentor`` builds them from its ``unsup_loss`` / ``contrast_loss`` configs::

    unsup_loss=dict(type='ConfidenceWeightedCELoss', strong_threshold=0.97)      # ReCo
    contrast_loss=dict(type='ReCoLoss', num_queries=256, num_negatives=512)
    unsup_loss=dict(type='EntropyDropCELoss', drop_percent=80)                    # U2PL
    contrast_loss=dict(type='U2PLContrastiveLoss', queue_size=30000, queue_size_class0=50000)

Each takes ``loss_weight``. The sampling losses take a ``torch.Generator`` (or injected
indices) per call, so a test compares them with a slow reference exactly.
"""
import torch
import torch.nn as nn
from mmengine.dist import all_gather, all_reduce, get_world_size
from mmseg.registry import MODELS

from densessl.semisup.memory_bank import ClassMemoryBank, u2pl_queue_sizes
from densessl.semisup.reco_loss import confidence_weighted_ce, reco_loss
from densessl.semisup.u2pl_loss import (contrastive_targets, entropy_drop_ce,
                                        low_entropy_percent, u2pl_contrastive_loss,
                                        unreliable_percent)


def gather_rows(rows):
    """All processes' (n_i, k) rows in rank order (mmengine's all_gather needs equal shapes:
    rows are padded with class id -1 in the last column, which the bank skips)."""
    if get_world_size() == 1:
        return rows
    counts = all_gather(torch.tensor([rows.shape[0]], device=rows.device))
    most = int(max(int(c) for c in counts))
    padded = rows.new_full((most, rows.shape[1]), -1.0)
    padded[:rows.shape[0]] = rows
    return torch.cat(all_gather(padded))


@MODELS.register_module()
class ConfidenceWeightedCELoss(nn.Module):
    """ReCo's unsupervised loss: CE on every pseudo-labelled pixel, image b weighted by its
    share of pixels with teacher confidence >= ``strong_threshold``
    (``densessl.semisup.reco_loss.confidence_weighted_ce``).

    forward(logits (B, C, H, W) at label size, pseudo_label (B, H, W), confidence (B, H, W))."""

    def __init__(self, strong_threshold=0.97, ignore_index=255, loss_weight=1.0,
                 bug_compat=False):
        super().__init__()
        self.strong_threshold, self.ignore_index = strong_threshold, ignore_index
        self.loss_weight, self.bug_compat = loss_weight, bug_compat

    def forward(self, logits, pseudo_label, confidence):
        return self.loss_weight * confidence_weighted_ce(
            logits, pseudo_label, confidence, self.strong_threshold, self.ignore_index,
            bug_compat=self.bug_compat)


@MODELS.register_module()
class EntropyDropCELoss(nn.Module):
    """U2PL's unsupervised loss: CE on the pseudo-labels after dropping the alpha_t % of valid
    pixels with the highest teacher entropy, alpha_t = (100 - drop_percent)(1 - epoch / E)
    (``densessl.semisup.u2pl_loss.entropy_drop_ce`` / ``unreliable_percent``).

    forward(student_logits, pseudo_labels, teacher_logits, epoch, total_epochs)."""

    def __init__(self, drop_percent=80.0, per_image=False, ignore_index=255, loss_weight=1.0):
        super().__init__()
        self.drop_percent, self.per_image = drop_percent, per_image
        self.ignore_index, self.loss_weight = ignore_index, loss_weight

    def forward(self, student_logits, pseudo_labels, teacher_logits, epoch, total_epochs):
        alpha = unreliable_percent(epoch, total_epochs, self.drop_percent)
        return self.loss_weight * entropy_drop_ce(student_logits, pseudo_labels, teacher_logits,
                                                  alpha, self.ignore_index, self.per_image)


@MODELS.register_module()
class ReCoLoss(nn.Module):
    """ReCo's regional contrast (``densessl.semisup.reco_loss.reco_loss``): hard queries
    (student confidence < ``strong_threshold``), the class mean as positive, negatives drawn
    by the class-relation softmax. ``weak_threshold``: the teacher confidence an unlabelled
    pixel needs to be valid (the segmentor builds the mask with it).

    forward(rep (B, D, h, w), label (B, h, w), mask (B, h, w), prob (B, C, h, w),
    generator=None, indices=None)."""

    def __init__(self, num_queries=256, num_negatives=512, temperature=0.5,
                 strong_threshold=0.97, weak_threshold=0.7, loss_weight=1.0):
        super().__init__()
        self.num_queries, self.num_negatives = num_queries, num_negatives
        self.temperature = temperature
        self.strong_threshold, self.weak_threshold = strong_threshold, weak_threshold
        self.loss_weight = loss_weight

    def forward(self, rep, label, mask, prob, generator=None, indices=None):
        return self.loss_weight * reco_loss(
            rep, label, mask, prob, strong_threshold=self.strong_threshold,
            temperature=self.temperature, num_queries=self.num_queries,
            num_negatives=self.num_negatives, indices=indices, generator=generator)


@MODELS.register_module()
class U2PLContrastiveLoss(nn.Module):
    """U2PL's contrastive loss with its per-class memory bank of negatives
    (``densessl.semisup.u2pl_loss.u2pl_contrastive_loss``; ``ClassMemoryBank``).

    The bank is a buffer of this module: it lives on the model's device, is all-gathered
    across processes (mmengine's dist helpers) and is saved in and restored from checkpoints
    (the original keeps it on the CPU and loses it on resume). ``num_classes`` and ``dim``
    come from the segmentor.

    ``bug_compat``: False (default: U2PL's two open bugs, anchor indexing #111 and the negative
    selection, and its one-hot bug for batches above 1, fixed), True (all reproduced, and the
    loss divided by the world size as the original's all-reduce leaves its gradient), or a
    subset of {'onehot', 'negatives', 'anchor_index', 'world_size'}.

    ``targets(...)`` builds the labels and entropy masks (the share of low- / high-entropy
    pixels alpha_t = low_entropy_threshold (1 - epoch / E)); ``forward(...)`` returns
    (loss, terms) and pushes this batch's negatives into the bank.
    """

    def __init__(self, num_classes, dim=256, num_queries=256, num_negatives=50, temperature=0.5,
                 low_rank=3, high_rank=20, current_class_threshold=0.3,
                 current_class_negative_threshold=1.0, low_entropy_threshold=20.0,
                 negative_high_entropy=True, queue_size=30000, queue_size_class0=50000,
                 loss_weight=1.0, bug_compat=False, ignore_index=255):
        super().__init__()
        bugs = ({'onehot', 'negatives', 'anchor_index', 'world_size'} if bug_compat is True
                else set(bug_compat or ()))
        unknown = bugs - {'onehot', 'negatives', 'anchor_index', 'world_size'}
        if unknown:
            raise ValueError(f'U2PLContrastiveLoss: unknown bug_compat entries {sorted(unknown)}')
        self.core_bugs = bugs - {'world_size'}
        self.divide_by_world_size = 'world_size' in bugs
        self.options = dict(num_queries=num_queries, num_negatives=num_negatives,
                            temperature=temperature, low_rank=low_rank, high_rank=high_rank,
                            current_class_threshold=current_class_threshold,
                            current_class_negative_threshold=current_class_negative_threshold,
                            ignore_index=ignore_index)
        self.low_entropy_threshold = low_entropy_threshold
        self.negative_high_entropy = negative_high_entropy
        self.loss_weight, self.ignore_index = loss_weight, ignore_index
        self.memory_bank = ClassMemoryBank(
            num_classes, dim=dim,
            capacity=u2pl_queue_sizes(num_classes, queue_size, queue_size_class0),
            gather_fn=gather_rows)

    def targets(self, labels_l, pseudo_labels_u, teacher_logits_u, epoch, total_epochs, size):
        """labels (B, h, w), low and high masks (B, h, w) at the features' ``size``."""
        percent = low_entropy_percent(epoch, total_epochs, self.low_entropy_threshold)
        return contrastive_targets(labels_l, pseudo_labels_u, teacher_logits_u, percent, size,
                                   self.ignore_index, self.negative_high_entropy)

    def forward(self, rep, rep_teacher, prob_teacher, labels, low_mask, high_mask, num_labeled,
                generator=None, indices=None):
        loss, terms = u2pl_contrastive_loss(
            rep, rep_teacher, prob_teacher, labels, low_mask, high_mask, num_labeled,
            self.memory_bank, bug_compat=self.core_bugs, indices=indices, generator=generator,
            **self.options)
        if self.divide_by_world_size:
            # the original all-reduces L_c (not autograd-aware) and divides by the world size:
            # the gradient is this process's L_c / world size, which DDP then averages
            value = loss.detach().clone()
            all_reduce(value)  # mmengine: a sum; a no-op on one process
            world = get_world_size()
            loss = loss / world + (value / world - loss.detach() / world)
        return self.loss_weight * loss, terms
