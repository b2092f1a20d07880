"""MMSeg backbone checkpoints: ``{'state_dict': {'backbone.<torchvision name>': t}, 'meta'}``.

mmseg's ResNet uses torchvision's parameter names, so the file loads as ``load_from`` or
through ``FrozenResNet(checkpoint=...)`` (which strips ``backbone.`` and checks every key).
"""


def to_mmseg(state_dict, meta):
    return {'state_dict': {f'backbone.{k}': v for k, v in state_dict.items()
                           if not k.startswith('fc.')},
            'meta': meta}
