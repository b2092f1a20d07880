"""Config inference and checks for ``dense_swav_loss`` runs (what VISSL's hydra_config does for
``swav_loss``; called by tools/run_distributed_engines.py after the config is composed).

Filled in from the rest of the config, so one value cannot disagree with another::

    LOSS.dense_swav_loss.num_crops       <- DATA.TRAIN.DENSE_SSL.VIEW_N
    LOSS.dense_swav_loss.num_prototypes  <- MODEL.HEAD.PARAMS[0][1].num_clusters[0]
    LOSS.dense_swav_loss.embedding_dim   <- MODEL.HEAD.PARAMS[0][1].dims[-1]

and checked: the head is one ``dense_swav_head``, the train data set is ``dense_ssl_dataset``
with ``dense_collator``, and the head's width equals the trunk's OUT_FEAT_DIM.
"""
from densessl.vice.deeplabv3plus import trunk_kwargs
from vissl_plugins.vice.dense_swav_loss import DenseSwAVConfigError


def infer_dense_swav_config(config):
    """Fill in and check (in place) a VISSL AttrDict config; no-op for other losses."""
    if config['LOSS']['name'] != 'dense_swav_loss':
        return config
    heads = config['MODEL']['HEAD']['PARAMS']
    if len(heads) != 1 or heads[0][0] != 'dense_swav_head':
        raise DenseSwAVConfigError(
            f'config.LOSS.name=dense_swav_loss needs config.MODEL.HEAD.PARAMS = '
            f'[["dense_swav_head", {{...}}]], got {[h[0] for h in heads]}')
    head = heads[0][1]
    clusters = head.get('num_clusters', 128)
    clusters = clusters[0] if isinstance(clusters, (list, tuple)) else clusters
    train = config['DATA']['TRAIN']
    if train.get('DATASET_TYPE') != 'dense_ssl_dataset' or \
            train.get('COLLATE_FUNCTION') != 'dense_collator':
        raise DenseSwAVConfigError(
            f'config.LOSS.name=dense_swav_loss needs config.DATA.TRAIN.DATASET_TYPE='
            f'dense_ssl_dataset and COLLATE_FUNCTION=dense_collator (got '
            f'{train.get("DATASET_TYPE")!r} and {train.get("COLLATE_FUNCTION")!r})')
    trunk = config['MODEL']['TRUNK']
    identity = head.get('identity_projection', True)
    out_dim = (trunk_kwargs(trunk.get('DEEPLABV3PLUS'))['out_feat_dim']  # with the trunk's defaults
               if trunk['NAME'] == 'deeplabv3plus' else None)
    if out_dim is not None and identity and head['dims'][-1] != out_dim:
        raise DenseSwAVConfigError(
            f'dense_swav_head dims[-1]={head["dims"][-1]} but the trunk\'s '
            f'MODEL.TRUNK.DEEPLABV3PLUS.OUT_FEAT_DIM={out_dim}; with identity_projection they '
            f'must be equal')
    loss = config['LOSS'].setdefault('dense_swav_loss', {})
    loss['num_crops'] = int(train['DENSE_SSL']['VIEW_N'])
    loss['num_prototypes'] = int(clusters)
    loss['embedding_dim'] = int(head['dims'][-1])
    return config
