"""densessl's MMSegmentation plugins; configs load them with
``custom_imports = dict(imports=['mmseg_plugins'], allow_failed_imports=False)``.

Registered: datasets ``SyntheticScenesDataset`` and ``COCOStuffCoarseDataset``, ViCE's frozen
backbone ``ViCEBackbone`` (``mmseg_plugins.vice``), transforms ``LoadImageFromFileChecked`` /
``LoadAnnotationsChecked``, backbone ``FrozenResNet``, hooks ``ResultsTableHook`` /
``RunManifestHook``, weight init ``CheckedPretrained`` (``mmseg_plugins.checked_pretrained``:
``Pretrained`` that fails on any key that does not fit). ``mmseg_plugins.compat`` applies
the framework fixes first (fix 4 makes plain ``Pretrained`` the checked one too).
"""
from mmseg_plugins import compat

compat.apply()

from mmseg_plugins import (backbones, checked_pretrained, datasets, hooks,  # noqa: E402,F401
                           semisup, vice)  # (registration)
