"""VISSL training checkpoints (``model_phaseN.torch``, ``model_final_checkpoint_phaseN.torch``).

The trunk lives at ``['classy_state_dict']['base_model']['model']['trunk']`` with keys
``_feature_blocks.<torchvision name>`` (VISSL's ``resnet`` and densessl's
``torchvision_resnet`` trunks alike); the heads at ``...['model']['heads']`` are dropped.
"""
from converters.checkpoint_file import ConversionError, load_checkpoint_file

TRUNK_PREFIX = '_feature_blocks.'


def _trunk_of(checkpoint, path):
    try:
        model = checkpoint['classy_state_dict']['base_model']['model']
        return model['trunk'], model.get('heads', {})
    except (KeyError, TypeError):
        pass
    if isinstance(checkpoint, dict) and 'trunk' in checkpoint:  # exported trunk-only file
        return checkpoint['trunk'], checkpoint.get('heads', {})
    raise ConversionError(
        f'{path} is not a VISSL checkpoint: expected the trunk at '
        f"['classy_state_dict']['base_model']['model']['trunk'] (top-level keys: "
        f'{sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint)}). '
        f'Use --src-format torchvision for a plain state dict.')


def read_vissl(path):
    trunk, heads = _trunk_of(load_checkpoint_file(path), path)
    state, dropped = {}, [f'heads.{k}' for k in heads]
    for key, value in trunk.items():
        if key.startswith(TRUNK_PREFIX):
            state[key[len(TRUNK_PREFIX):]] = value
        else:
            state[key] = value  # reported as unexpected by the check
    return state, dropped
