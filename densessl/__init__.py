"""Framework-free core of densessl: the synthetic data set, atomic file writes, run manifests.

The framework plugins live in ``vissl_plugins``, ``mmseg_plugins`` and ``d2_plugins``;
checkpoint formats in ``converters``.
"""
__version__ = '0.1.0'
