"""``Res5ROIHeadsExtraNorm``: the C4 box/mask head of MoCo's detection protocol.

detectron2's ``Res5ROIHeads`` runs the pooled RoI features through a ``res5`` stage built
with the backbone's norm. MoCo (He et al. 2020, appendix) adds one more normalisation layer
after that stage, so that the randomly initialised box predictor sees normalised features
whatever the pretraining's feature scale; VISSL's and MoCo's C4 configs
(``configs/d2/*_C4_*.yaml``) select it by name::

    res5:  (R, 1024, 14, 14) -> 3 bottleneck blocks -> (R, 2048, 7, 7) -> norm -> (R, 2048, 7, 7)

The extra layer is ``roi_heads.res5.norm`` (``MODEL.RESNETS.NORM``, SyncBN in the protocol);
it is not a ResNet weight, so a pretrained file does not carry it.
"""
from detectron2.layers import get_norm
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """``Res5ROIHeads`` with a norm layer (``MODEL.RESNETS.NORM``) after the res5 stage."""

    @classmethod
    def _build_res5_block(cls, cfg):
        stage, out_channels = super()._build_res5_block(cfg)
        stage.add_module('norm', get_norm(cfg.MODEL.RESNETS.NORM, out_channels))
        return stage, out_channels
