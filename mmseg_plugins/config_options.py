"""Checking ``--cfg-options`` keys against the loaded config before they are merged.

mmengine's ``Config.merge_from_dict`` adds any dotted key it is given, so a typo such as
``model.backbone.checkpiont=x.pth`` is silently added and ignored: the run "works" with
the wrong setting. tools/train.py and tools/test.py call :func:`check_cfg_options` first:

- every part of a dotted key must exist in the loaded config (dict keys, or list indices
  such as ``param_scheduler.0.end``); the value may be anything, ``None`` included
  (``model.backbone.checkpoint=None``);
- the only new keys allowed are top-level Runner settings a config may leave out
  (:data:`NEW_TOP_LEVEL_KEYS`, e.g. ``work_dir``, ``model_wrapper_cfg``, ``auto_scale_lr``);
- anything else is refused with the key, where it stops matching and the closest existing
  key. A genuinely new key goes in a small config that inherits this one (``_base_``).
"""
import difflib

# Runner.from_cfg reads these top-level keys; a config may omit them.
NEW_TOP_LEVEL_KEYS = frozenset({
    'work_dir', 'experiment_name', 'model_wrapper_cfg', 'auto_scale_lr', 'sync_bn', 'cfg',
    'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer', 'default_scope',
    'randomness', 'resume', 'load_from', 'custom_hooks', 'default_hooks', 'train_cfg',
    'val_cfg', 'test_cfg', 'param_scheduler', 'optim_wrapper', 'val_evaluator',
    'test_evaluator', 'train_dataloader', 'val_dataloader', 'test_dataloader'})


class UnknownConfigKeyError(KeyError):
    """A ``--cfg-options`` key that the config does not have."""

    def __str__(self):
        return self.args[0]


def _children(node):
    if isinstance(node, dict):
        return {str(k): v for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return {str(i): v for i, v in enumerate(node)}
    return None


def check_cfg_options(cfg, options):
    """Raise :class:`UnknownConfigKeyError` for the first key of ``options`` (dotted keys,
    as ``DictAction`` parses them) that ``cfg`` does not have."""
    root = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    for dotted in options:
        parts = dotted.split('.')
        if len(parts) == 1 and parts[0] in NEW_TOP_LEVEL_KEYS:
            continue
        node, walked = root, []
        for part in parts:
            children = _children(node)
            if children is None:
                raise UnknownConfigKeyError(
                    f"unknown config key '{dotted}': '{'.'.join(walked)}' is a value "
                    f'({node!r}), not a dict or list, so it has no {part!r}. Fix the '
                    f'--cfg-options key.')
            if part not in children:
                where = '.'.join(walked) or 'the config'
                close = difflib.get_close_matches(part, list(children), n=1, cutoff=0.6)
                hint = f" Did you mean '{'.'.join(walked + close)}'?" if close else ''
                raise UnknownConfigKeyError(
                    f"unknown config key '{dotted}': {where} has no '{part}'.{hint} "
                    f'--cfg-options only changes keys that exist in the config (mmengine '
                    f'would add the typo silently); to add a new key, write a config that '
                    f'inherits this one (_base_ = [...]).')
            node, walked = children[part], walked + [part]
