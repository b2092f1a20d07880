"""ViCE (Karlsson et al., arXiv 2111.12460) as VISSL plugins: dense SwAV on superpixel regions.

Registered on import: trunk ``deeplabv3plus``, head ``dense_swav_head``, loss
``dense_swav_loss`` (its hooks come from ``dense_swav_hooks`` via densessl_hook_generator).

Spec: ../shared/specs/pretrain.md section 1 and 6; user docs: docs/vice.md.
"""
from vissl_plugins.vice import deeplabv3plus, dense_swav_head, dense_swav_loss  # noqa: F401
