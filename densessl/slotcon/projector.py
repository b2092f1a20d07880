"""SlotCon's projection heads: DINO-style 3-layer MLPs, per pixel (2-D) and per slot (1-D).

Spec: shared/specs/pretrain.md 2(a) (``DINOHead2d`` projector, ``predictor_slot``). With
Lin = a 1x1 convolution (2-D head, on every pixel of a (B, C, H, W) map) or a linear layer
(1-D head, on the rows of an (N, C) matrix):

    g(x) = Lin_3( GELU( BN( Lin_2( GELU( BN( Lin_1(x) ))))))
    Lin_1: in_dim -> hidden_dim,  Lin_2: hidden_dim -> hidden_dim,  Lin_3: hidden_dim -> out_dim

Weights are drawn from a normal truncated at +-2 (absolute; trunc_normal_'s default bounds)
with std 0.02, biases start at 0; BatchNorm keeps its default init (weight 1, bias 0).
The layers sit in ``self.mlp`` (an ``nn.Sequential``) so the parameter names are
``mlp.{0,3,6}.weight`` / ``mlp.{1,4}.running_mean`` ..., as in the original checkpoints.

SlotCon uses ``DINOHead2d(2048, 4096, 256)`` as the projector of the student and of the
teacher, and ``DINOHead1d(256, 4096, 256)`` as the student's slot predictor (applied only to
the selected query slots, so its BatchNorm sees valid slots only; spec 6.7).
"""
import torch.nn as nn

INIT_STD = 0.02


def _mlp(linear, batch_norm, in_dim, hidden_dim, out_dim):
    layers = [linear(in_dim, hidden_dim), batch_norm(hidden_dim), nn.GELU(),
              linear(hidden_dim, hidden_dim), batch_norm(hidden_dim), nn.GELU(),
              linear(hidden_dim, out_dim)]
    for layer in layers:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(layer.weight, std=INIT_STD)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class DINOHead2d(nn.Module):
    """Per-pixel projector: (B, in_dim, H, W) -> (B, out_dim, H, W) with 1x1 convolutions."""

    def __init__(self, in_dim, hidden_dim=4096, out_dim=256):
        super().__init__()
        self.mlp = _mlp(lambda i, o: nn.Conv2d(i, o, kernel_size=1), nn.BatchNorm2d,
                        in_dim, hidden_dim, out_dim)

    def forward(self, x):
        return self.mlp(x)


class DINOHead1d(nn.Module):
    """Per-row predictor: (N, in_dim) -> (N, out_dim) with linear layers (SlotCon's slot
    predictor; BatchNorm1d needs N >= 2 in training mode)."""

    def __init__(self, in_dim, hidden_dim=4096, out_dim=256):
        super().__init__()
        self.mlp = _mlp(nn.Linear, nn.BatchNorm1d, in_dim, hidden_dim, out_dim)

    def forward(self, x):
        return self.mlp(x)
