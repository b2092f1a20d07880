"""SlotCon's semantic grouping: soft-assign every pixel to K learnable prototypes and pool
one slot per prototype.

Spec: shared/specs/pretrain.md 2(a) "SemanticGrouping". For a projected map x (B, D, H, W)
and prototypes S (K, D) (rows of an ``nn.Embedding``):

    dots_{b,k,h,w} = < S_k / |S_k|, x_{b,:,h,w} / |x_{b,:,h,w}| >         cosine, (B, K, H, W)
    a_{b,k,h,w}    = softmax_k( dots_{b,:,h,w} / tau_g )_k + 1e-6           (B, K, H, W)
    slot_{b,k}     = sum_hw a_{b,k,h,w} x_{b,:,h,w} / sum_hw a_{b,k,h,w}    (B, K, D)

The *unnormalised* x is pooled. tau_g = 0.07 in both the student's and the teacher's
grouping (the original passes its teacher temperature to both). Two einsums over the whole
batch; no loop over images, prototypes or pixels.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION_EPS = 1e-6  # added to the softmax so that a prototype no pixel picks still pools


class SemanticGrouping(nn.Module):
    """x (B, D, H, W) -> (slots (B, K, D), dots (B, K, H, W)); see the module docstring."""

    def __init__(self, num_prototypes, dim, temperature=0.07):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'SemanticGrouping temperature must be > 0, got {temperature}')
        self.num_prototypes = num_prototypes
        self.dim = dim
        self.temperature = temperature
        self.prototypes = nn.Embedding(num_prototypes, dim)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f'SemanticGrouping expects (B, {self.dim}, H, W), got {tuple(x.shape)}')
        prototypes = F.normalize(self.prototypes.weight, dim=1)
        dots = torch.einsum('kd,bdhw->bkhw', prototypes, F.normalize(x, dim=1))
        attn = torch.softmax(dots / self.temperature, dim=1) + ATTENTION_EPS
        attn = attn / attn.sum(dim=(2, 3), keepdim=True)
        slots = torch.einsum('bdhw,bkhw->bkd', x, attn)
        return slots, dots

    def extra_repr(self):
        return f'num_prototypes={self.num_prototypes}, dim={self.dim}, temperature={self.temperature}'
