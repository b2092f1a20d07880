from vissl_plugins.hooks.run_manifest_hook import RunManifestHook  # noqa: F401
from vissl_plugins.hooks.loss_terms_hook import LossTermsHook  # noqa: F401
