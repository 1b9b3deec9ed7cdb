"""Datasets as uint8 tensors, and batched tensor augmentations.

`load_data` turns a name ("shapes", "cifar10", "cifar100", "folder:PATH") into an `ImageData`;
`normalize` and `augment_batch` prepare batches on any device; `denormalize` turns normalised
images back into [0, 1] pixels for display.
"""

from .augment import augment_batch, denormalize, normalize
from .base import ImageData, spread_over_classes
from .load import DATASETS, load_data
from .shapes import SHAPES_CLASSES

__all__ = ["ImageData", "load_data", "DATASETS", "augment_batch", "denormalize", "normalize", "SHAPES_CLASSES", "spread_over_classes"]
