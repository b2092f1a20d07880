"""densessl's VISSL plugins: importing this package registers them into VISSL.

Registered here: trunk ``torchvision_resnet``, data source ``synthetic_scenes``, optimizers
``sgd_larc`` (LARC without apex) and ``slotcon_lars`` (SlotCon's LARS). ``vissl_plugins.compat``
applies the fixes VISSL needs on modern PyTorch first. Method folders add their own parts:
``vissl_plugins.vice`` (ViCE), ``vissl_plugins.slotcon`` (SlotCon).
"""
from vissl_plugins import compat

compat.apply()

from vissl_plugins import data, optimizers, slotcon, trunks, vice  # noqa: E402,F401  (registration)
