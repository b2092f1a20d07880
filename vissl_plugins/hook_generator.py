"""The hooks of a densessl VISSL run: VISSL's defaults plus the run manifest."""
from vissl.hooks import default_hook_generator

from vissl_plugins.hooks import RunManifestHook


def densessl_hook_generator(cfg):
    return default_hook_generator(cfg) + [RunManifestHook()]
