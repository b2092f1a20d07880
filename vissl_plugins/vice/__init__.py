"""ViCE (Karlsson et al., arXiv 2111.12460) as VISSL plugins: dense SwAV on superpixel regions.

Spec: ../shared/specs/pretrain.md section 1 and 6; user docs: docs/vice.md.
"""
