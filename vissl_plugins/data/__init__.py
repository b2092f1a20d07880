from vissl_plugins.data.synthetic_scenes_source import SyntheticScenesSource  # noqa: F401
