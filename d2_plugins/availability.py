"""Whether detectron2 is installed, and what to tell the user when it is not.

detectron2 is not on the package index, so it is an optional part of densessl: this module
imports nothing from it; ``d2_plugins`` calls :func:`require_detectron2` first, so that
``import d2_plugins`` without detectron2 is one ImportError that says how to install it
(``tools/d2_train_net.py`` prints it).
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


def require_detectron2():
    """Raise ``ImportError`` with :data:`INSTALL_HINT` unless detectron2 is installed."""
    if importlib.util.find_spec('detectron2') is None:
        raise ImportError(INSTALL_HINT)
