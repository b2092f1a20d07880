"""Head ``slotcon_head``: SlotCon's projector, semantic grouping and slot predictor.

Spec: shared/specs/pretrain.md 2(a). Input: the trunk's layer4 map of ONE view,
f (B, C, H, W) (``slotcon_model`` calls the head once per view, so the projector's BatchNorm
sees one view at a time, as in the original). Output::

    x = projector(f)               (B, D, H, W)   DINOHead2d  C -> hidden_dim -> hidden_dim -> D
    slots, dots = grouping(x)      (B, K, D), (B, K, H, W)    SemanticGrouping, tau_g
    returns [slots, dots]

The slot predictor (``predictor``, DINOHead1d D -> hidden_dim -> hidden_dim -> D) is NOT run
here: ``slotcon_loss`` applies it to the selected query slots only (spec 6.7), which it can
only pick once the teacher has run. The teacher's copy of this head is built with
``with_predictor: False`` (the teacher has none).

Parameter names: ``projector.mlp.{0,1,3,4,6}.*``, ``grouping.prototypes.weight`` (K, D),
``predictor.mlp.*``; in VISSL's model they sit under ``heads.0.``.

Config (the real SlotCon values)::

    MODEL.HEAD.PARAMS: [["slotcon_head", {"in_dim": 2048, "hidden_dim": 4096, "out_dim": 256,
                                          "num_prototypes": 256, "grouping_temp": 0.07}]]

``in_dim`` (trunk channels) and ``grouping_temp`` (= LOSS.slotcon_loss.teacher_temp) may be
left out: vissl_plugins/slotcon/slotcon_config.py fills them in.
"""
import torch.nn as nn
from vissl.models.heads import register_model_head

from densessl.slotcon import DINOHead1d, DINOHead2d, SemanticGrouping


@register_model_head('slotcon_head')
class SlotConHead(nn.Module):
    """See the module docstring."""

    def __init__(self, model_config, in_dim: int, num_prototypes: int, hidden_dim: int = 4096,
                 out_dim: int = 256, grouping_temp: float = 0.07, with_predictor: bool = True):
        super().__init__()
        for name, value in (('in_dim', in_dim), ('num_prototypes', num_prototypes),
                            ('hidden_dim', hidden_dim), ('out_dim', out_dim)):
            if int(value) < 1:
                raise ValueError(f'slotcon_head: {name}={value} must be a positive integer')
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.projector = DINOHead2d(self.in_dim, int(hidden_dim), self.out_dim)
        self.grouping = SemanticGrouping(int(num_prototypes), self.out_dim, float(grouping_temp))
        self.predictor = DINOHead1d(self.out_dim, int(hidden_dim), self.out_dim) \
            if with_predictor else None

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_dim:
            raise ValueError(
                f'slotcon_head: expects the trunk\'s map (B, {self.in_dim}, H, W), got '
                f'{tuple(x.shape)}; set the head\'s in_dim to the trunk\'s channels and let the '
                f'model return the layer4 map (MODEL.BASE_MODEL_NAME: slotcon_model)')
        slots, dots = self.grouping(self.projector(x))
        return [slots, dots]
