"""The hooks of a densessl VISSL run: VISSL's defaults, the run manifest, and the hooks of
the method's loss (ViCE's ``dense_swav_loss``, SlotCon's ``slotcon_loss``)."""
from vissl.hooks import default_hook_generator

from vissl_plugins.hooks import RunManifestHook
from vissl_plugins.slotcon.slotcon_hooks import slotcon_hooks
from vissl_plugins.vice.dense_swav_hooks import dense_swav_hooks


def densessl_hook_generator(cfg):
    return (default_hook_generator(cfg) + [RunManifestHook()] + dense_swav_hooks(cfg) +
            slotcon_hooks(cfg))
