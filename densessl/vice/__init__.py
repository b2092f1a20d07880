"""ViCE's framework-free parts (Karlsson et al., arXiv 2111.12460): the DeepLabV3+ network
(``deeplabv3plus``), region pooling and coherence (``region_pooling``), distributed
Sinkhorn-Knopp (``sinkhorn``), and the data generation of its views (``view_sampling``,
``superpixels``, ``context_masks``).

VISSL registers them through ``vissl_plugins/vice/``; MMSeg builds the frozen network through
``mmseg_plugins/vice/``. Nothing here imports a framework.
"""
