"""Plain torchvision state dicts (``fc.*`` kept only when the source had it)."""


def to_torchvision(state_dict, meta):
    return dict(state_dict)
