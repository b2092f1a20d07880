"""densessl's MMSegmentation plugins; configs load them with
``custom_imports = dict(imports=['mmseg_plugins'], allow_failed_imports=False)``.

Registered: dataset ``SyntheticScenesDataset``, transforms ``LoadImageFromFileChecked`` /
``LoadAnnotationsChecked``, backbone ``FrozenResNet``, hooks ``ResultsTableHook`` /
``RunManifestHook``. ``mmseg_plugins.compat`` applies the framework fixes first.
"""
from mmseg_plugins import compat

compat.apply()

from mmseg_plugins import backbones, datasets, hooks  # noqa: E402,F401  (registration)
