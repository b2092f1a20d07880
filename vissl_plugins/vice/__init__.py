"""ViCE (Karlsson et al., arXiv 2111.12460) as VISSL plugins: dense SwAV on superpixel regions.

Registered on import: data set type ``dense_ssl_dataset``, collator ``dense_collator``, trunk
``deeplabv3plus``, head ``dense_swav_head``, loss ``dense_swav_loss`` (its hooks come from
``dense_swav_hooks`` via densessl_hook_generator; its config sizes from ``dense_swav_config``).

Spec: ../shared/specs/pretrain.md section 1 and 6; user docs: docs/vice.md.
"""
from vissl_plugins.vice import (deeplabv3plus, dense_collator, dense_ssl_dataset,  # noqa: F401
                                dense_swav_head, dense_swav_loss)
