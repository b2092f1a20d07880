"""Checking ``--cfg-options`` keys against the loaded config before they are merged.

mmengine adds any dotted key it is given, so a typo such as ``model.backbone.checkpiont=x``
is silently added to the config and ignored. Here every key must exist in the config.
"""
import difflib


class UnknownConfigKeyError(KeyError):
    def __str__(self):
        return self.args[0]


def _children(node):
    if isinstance(node, dict):
        return {str(k): v for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return {str(i): v for i, v in enumerate(node)}
    return {}


def check_cfg_options(cfg, options):
    """Raise :class:`UnknownConfigKeyError` naming the first key of ``options`` (a dict of
    dotted keys) that ``cfg`` does not have, with the closest existing key."""
    root = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    for dotted in options:
        node, walked = root, []
        for part in dotted.split('.'):
            children = _children(node)
            if part not in children:
                where = '.'.join(walked) or '<root>'
                close = difflib.get_close_matches(part, list(children), n=1, cutoff=0.6)
                hint = f" Did you mean '{'.'.join(walked + close)}'?" if close else ''
                raise UnknownConfigKeyError(
                    f"unknown config key '{dotted}': '{where}' has no '{part}'.{hint} "
                    f'Fix the --cfg-options key (keys must exist in the config).')
            node, walked = children[part], walked + [part]
