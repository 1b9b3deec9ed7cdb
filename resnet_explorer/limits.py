"""Every ceiling on what a name, a link, a form, a file or a command line can ask for.

One module, so the README's "Limits" table, the app's widgets and the validators agree (a test
checks the README against these values). Each limit is checked arithmetically, before anything
is allocated for the request: a link naming a net of a billion units gets a message, not a
server that allocates until it dies.

The numbers leave every paper's network well inside: resnet1202 has 600 residual units,
preact_resnet1001 333, wide_resnet101_2 127 M parameters; CIFAR-10's training split is 50,000
images.
"""

from __future__ import annotations

# ---- models (ModelSpec, build_model) --------------------------------------------------------
MAX_UNITS = 10_000  # residual units over all stages (resnet1202: 600)
MAX_PARAMS = 2_000_000_000  # parameters; 8 GB of float32 weights (confirmation needed past 200 M)
MAX_WIDTH_MULTIPLIER = 16.0
MIN_WIDTH_MULTIPLIER = 0.125
MAX_CLASSES = 100_000
MAX_IN_CHANNELS = 64
MAX_GROUPS = 256
MAX_WIDTH_PER_GROUP = 1024
MAX_INPUT_SIZE = 1024  # pixels per side for the graph, summaries and attributions

# ---- training (TrainConfig, data loaders) -----------------------------------------------------
MAX_TRAIN_IMAGES = 100_000  # training images held in memory (two CIFAR-10 training splits)
MAX_TEST_IMAGES = 100_000
MAX_DATA_BYTES = 2_000_000_000  # float32 bytes of train + test images held in memory
MAX_IMAGE_SIZE = 512  # training image side in pixels
MAX_BATCH_SIZE = 4096
MAX_STEPS = 10_000_000
MAX_EPOCHS = 10_000
MAX_WORLD_SIZE = 1024  # processes training one run together (torchrun's WORLD_SIZE)
MAX_SEED = 2**32 - 1  # numpy's and most tools' seed range; torch takes more, but reports say less
JOBS_PER_DEVICE = 1  # training runs the app runs at once per device; more wait in a queue

# ---- files ------------------------------------------------------------------------------------
MAX_IMAGE_PIXELS = 20_000_000  # width x height of an uploaded image or one in a training folder,
# read from the header before decoding
MAX_PATH_CHARS = 4_096  # a folder path typed into a form or a task's options (Linux's PATH_MAX)
MAX_USER_IMAGES = 512  # the user's own images read at once (a folder or uploads), each up to MAX_IMAGE_PIXELS
MAX_ATTRIBUTE_SAMPLES = 10_000  # images one `attribute` command explains (the grid PNG shows the first 32)
ATTRIBUTE_BATCH = 32  # images attributed at once: memory stays bounded whatever the sample count
MAX_CHECKPOINT_BYTES = 4_000_000_000  # an imported checkpoint file (`import-weights`), checked before reading;
# wide_resnet101_2's weights take 0.5 GB, a training checkpoint with optimiser and EMA copies about 2 GB

# ---- files from elsewhere: checkpoints, run folders, CIFAR batches (pickle_guard, runs, data.cifar) --
MAX_PICKLE_BYTES = 64_000_000  # one pickle's opcodes (a state dict's: ~150 bytes per tensor; CIFAR's batch: 31 MB)
MAX_PICKLE_NODES = 10_000_000  # objects one unpickled object may expand to (24 per tensor: resnet1202's 7,208 take 170,618)
MAX_PICKLE_DEPTH = 64  # nesting of one object (a state dict in a checkpoint's dict: about 6)
MAX_RUN_JSON_BYTES = 64_000_000  # run.json (100,000 class names of 100 characters take 10 MB)
MAX_CIFAR_FILE_BYTES = 200_000_000  # the largest, cifar-100-python/train, takes 155 MB

# ---- explain: lesions, paths, loss landscape (resnet_explorer.reports.explain) ------------------------
MAX_LESION_IMAGES = 10_000  # held-out images evaluated for every lesioned or reordered net
MAX_LESION_DRAWS = 100  # random draws per k (the paper's Fig. 5 averages a few)
MAX_LESION_CONFIGS = 10_000  # lesioned or reordered nets in one call (resnet56, all k, 100 draws: 2,700)
MAX_PATH_DRAWS = 1_000  # random unit sets per path length; the paper took 1,000 measurements per length
MAX_PATH_IMAGES = 1_024  # images measured; each batch of them is one forward pass
MAX_PATH_PASSES = 20_000  # backward passes in all: batches x lengths x draws (resnet56 at the defaults: 280)
MAX_LANDSCAPE_GRID = 101  # points per axis: a 2-D grid is at most 101 x 101 = 10,201 evaluations
MAX_LANDSCAPE_IMAGES = 10_000  # training images evaluated at every grid point
MAX_LANDSCAPE_SPAN = 10.0  # largest |alpha|, |beta|; the paper plots [-1, 1]


def check_int(name: str, value: object, low: int, high: int) -> int:
    """`value` as an int in [low, high]; ValueError naming `name` and the range otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low:,} to {high:,}, got {value:,}")
    return value
