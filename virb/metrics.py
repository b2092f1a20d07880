"""Metrics of the benchmark's tasks, accumulated over a whole test set.

Each metric has ``name``, ``higher_is_better``, ``update(pred, target)`` and ``compute()``
(a float). ``Top1``: image-level accuracy in %. ``MeanIoU``: mIoU in % from one confusion
matrix over the data set, pixels labelled ``ignore_index`` left out, the mean over classes
that occur (in prediction or label); the original averaged per-batch IoUs over the classes
of each batch (not comparable to mmseg's mIoU). ``ForegroundIoU``: the IoU of class 1 of a
binary task, in %. ``DepthL1``: mean absolute error over valid pixels, LOWER IS BETTER (the
original stored this error as "test_accuracy").
"""
import torch


class Top1:
    """pred (N, C) logits, target (N,) class ids -> % correct."""
    name, higher_is_better = 'top1', True

    def __init__(self):
        self.correct, self.total = 0, 0

    def update(self, pred, target):
        self.correct += int((pred.argmax(1) == target).sum())
        self.total += int(target.numel())

    def compute(self):
        return 100.0 * self.correct / max(1, self.total)


def confusion_matrix(pred, target, num_classes, ignore_index=255):
    """pred, target: integer tensors of one shape -> (C, C) int64, rows = label, columns =
    prediction; pixels with ``target == ignore_index`` are left out. One ``bincount``."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(matrix):
    """(C, C) confusion matrix -> (C,) IoU, NaN for classes absent from labels and
    predictions."""
    matrix = matrix.double()
    tp = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float('nan')))


class MeanIoU:
    """pred (N, C, H, W) logits, target (N, H, W) ids (``ignore_index`` ignored) -> mIoU in
    % over the data set's confusion matrix. ``excluded_classes``: classes counted in the
    matrix (a pixel of one predicted as another is an error of the other) but left out of
    the mean (the original's Cityscapes void class 0, under its ``bug_compat`` switch)."""
    name, higher_is_better = 'mIoU', True

    def __init__(self, num_classes, ignore_index=255, excluded_classes=()):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.excluded_classes = tuple(excluded_classes)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, pred, target):
        labels = pred.argmax(1) if pred.dim() == target.dim() + 1 else pred
        self.matrix += confusion_matrix(labels.cpu(), target.cpu(), self.num_classes,
                                        self.ignore_index)

    def per_class(self):
        return iou_per_class(self.matrix)

    def compute(self):
        iou = self.per_class()
        present = ~torch.isnan(iou)
        present[list(self.excluded_classes)] = False
        return float(100.0 * iou[present].mean()) if present.any() else 0.0


class ForegroundIoU(MeanIoU):
    """A binary task (classes 0 = background, 1 = foreground): the foreground's IoU in %."""
    name = 'IoU'

    def __init__(self, ignore_index=255):
        super().__init__(2, ignore_index)

    def compute(self):
        value = float(self.per_class()[1])
        return 0.0 if value != value else 100.0 * value


class DepthL1:
    """pred (N, 1, H, W), target (N, 1, H, W) with ``valid`` = target > 0 -> mean |pred -
    target| over valid pixels. Lower is better."""
    name, higher_is_better = 'L1', False

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, pred, target):
        valid = target > 0
        self.total += float((pred - target).abs()[valid].sum())
        self.count += int(valid.sum())

    def compute(self):
        return self.total / max(1, self.count)
