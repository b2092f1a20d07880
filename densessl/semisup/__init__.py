"""Semi-supervised segmentation, framework-free: reco_loss (ReCo contrast, weighted CE);
u2pl_loss (U2PL entropy-drop CE, contrastive loss), memory_bank (ClassMemoryBank);
mixing (CutOut / CutMix / ClassMix after teacher inference, ReCo's colour augmentation),
mean_teacher (momentum schedule, parameter-only EMA), partial_labels (ReCo's p0/p1/p5/p25),
label_subsets (split files, U2PL sizes, ReCo's class-balanced sampler),
networks (ReCo / U2PL DeepLabV3+ with representation heads, dilated ResNet backbones)."""
