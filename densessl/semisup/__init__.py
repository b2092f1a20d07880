"""Semi-supervised segmentation, framework-free: reco_loss (ReCo contrast, weighted CE);
u2pl_loss (U2PL entropy-drop CE, contrastive loss), memory_bank (ClassMemoryBank)."""
