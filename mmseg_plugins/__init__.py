"""densessl's MMSegmentation plugins; configs load them with
``custom_imports = dict(imports=['mmseg_plugins'], allow_failed_imports=False)``.

Registered: datasets ``SyntheticScenesDataset`` and ``COCOStuffCoarseDataset``, ViCE's frozen
backbone ``ViCEBackbone`` (``mmseg_plugins.vice``), transforms ``LoadImageFromFileChecked`` /
``LoadAnnotationsChecked``, backbone ``FrozenResNet``, hooks ``ResultsTableHook`` /
``RunManifestHook``. ``mmseg_plugins.compat`` applies the framework fixes first.
"""
from mmseg_plugins import compat

compat.apply()

from mmseg_plugins import backbones, datasets, hooks, vice  # noqa: E402,F401  (registration)
