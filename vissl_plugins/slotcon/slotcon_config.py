"""Config inference and checks for ``slotcon_loss`` runs (called by
tools/run_distributed_engines.py after the config is composed, beside ViCE's).

Filled in from the rest of the config, so that one value cannot disagree with another::

    LOSS.slotcon_loss.num_prototypes       <- MODEL.HEAD.PARAMS[0][1].num_prototypes
    MODEL.HEAD.PARAMS[0][1].grouping_temp  <- LOSS.slotcon_loss.teacher_temp  (the original
                                              groups with its teacher temperature, student too)
    MODEL.HEAD.PARAMS[0][1].in_dim         <- the trunk's channels (torchvision_resnet: 512 for
                                              depth 18/34, 2048 for 50+; VISSL's resnet: 2048)

and checked: LOSS.slotcon_loss has only known keys; the model is ``slotcon_model`` with one
``slotcon_head``; the train data set is ``slotcon_two_crop`` with ``slotcon_collator``; a head
value given explicitly agrees with what it is inferred from.
"""
from vissl_plugins.slotcon.slotcon_loss import SlotConConfigError, checked_loss_config


def trunk_channels(trunk):
    """Channels of the trunk's res5 map, or None for a trunk this module does not know."""
    if trunk['NAME'] == 'torchvision_resnet':
        return 512 if int(trunk['TORCHVISION_RESNET']['DEPTH']) < 50 else 2048
    if trunk['NAME'] == 'resnet':
        return 2048 * int(trunk['RESNETS'].get('WIDTH_MULTIPLIER', 1))
    return None


def _agree(head, key, value, source):
    if key in head and head[key] is not None and head[key] != value:
        raise SlotConConfigError(
            f'slotcon_head {key}={head[key]} but {source} gives {value}; leave the head\'s {key} '
            f'out (it is filled in) or make them equal')
    head[key] = value


def infer_slotcon_config(config):
    """Fill in and check (in place) a VISSL AttrDict config; no-op for other losses."""
    if config['LOSS']['name'] != 'slotcon_loss':
        return config
    model = config['MODEL']
    if model.get('BASE_MODEL_NAME') != 'slotcon_model':
        raise SlotConConfigError(
            f'config.LOSS.name=slotcon_loss needs config.MODEL.BASE_MODEL_NAME=slotcon_model (per-'
            f'view forward, layer4 map), got {model.get("BASE_MODEL_NAME")!r}')
    heads = model['HEAD']['PARAMS']
    if len(heads) != 1 or heads[0][0] != 'slotcon_head':
        raise SlotConConfigError(
            f'config.LOSS.name=slotcon_loss needs config.MODEL.HEAD.PARAMS = '
            f'[["slotcon_head", {{...}}]], got {[h[0] for h in heads]}')
    train = config['DATA']['TRAIN']
    if train.get('DATASET_TYPE') != 'slotcon_two_crop' or \
            train.get('COLLATE_FUNCTION') != 'slotcon_collator':
        raise SlotConConfigError(
            f'config.LOSS.name=slotcon_loss needs config.DATA.TRAIN.DATASET_TYPE=slotcon_two_crop '
            f'and COLLATE_FUNCTION=slotcon_collator (got {train.get("DATASET_TYPE")!r} and '
            f'{train.get("COLLATE_FUNCTION")!r})')
    head = heads[0][1]
    if 'num_prototypes' not in head:
        raise SlotConConfigError('slotcon_head needs num_prototypes (K: 256 for COCO, 2048 for '
                                 'ImageNet)')
    loss = config['LOSS'].setdefault('slotcon_loss', {})
    checked = checked_loss_config(loss)  # unknown keys fail here, before any process starts
    _agree(loss, 'num_prototypes', int(head['num_prototypes']), 'MODEL.HEAD num_prototypes')
    loss['num_prototypes'] = int(head['num_prototypes'])
    _agree(head, 'grouping_temp', float(checked['teacher_temp']),
           'LOSS.slotcon_loss.teacher_temp')
    channels = trunk_channels(model['TRUNK'])
    if channels is not None:
        _agree(head, 'in_dim', channels, f'the trunk {model["TRUNK"]["NAME"]}')
    elif 'in_dim' not in head:
        raise SlotConConfigError(f'slotcon_head needs in_dim for trunk {model["TRUNK"]["NAME"]} '
                                 f'(the channels of its res5 map)')
    return config
