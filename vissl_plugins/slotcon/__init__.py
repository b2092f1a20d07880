"""SlotCon (Wen et al., NeurIPS 2022) as VISSL plugins: semantic grouping + slot contrast.

Registered on import: data set type ``slotcon_two_crop`` (two_crop_dataset), collator
``slotcon_collator``, model ``slotcon_model`` (per-view trunk and head forward), head
``slotcon_head`` (projector, grouping, slot predictor), loss ``slotcon_loss`` (teacher state
and centre; its hooks come from ``slotcon_hooks`` via densessl_hook_generator, its config
sizes from ``slotcon_config``). The optimizer ``slotcon_lars`` is in vissl_plugins.optimizers.

The math is in densessl/slotcon (framework-free). Spec: ../shared/specs/pretrain.md section 2,
6.7, 6.8; configs: configs/config/pretrain/slotcon/.
"""
from vissl_plugins.slotcon import (slotcon_collator, slotcon_head, slotcon_loss,  # noqa: F401
                                   slotcon_model, two_crop_dataset)
