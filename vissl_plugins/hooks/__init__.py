from vissl_plugins.hooks.run_manifest_hook import RunManifestHook  # noqa: F401
