"""Command line: the app's jobs without a browser.

    python -m resnet_explorer list
    python -m resnet_explorer info resnet56 [--plain] [--export DIR --format html,png,csv]
    python -m resnet_explorer train --model resnet56 --steps 250
    torchrun --standalone --nproc_per_node 2 -m resnet_explorer train --model resnet56 --steps 250
    python -m resnet_explorer degradation
    python -m resnet_explorer attribute RUN --methods saliency,gradcam [--photos PATH] --out DIR
    python -m resnet_explorer import-weights resnet50.pth --model resnet50 [--classes names.txt]
    python -m resnet_explorer import-weights --list | --model resnet50 --download [IMAGENET1K_V1]

Words: --runs is always the runs folder (written by train, degradation and import-weights; where run
ids are looked up), --out an output folder for files that are not runs, --photos your own image file or
folder, --samples and --images counts of images. Old spellings still accepted for one release, with a
note: --out for the runs folder (train, degradation, import-weights), attribute --image, profile --images.

Exit codes: 0 done; 1 failed; 2 bad arguments or config (one line on stderr, no traceback);
3 diverged; 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..formats import FIGURE_FORMATS, INFO_FORMATS, REPORT_FORMATS
from ..limits import MAX_USER_IMAGES
from .analyse import GRID_ROWS, cmd_attribute, cmd_explain, cmd_report
from .exits import EXIT_DIVERGED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, STATUS_EXIT, CliError
from .models import cmd_info, cmd_list
from .spellings import PHOTOS_NOTE, RUNS_NOTE, check_spellings, renamed
from .text import terminal_safe
from .train import cmd_degradation, cmd_train, stop_on_signals
from .weights import cmd_import_weights

# `build_parser` takes the commands from this module's names each time `main` builds it, so replacing
# `cli.cmd_list` (a test does) replaces the command
__all__ = [
    "EXIT_DIVERGED", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "OUT_OF_MEMORY", "PHOTOS_NOTE",
    "RUNS_NOTE", "STATUS_EXIT", "CliError", "build_parser", "cmd_attribute", "cmd_degradation", "cmd_explain",
    "cmd_import_weights", "cmd_info", "cmd_list", "cmd_report", "cmd_train", "main", "stop_on_signals",
    "terminal_safe",
]

DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)"
OUT_OF_MEMORY = "out of memory; ask for a smaller model, batch or dataset, or fewer images"


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers wants comma-separated unit counts, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_explorer",
        description="Build, inspect and compare residual networks and their plain twins.",
    )
    parser.add_argument("--version", action="version", version=f"resnet_explorer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="registered variants with parameters and the papers' numbers")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="block graph counts, per-stage table and the plain/residual twin")
    p.add_argument("model", nargs="?", help="a variant name, e.g. resnet56, plain20, resnet50, preact_resnet164")
    _model_args(p)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--input-size", type=int, help="square input side (default 224 imagenet, 32 cifar)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--blocks", action="store_true", help="also print the per-unit table")
    p.add_argument("--summary-depth", type=int, default=0, help="print torchinfo's layer table to this depth")
    p.add_argument("--yes", action="store_true", help="build a very large model without asking")
    p.add_argument("--export", metavar="DIR", help="write the graph and tables here")
    p.add_argument("--format", default="html,png,csv", help=f"comma list of {', '.join(INFO_FORMATS)}")
    p.set_defaults(func=cmd_info)

    from ..analysis import METHODS
    from ..analysis.attribution import BASELINES, IG_MAX_STEPS, IG_START_STEPS, IG_TOLERANCE
    from ..limits import MAX_ATTRIBUTE_SAMPLES
    from ..training.presets import DEGRADATION_DEPTHS, DEGRADATION_SEEDS, degradation_config, quick_config

    p = sub.add_parser("train", help="train a model briefly with probes; prints the run folder last")
    p.add_argument("--model", dest="model", help="a variant name, e.g. resnet56, plain20 (see `list`)")
    _model_args(p)
    _train_args(p, quick_config())
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("degradation", help="He et al. 2015 Fig. 6 in miniature: plain vs residual at two depths",
                       description="Train plain and residual CIFAR nets at two depths with equal budgets, for one "
                                   "or more seeds, and count over seeds whether the deeper plain net trains worse "
                                   "and its residual twin better. Defaults: the preset (training.presets).")
    p.add_argument("--depths", default=",".join(map(str, DEGRADATION_DEPTHS)),
                   help="CIFAR depths (6n+2), default %(default)s")
    p.add_argument("--seeds", help=f"comma list of seeds, each training every net (e.g. "
                                   f"{','.join(map(str, DEGRADATION_SEEDS))}); default: --seed")
    _train_args(p, degradation_config())
    p.set_defaults(func=cmd_degradation)

    p = sub.add_parser("attribute", help="captum attributions of a trained run: npz, PNG grids, scores")
    p.add_argument("run", help="a run folder, or a run id under --runs")
    p.add_argument("--methods", default="saliency,integrated_gradients,gradcam,occlusion",
                   help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--layer", help="Grad-CAM layer: a stage (layer3) or a unit (layer3.8); default the last unit")
    p.add_argument("--samples", type=int, help="held-out images to explain, spread over the classes (default 8, "
                   f"at most {MAX_ATTRIBUTE_SAMPLES:,}; the PNG grids show the first {GRID_ROWS})")
    renamed(p, "--photos", "--image", PHOTOS_NOTE.format(old="--image", command="attribute"), metavar="PATH",
             help="explain this image file, or the images in this folder, instead (PNG/JPEG, any "
                  f"mode; a folder's first {MAX_USER_IMAGES} by name)")
    p.add_argument("--target", help="class name or number to explain (default: each image's prediction)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Integrated Gradients steps for every image, 1 to {IG_MAX_STEPS} (default: adaptive, "
                        f"{IG_START_STEPS} doubling until the completeness gap is under {IG_TOLERANCE:.0%}%, at most "
                        f"{IG_MAX_STEPS})")  # %% for argparse
    p.add_argument("--baseline", choices=list(BASELINES), default="zeros",
                   help="baseline of Integrated Gradients, DeepLIFT and Occlusion: zeros (the dataset mean), "
                        "black, or blur (a blurred copy of the image); default zeros")
    p.add_argument("--no-sanity", action="store_true", help="skip the model-randomisation sanity check")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_attribute)

    from ..reports.explain import LENSES

    for entry in LENSES.values():  # every flag from the lens's options: its type, bound, default and help
        p = sub.add_parser(entry.name, help=entry.summary + "; CSV and figures into --out, the folder printed last",
                           description=entry.summary[:1].upper() + entry.summary[1:] + ". CSV and figures go into "
                           "--out; the result is also kept in the run folder, for `report` and the Explain page.")
        p.add_argument("run", help="a run folder, or a run id under --runs")
        if entry.twin:
            p.add_argument("--twin", action="store_true",
                           help="also analyse the run's twin (found beside it) and draw both together")
        for option in entry.options:
            flag = f"--{option.name}"
            if option.kind is bool:
                p.add_argument(flag, action=argparse.BooleanOptionalAction, default=option.default,
                               help=option.cli_help())
            elif option.old_flag:  # the one renamed lens option is the user's photos (`--photos` everywhere)
                renamed(p, flag, option.old_flag, PHOTOS_NOTE.format(old=option.old_flag, command=entry.name),
                        type=option.kind, metavar="FOLDER", help=option.cli_help())
            else:  # a str option's default (and one used `unless` another) is None here: given or not, tells
                given = option.kind is str or option.unless
                p.add_argument(flag, type=option.kind, default=None if given else option.default,
                               choices=option.choices, help=option.cli_help())
        p.add_argument("--device", default="auto", help=DEVICE_HELP)
        p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
        p.add_argument("--format", default="html,png", help=f"figure formats: comma list of {', '.join(FIGURE_FORMATS)}")
        p.add_argument("--out", default=entry.name, help=f"output folder (default ./{entry.name})")
        p.set_defaults(func=cmd_explain, lens=entry.name)

    p = sub.add_parser("report", help="figures, tables and an offline index.html comparing runs")
    p.add_argument("run", nargs="+", metavar="RUN", help="run folders, or run ids under --runs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="html,png,svg", help=f"comma list of {', '.join(REPORT_FORMATS)} (default all)")
    p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("import-weights", help="a pretrained torchvision or timm ImageNet ResNet as a run folder",
                       description="Read a torchvision or timm ResNet checkpoint (weights_only: nothing in it is "
                                   "executed), check it against the zoo's net, and write a run folder of kind "
                                   "\"imported\" with ImageNet preprocessing (resize 256, or 232 for torchvision's "
                                   "V2 weights, then crop 224, ImageNet mean and std). Nothing is downloaded unless "
                                   "--download is given. Prints the run folder last.")
    p.add_argument("file", nargs="?", help="the checkpoint: a state dict, or a dict with state_dict / model / "
                                           "state_dict_ema")
    p.add_argument("--model",
                   help="the zoo's name of the net: resnet18 ... resnet152, wide_resnet50_2, resnext50_32x4d, ...")
    p.add_argument("--list", action="store_true", help="list the checkpoints in torch's hub cache and the Hugging Face cache (timm) and stop")
    p.add_argument("--download", nargs="?", const=True, metavar="TAG",
                   help="fetch torchvision's published weights for --model into torch's hub cache (needs the "
                        "internet; the SHA-256 prefix in the file name is checked): its default, or TAG such as "
                        "IMAGENET1K_V1")
    p.add_argument("--resize", type=int, help="short side before the 224 crop (default: torchvision's for a file "
                                              "it publishes, else 256)")
    p.add_argument("--classes", help="text file of class names, one per line, one per output (default: the "
                                     "ImageNet names for 1,000 outputs, else 0..n-1)")
    renamed(p, "--runs", "--out", RUNS_NOTE, default="runs", help="the runs folder to write the run into "
                                                                   "(default ./runs)")
    p.set_defaults(func=cmd_import_weights)
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    """Compose / modify a model: shared by `info` (name positional) and `train` (--model)."""
    p.set_defaults(num_classes=None, in_channels=None)
    p.add_argument("--stem", choices=("imagenet", "cifar"), help="compose: the stem family")
    p.add_argument("--block", choices=("basic", "bottleneck"), help="compose: the unit type")
    p.add_argument("--layers", type=_layers, help="compose: units per stage, e.g. 2,2,2,2 or 9,9,9")
    p.add_argument("--preact", action="store_true", help="full pre-activation units (He et al. 2016)")
    p.add_argument("--plain", action="store_true", help="the twin without shortcuts")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="A zero-pad, B projection where shapes change, C always")
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--groups", type=int)
    p.add_argument("--width-per-group", type=int)
    p.add_argument("--zero-init", action="store_true", help="zero the last BN of every residual branch")


def _train_args(p: argparse.ArgumentParser, d) -> None:
    """Training options with the defaults of the TrainConfig `d` (the preset's for `degradation`)."""
    p.add_argument("--dataset", default=d.dataset,
                   help="shapes (embedded), shapes-easy (bigger, cleaner shapes), cifar10, cifar100 or folder:PATH "
                        "(default %(default)s)")
    p.add_argument("--data-root", help="folder with CIFAR in the python-pickle layout (default ./data)")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing (checksum verified)")
    p.add_argument("--train-size", type=int, default=d.train_size, help="use this many training images")
    p.add_argument("--test-size", type=int, default=d.test_size, help="use this many held-out images")
    p.add_argument("--image-size", type=int, default=d.image_size, help="image side in pixels (default %(default)s)")
    p.add_argument("--epochs", type=float, help="budget in epochs, instead of steps")
    p.add_argument("--steps", type=int, help=f"budget in optimizer steps (default {d.steps})")
    p.set_defaults(default_steps=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default %(default)s")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--decay-all", action="store_true", default=d.decay_all,
                   help="decay BN and bias parameters too, as He et al. 2015 (default: weights only)")
    p.add_argument("--schedule", choices=("onecycle", "cosine", "step", "constant"), default=d.schedule)
    p.add_argument("--warmup", type=float, default=d.warmup, help="one-cycle warm-up share (default %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--no-augment", dest="augment", action="store_false", default=d.augment,
                   help="no random crop / flip")
    p.add_argument("--augment", dest="augment", action="store_true", help="random crop and flip (He et al. 2015)")
    p.add_argument("--device", default=d.device, help=DEVICE_HELP.replace("auto)", "%(default)s)"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--probe-every", type=int, default=d.probe_every, help="probe every K steps (0: off)")
    p.add_argument("--log-every", type=int, default=d.log_every, help="log averaged loss/accuracy every K steps")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="evaluate every K steps (0: automatic, within 10%% of the run's compute; the end always)")
    p.add_argument("--eval-size", type=int, default=d.eval_size, help="held-out images per intermediate evaluation")
    renamed(p, "--runs", "--out", RUNS_NOTE, default="runs", help="the runs folder to write runs into (default ./runs)")
    p.add_argument("--yes", action="store_true", help="train a very large model without asking")
    p.add_argument("--no-weights", action="store_true", help="do not save model.pt (curves and probes only)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        check_spellings(args)
        return args.func(args)
    except (CliError, ValueError) as err:
        print(f"error: {terminal_safe(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as err:  # an analysis names what it was asked for; an allocation anywhere else does not
        print(f"error: {terminal_safe(err) if str(err) else OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_FAILED
    except RuntimeError as err:  # torch's CPU allocator raises RuntimeError, not MemoryError
        from ..devices import is_out_of_memory

        if not is_out_of_memory(err):
            raise
        print(f"error: {OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # a file or folder that failed mid-way (disk full, removed): one line
        if isinstance(err, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {terminal_safe(err.strerror or err)}{terminal_safe(where)}", file=sys.stderr)
        return EXIT_FAILED
