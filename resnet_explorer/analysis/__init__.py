"""Analysis of trained nets: pixel attribution (captum), its sanity checks, image loading, and the
lesion, path and loss-landscape studies (`.lesion`, `.paths`, `.landscape`; run through
`resnet_explorer.reports.explain`), which raise `AnalysisStopped` when their stop event is set.

Methods: saliency, integrated gradients, SmoothGrad, Grad-CAM, occlusion and DeepLIFT, one
`AttributionMethod` subclass each (in `.attribution`), registered by name in `METHODS` (which
cites each paper); all run in eval mode, so BatchNorm is a fixed affine map. Layer-wise
Relevance Propagation is not offered: captum's LRP does not support skip connections (captum#546).
"""

from .attribution import (
    METHODS,
    AttributionMethod,
    AttributionResult,
    MethodOutput,
    attribute,
    default_layer,
    layer_choices,
    method_support,
    predict,
    predict_top,
)
from .checks import mask_share, sanity_check
from .common import AnalysisStopped
from .images import ImageError, load_image

__all__ = [
    "METHODS", "AttributionMethod", "MethodOutput", "AttributionResult", "attribute", "predict", "predict_top", "layer_choices",
    "default_layer", "method_support", "mask_share", "sanity_check", "ImageError", "load_image", "AnalysisStopped",
]
