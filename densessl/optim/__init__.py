"""Optimisers of the dense SSL methods that plain PyTorch does not ship (framework-free).

``LARS``: layer-wise adaptive rate scaling, Barlow Twins style, as SlotCon trains with it.
"""
from densessl.optim.lars import LARS

__all__ = ['LARS']
