"""Optimizer ``slotcon_lars``: densessl's LARS (densessl/optim/lars.py) for VISSL configs.

VISSL 0.1.6 ships a LARS (``name: lars``, vissl/optimizers/lars.py) with the same update, but
it leaves weight decay of 1-D parameters to VISSL's param groups, which decide by module
type (Conv/Linear biases via ``regularize_bias``, BatchNorm/LayerNorm via ``regularize_bn``;
any other module's parameters, e.g. GroupNorm's, keep the weight decay). SlotCon's rule is by
shape: no parameter with ``ndim == 1`` gets weight decay or a trust ratio. This optimizer
applies that rule itself, so the update is SlotCon's whatever the ``regularize_*`` flags say.

Config::

    OPTIMIZER:
      name: slotcon_lars
      momentum: 0.9
      weight_decay: 0.00001
      param_schedulers: {lr: ...}   # VISSL's schedulers set lr every step

The trust coefficient eta is SlotCon's 0.001. ``from_config`` reads ``OPTIMIZER.eta`` if a
config has it, but that is not a declared VISSL key, so vissl_plugins.config_check refuses it
in YAMLs and overrides (add it to a defaults.yaml first if another value is ever needed).
"""
from typing import Any, Dict

from classy_vision.optim import ClassyOptimizer, register_optimizer

from densessl.optim.lars import LARS


@register_optimizer('slotcon_lars')
class SlotConLARS(ClassyOptimizer):
    def __init__(self, lr=0.1, momentum=0.9, weight_decay=0.0, eta=0.001):
        super().__init__()
        self._lr, self._momentum = lr, momentum
        self._weight_decay, self._eta = weight_decay, eta

    def prepare(self, param_groups):
        self.optimizer = LARS(param_groups, lr=self._lr, momentum=self._momentum,
                              weight_decay=self._weight_decay, eta=self._eta)

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> 'SlotConLARS':
        return cls(lr=float(config.get('lr', 0.1)), momentum=float(config.get('momentum', 0.9)),
                   weight_decay=float(config.get('weight_decay', 0.0)),
                   eta=float(config.get('eta', 0.001)))
