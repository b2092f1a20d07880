"""Refuse unknown keys in a VISSL config, naming the key and the closest known one.

VISSL (through OmegaConf) accepts any key an experiment YAML or an override adds, so a
typo such as ``config.OPTIMIZER.num_epoch=10`` is silently ignored and the run uses the
default. Here every key of the composed config must exist in VISSL's ``defaults.yaml`` or
in densessl's ``vissl_plugins/defaults.yaml`` (or a method folder's ``defaults.yaml``), except inside sub-trees that are free-form
by design (parameter schedulers, loss, trunk, head, AMP and collator options), and the
optimizer-specific options that VISSL's optimizers read with ``setdefault``.

Set ``DENSESSL_ALLOW_UNKNOWN_KEYS=1`` to turn the error into a warning (some of VISSL's own
example configs carry dead keys such as ``DISTRIBUTED.DISTR_ON``).
"""
import difflib
import glob
import logging
import os
import os.path as osp

from omegaconf import DictConfig, OmegaConf

PLUGIN_DEFAULTS = osp.join(osp.dirname(__file__), 'defaults.yaml')
# each method folder (vissl_plugins/vice/, ...) may add its own keys in a defaults.yaml
METHOD_DEFAULTS_GLOB = osp.join(osp.dirname(__file__), '*', 'defaults.yaml')

# sub-trees whose keys depend on the chosen scheduler / loss / optimizer, not fixed keys
FREE_FORM = (
    'config.OPTIMIZER.param_schedulers',
    'config.OPTIMIZER.larc_config',
    'config.LOSS',
    'config.MODEL.TRUNK',
    'config.MODEL.HEAD',
    'config.MODEL.AMP_PARAMS.AMP_ARGS',
    'config.DATA.TRAIN.DATA_LIMIT_SAMPLING',
    'config.DATA.TEST.DATA_LIMIT_SAMPLING',
    'config.DATA.TRAIN.COLLATE_FUNCTION_PARAMS',
    'config.DATA.TEST.COLLATE_FUNCTION_PARAMS',
)
# options that only some optimizers take (VISSL's LARS), absent from defaults.yaml
OPTIMIZER_OPTIONS = ('config.OPTIMIZER.exclude_bias_and_norm',)


class UnknownConfigKeyError(KeyError):
    def __str__(self):
        return self.args[0]


def plugin_defaults():
    """densessl's keys: vissl_plugins/defaults.yaml merged with each method folder's."""
    method_files = sorted(glob.glob(METHOD_DEFAULTS_GLOB))
    return OmegaConf.merge(*[OmegaConf.load(f) for f in [PLUGIN_DEFAULTS] + method_files])


def with_plugin_defaults(cfg):
    """The composed config with densessl's plugin defaults filled in under it."""
    return OmegaConf.merge(plugin_defaults(), cfg)


def _known_keys(node, prefix=''):
    keys = set()
    for key, value in node.items():
        path = f'{prefix}.{key}' if prefix else str(key)
        keys.add(path)
        if isinstance(value, (dict, DictConfig)):
            keys |= _known_keys(value, path)
    return keys


def _walk(node, prefix=''):
    for key, value in node.items():
        path = f'{prefix}.{key}' if prefix else str(key)
        yield path
        if isinstance(value, DictConfig) and not any(path.startswith(f) for f in FREE_FORM):
            yield from _walk(value, path)


def check_config_keys(cfg, known=None):
    """Raise :class:`UnknownConfigKeyError` for the first key not known to VISSL or densessl.

    ``cfg`` is the Hydra-composed config (root key ``config``); ``known`` defaults to the
    keys of VISSL's defaults plus densessl's plugin defaults.
    """
    if known is None:
        import vissl.config
        vissl_defaults = OmegaConf.load(osp.join(osp.dirname(vissl.config.__file__),
                                                 'defaults.yaml'))
        known = _known_keys(OmegaConf.merge(vissl_defaults, plugin_defaults()))
        known |= set(OPTIMIZER_OPTIONS)
    for path in _walk(cfg):
        if path.startswith('config.') and path not in known and not any(
                path.startswith(f + '.') for f in FREE_FORM):
            close = difflib.get_close_matches(path, known, n=1, cutoff=0.8)
            hint = f' Did you mean {close[0]}?' if close else ''
            message = (f'unknown config key {path!r}: it is neither in VISSL defaults.yaml nor '
                       f'in densessl\'s vissl_plugins/defaults.yaml, so it would be ignored.'
                       f'{hint} Fix the key in the YAML or the command-line override.')
            if os.environ.get('DENSESSL_ALLOW_UNKNOWN_KEYS') == '1':
                logging.warning(message)
                continue
            raise UnknownConfigKeyError(message)
