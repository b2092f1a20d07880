"""Whether detectron2 is installed, and what to tell the user when it is not.

detectron2 is not on the package index, so it is an optional part of densessl: this module
imports nothing from it, and tools and tests ask here before importing ``d2_plugins``.
"""
import importlib.util

INSTALL_HINT = (
    'detectron2 is not installed. It is not on the package index; build it from its '
    'official repository into this environment:\n'
    '    .venv/bin/python -m pip install --no-build-isolation '
    "'git+https://github.com/facebookresearch/detectron2.git'\n"
    'or let the setup script install it (a wheel, a source folder or a git URL):\n'
    '    DENSESSL_DETECTRON2=<wheel|folder|git URL> bash tools/setup_env.sh\n'
    'See docs/install.md ("detectron2").')


def detectron2_available():
    """True when ``import detectron2`` would find the package."""
    return importlib.util.find_spec('detectron2') is not None


def require_detectron2():
    """Raise ``ImportError`` with :data:`INSTALL_HINT` unless detectron2 is installed."""
    if not detectron2_available():
        raise ImportError(INSTALL_HINT)
