"""Model ``slotcon_model``: VISSL's multi_input_output_model, run one view at a time.

SlotCon (spec 2(a)) forwards each of its two views separately through the encoder and the
projector, so every BatchNorm normalises over one view's batch (B images), not over both
views together. VISSL's model runs the trunk once on whatever tensor it gets, and SlotCon's
collator gives one tensor (2B, 3, S, S) = cat([view 1, view 2]). This model splits it:

    for v in (1, 2):  out_v = heads(trunk(images[v*B:(v+1)*B], ['res5']))
    returns [[cat_v(out_v[0]), cat_v(out_v[1]), ...]]        (view-major rows, like the input)

with the trunk's ``res5`` map (layer4: (B, 2048, 7, 7) at 224 px for ResNet-50), which the
default model would not return (it asks the trunk for its last block, the flattened pool).
Parameter names are the default model's (``trunk._feature_blocks.*``, ``heads.0.*``), so
checkpoints convert as every other VISSL checkpoint. In eval mode (BatchNorm uses running
statistics, so views cannot interact) and in feature-extraction mode the input is not split;
feature extraction behaves exactly as VISSL's model.

Config: ``MODEL.BASE_MODEL_NAME: slotcon_model``. The teacher (``SlotConTeacherHook``) is
built from the same config, so it runs per view too.
"""
import torch
from vissl.models import register_model
from vissl.models.base_ssl_model import BaseSSLMultiInputOutputModel
from vissl.models.model_helpers import is_feature_extractor_model

NUM_VIEWS = 2
TRUNK_FEATURE = 'res5'


def concat_views(outputs):
    """[per-view output, ...] (tensors or nested lists of tensors) -> one output with every
    tensor concatenated over the views along dim 0."""
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs, dim=0)
    return [concat_views(list(parts)) for parts in zip(*outputs)]


@register_model('slotcon_model')
class SlotConModel(BaseSSLMultiInputOutputModel):
    """See the module docstring."""

    def __init__(self, model_config, optimizer_config):
        super().__init__(model_config, optimizer_config)
        self.feature_extraction = is_feature_extractor_model(model_config)
        if not self.feature_extraction:
            self._output_feature_names = [TRUNK_FEATURE]

    def single_input_forward(self, batch, feature_names, heads):
        if self.feature_extraction or not self.training:
            return super().single_input_forward(batch, feature_names, heads)
        if not isinstance(batch, torch.Tensor) or batch.shape[0] % NUM_VIEWS:
            raise ValueError(
                f'slotcon_model: expects one tensor of {NUM_VIEWS} x B images (view 1 of the '
                f'batch, then view 2), got {type(batch).__name__} '
                f'{tuple(getattr(batch, "shape", ()))}; use DATA.TRAIN.COLLATE_FUNCTION: '
                f'slotcon_collator')
        outputs = [super(SlotConModel, self).single_input_forward(view, feature_names, heads)
                   for view in batch.chunk(NUM_VIEWS)]
        return concat_views(outputs)
