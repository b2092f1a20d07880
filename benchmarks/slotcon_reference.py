"""A straightforward SlotCon training step, written from the spec for the step benchmark.

Spec: shared/specs/pretrain.md 2(a) and 6.7. It is organised the way the original
``models/slotcon.py`` organises its forward (this is our own code, not a copy): one module
holding student (``*_q``) and teacher (``*_k``) encoders, projectors and prototypes, the slot
predictor and the centre buffer; a per-parameter EMA loop; per-view forwards; a per-image
Python loop for the un-flip; the DINO term on (B*H*W, K) rows; validity masks through a
one-hot scatter; the keys gathered as a Python list of per-process tensors; and the labels of
the slot contrast looked up one query at a time in a dict of valid key positions. Nothing
here is vectorised beyond what the formulas need. ``benchmarks/slotcon_step.py`` checks that
it gives the same loss and gradients as the densessl.slotcon core and times both.
"""
import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def _three_layer_mlp(linear, norm, in_dim, hidden_dim, out_dim):
    mlp = nn.Sequential(linear(in_dim, hidden_dim), norm(hidden_dim), nn.GELU(),
                        linear(hidden_dim, hidden_dim), norm(hidden_dim), nn.GELU(),
                        linear(hidden_dim, out_dim))
    for layer in mlp:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.constant_(layer.bias, 0)
    return mlp


class _Head(nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, x):
        return self.mlp(x)


class ReferenceSlotCon(nn.Module):
    """Student/teacher pair with the whole loss in ``forward((crops, coords, flags))``."""

    def __init__(self, make_encoder, num_channels, dim_hidden=4096, dim_out=256,
                 num_prototypes=256, total_steps=1000, teacher_momentum=0.99,
                 group_loss_weight=0.5, student_temp=0.1, teacher_temp=0.07,
                 center_momentum=0.9, contrast_temp=0.2):
        super().__init__()
        self.encoder_q, self.encoder_k = make_encoder(), make_encoder()
        conv = lambda i, o: nn.Conv2d(i, o, 1)  # noqa: E731
        self.projector_q = _Head(_three_layer_mlp(conv, nn.BatchNorm2d, num_channels,
                                                  dim_hidden, dim_out))
        self.projector_k = _Head(_three_layer_mlp(conv, nn.BatchNorm2d, num_channels,
                                                  dim_hidden, dim_out))
        self.prototypes_q = nn.Embedding(num_prototypes, dim_out)
        self.prototypes_k = nn.Embedding(num_prototypes, dim_out)
        self.predictor_slot = _Head(_three_layer_mlp(nn.Linear, nn.BatchNorm1d, dim_out,
                                                     dim_hidden, dim_out))
        for q_part, k_part in self._pairs():
            for param_q, param_k in zip(q_part.parameters(), k_part.parameters()):
                param_k.data.copy_(param_q.data)
                param_k.requires_grad = False
        self.register_buffer('center', torch.zeros(1, num_prototypes))
        self.num_prototypes = num_prototypes
        self.teacher_momentum = teacher_momentum
        self.group_loss_weight = group_loss_weight
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.center_momentum, self.contrast_temp = center_momentum, contrast_temp
        self.total_steps, self.step = total_steps, 0

    def _pairs(self):
        return [(self.encoder_q, self.encoder_k), (self.projector_q, self.projector_k),
                (self.prototypes_q, self.prototypes_k)]

    @torch.no_grad()
    def momentum_update(self):
        m = 1. - (1. - self.teacher_momentum) * (math.cos(math.pi * self.step / self.total_steps)
                                                 + 1.) * 0.5
        self.step += 1
        for q_part, k_part in self._pairs():
            for param_q, param_k in zip(q_part.parameters(), k_part.parameters()):
                param_k.data = param_k.data * m + param_q.data * (1. - m)

    def group(self, prototypes, x):
        """SemanticGrouping: (slots (B, K, D), dots (B, K, H, W)), temperature teacher_temp."""
        protos = prototypes.weight.unsqueeze(0).repeat(x.shape[0], 1, 1)
        dots = torch.einsum('bkd,bdhw->bkhw', F.normalize(protos, dim=2), F.normalize(x, dim=1))
        attn = (dots / self.teacher_temp).softmax(dim=1) + 1e-6
        slots = torch.einsum('bdhw,bkhw->bkd', x, attn / attn.sum(dim=(2, 3), keepdim=True))
        return slots, dots

    @staticmethod
    def invaug(x, coords, flags):
        n, _, h, w = x.shape
        boxes = coords.clone()
        boxes[:, 0] *= w
        boxes[:, 2] *= w
        boxes[:, 1] *= h
        boxes[:, 3] *= h
        rois = torch.cat([torch.arange(n, dtype=boxes.dtype).view(n, 1), boxes], dim=1)
        aligned = torchvision.ops.roi_align(x, rois, (h, w), aligned=True)
        return torch.stack([a.flip(-1) if flag else a for a, flag in zip(aligned, flags)])

    def self_distill(self, student, teacher):
        student = F.log_softmax(student / self.student_temp, dim=-1)
        teacher = F.softmax((teacher - self.center) / self.teacher_temp, dim=-1)
        return torch.sum(-teacher * student, dim=-1).mean()

    @staticmethod
    def _gather(tensor):
        if dist.is_available() and dist.is_initialized():
            parts = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, tensor)
            return torch.cat(parts), dist.get_rank()
        return torch.cat([tensor]), 0

    @staticmethod
    def _validity(scores):
        one_hot = torch.zeros_like(scores).scatter_(1, scores.argmax(1, keepdim=True), 1)
        return (one_hot.sum(-1).sum(-1) > 0).long()

    def contrast(self, q, k, score_q, score_k):
        tau = self.contrast_temp
        q, k = q.flatten(0, 1), F.normalize(k.flatten(0, 1), dim=1)
        mask_q, mask_k = self._validity(score_q.detach()), self._validity(score_k.detach())
        idxs_q = (mask_q * mask_k).view(-1).nonzero().squeeze(-1)
        mask_all, rank = self._gather(mask_k.view(-1))
        keys_all, _ = self._gather(k.detach())
        valid_positions = [i for i, v in enumerate(mask_all.tolist()) if v]
        position_of = {p: n for n, p in enumerate(valid_positions)}
        labels = torch.tensor([position_of[rank * k.shape[0] + i] for i in idxs_q.tolist()])
        queries = F.normalize(self.predictor_slot(q[idxs_q]), dim=1)
        logits = queries @ keys_all[valid_positions].t() / tau
        return F.cross_entropy(logits, labels) * (2 * tau)

    def forward(self, batch):
        crops, coords, flags = batch
        x1 = self.projector_q(self.encoder_q(crops[0]))
        x2 = self.projector_q(self.encoder_q(crops[1]))
        with torch.no_grad():
            self.momentum_update()
            y1 = self.projector_k(self.encoder_k(crops[0]))
            y2 = self.projector_k(self.encoder_k(crops[1]))
        (q1, score_q1), (q2, score_q2) = self.group(self.prototypes_q, x1), self.group(self.prototypes_q, x2)
        q1_al, q2_al = self.invaug(score_q1, coords[0], flags[0]), self.invaug(score_q2, coords[1], flags[1])
        with torch.no_grad():
            (k1, score_k1), (k2, score_k2) = self.group(self.prototypes_k, y1), self.group(self.prototypes_k, y2)
            k1_al, k2_al = self.invaug(score_k1, coords[0], flags[0]), self.invaug(score_k2, coords[1], flags[1])
        rows = lambda t: t.permute(0, 2, 3, 1).flatten(0, 2)  # noqa: E731
        w = self.group_loss_weight
        loss = w * self.self_distill(rows(q1_al), rows(k2_al)) + w * self.self_distill(rows(q2_al), rows(k1_al))
        self.update_center(rows(torch.cat([score_k1, score_k2])))
        loss = loss + (1 - w) * self.contrast(q1, k2, score_q1, score_k2) \
            + (1 - w) * self.contrast(q2, k1, score_q2, score_k1)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_rows):
        total = teacher_rows.sum(dim=0, keepdim=True)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            world = dist.get_world_size()
        self.center = self.center * self.center_momentum + total / (len(teacher_rows) * world) * (1 - self.center_momentum)
