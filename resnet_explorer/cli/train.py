"""`train` (on one process or several under torchrun) and `degradation`; Ctrl-C stops a run cleanly."""

from __future__ import annotations

import argparse
import io
import signal
import sys
import threading
from collections.abc import Callable

from ..jobs.stops import ended
from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, STATUS_EXIT, CliError
from .models import confirm_large, spec_from_args
from .text import Progress, table


def _train_config(args: argparse.Namespace, world_size: int = 1):
    from ..training import TrainConfig

    if args.steps is not None:
        budget = {"steps": args.steps}
    else:  # epochs when asked for, else the defaults' steps
        budget = {"epochs": args.epochs} if args.epochs is not None else {"steps": args.default_steps}
    return TrainConfig(
        dataset=args.dataset, data_root=args.data_root, download=args.download, train_size=args.train_size,
        test_size=args.test_size, image_size=args.image_size, batch_size=args.batch_size, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, decay_all=args.decay_all,
        schedule=args.schedule, warmup=args.warmup, label_smoothing=args.label_smoothing, augment=args.augment,
        seed=args.seed, device=args.device, probe_every=args.probe_every, log_every=args.log_every,
        eval_every=args.eval_every, eval_size=args.eval_size, world_size=world_size, **budget,
    )


def stop_on_signals(stop: threading.Event, stream=None, second_interrupts: bool = True) -> Callable[[], None]:
    """Ctrl-C (or SIGTERM) sets `stop`: the run ends within a step or an evaluation batch and is kept.

    A second Ctrl-C raises KeyboardInterrupt at once (the trainer ends the run "stopped"), unless
    `second_interrupts` is False: a process training with others must not leave them waiting in a
    collective, so there every signal only asks for the (collective) stop.
    Returns a function that restores the previous handlers; a no-op off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    stream = stream or sys.stderr

    def on_signal(signum, frame) -> None:
        if stop.is_set():
            if signum == signal.SIGINT and second_interrupts:
                raise KeyboardInterrupt
            return
        stop.set()
        then = "(Ctrl-C again to stop at once)" if second_interrupts else "(every process stops after the same step)"
        print(f"\nstopping after this step or evaluation batch {then}", file=stream, flush=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()] and None


def _run_training(spec, config, root: str, yes: bool, stream=None, save_model: bool = True, world=None):
    """Train one spec into a new run folder under `root`; Ctrl-C stops it cleanly.

    Everything is checked before the folder exists: the runs folder's writability here, then the
    config, device, data and model in `train` (the folder is created on its "start" event).
    With several processes (`world`, in its process group) rank 0 alone checks and writes the folder.
    """
    from ..export import check_output_dir
    from ..models import large_model_message
    from ..runs import start_run
    from ..training.distributed import world_from_env

    if world is None and world_from_env().distributed:  # every process would train its own copy
        raise CliError("only `train` runs on several processes: start this command without torchrun")
    message = large_model_message(spec)
    if message:
        confirm_large(message, yes)
    if world is None or world.main:
        check_output_dir(root)
    stop = threading.Event()
    restore = stop_on_signals(stop, stream, second_interrupts=world is None or not world.distributed)
    try:
        result, writer = start_run(spec, config, root, listeners=[Progress(spec.label, stream)], stop=stop,
                                   save_model=save_model)
    finally:
        restore()
    return result, writer.path


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.distributed import world_from_env

    world = world_from_env()  # torchrun's environment; one process when it sets none
    try:
        if args.epochs is not None and args.steps is not None:
            raise CliError("give --epochs or --steps, not both")
        spec = spec_from_args(args)
        config = _train_config(args, world.size)
    except (CliError, ValueError):
        if world.main:
            raise
        return EXIT_USAGE  # the same arguments fail alike on every rank: rank 0 says why
    if world.distributed:
        return _train_distributed(args, spec, config, world)
    result, path = _run_training(spec, config, args.runs, args.yes, save_model=not args.no_weights)
    _say_if_at_chance(spec, result)
    if path.is_dir():
        print(path)
    return STATUS_EXIT[result.status]


def _say_if_at_chance(spec, result) -> None:
    """One line on stderr when the run ended without leaving chance (the rule every page uses)."""
    import pandas as pd

    from ..reports.findings import progress_of

    evals = pd.DataFrame(result.evals) if result.evals else None
    progress = progress_of(spec.name, spec.num_classes, pd.DataFrame(result.metrics), evals)
    if result.status in ("done", "stopped") and progress.at_chance:
        print(f"note: {progress.text()}", file=sys.stderr)


def _train_distributed(args: argparse.Namespace, spec, config, world) -> int:
    """`train` in one of several processes started by torchrun: join the group, train with
    DistributedDataParallel; rank 0 prints, writes the run folder and prints its path.

    Every rank ends with the run's exit code (the status is decided collectively). Errors are one
    line each; a rank other than 0 names itself.
    """
    from ..models import large_model_message
    from ..training.distributed import DistributedError, process_group

    try:
        message = large_model_message(spec)
        if message and not args.yes:  # no rank may wait on a question
            raise CliError(f"{message} (pass --yes: with several processes nothing is asked)")
        with process_group(config.device) as world:
            stream = sys.stderr if world.main else io.StringIO()
            if world.main:
                print(f"{world.size} processes ({world.backend}) x batch {config.batch_size} = global batch "
                      f"{world.size * config.batch_size}", file=stream, flush=True)
            result, path = _run_training(spec, config, args.runs, True, stream=stream,
                                         save_model=not args.no_weights, world=world)
    except DistributedError as err:
        print(f"error: {err}" if world.main else f"error: rank {world.rank}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except (CliError, ValueError) as err:
        if world.main:
            raise
        raise CliError(f"rank {world.rank}: {err}") from None
    if world.main and path.is_dir():
        print(path)
    return STATUS_EXIT[result.status]


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"{option} wants comma-separated whole numbers, got {text!r}") from None
    if not values:
        raise CliError(f"{option} wants at least one number")
    return list(dict.fromkeys(values))


def cmd_degradation(args: argparse.Namespace) -> int:
    """He et al. 2015 Fig. 6 in miniature: plain and residual twins at two depths, equal budgets, per seed."""
    from ..reports.compare import comparison_findings, group_rows
    from ..runs import load_run
    from ..training.presets import degradation_specs, describe

    depths = _ints(args.depths, "--depths")
    seeds = _ints(args.seeds, "--seeds") if args.seeds else [args.seed]
    specs = degradation_specs(depths)
    args.epochs = None
    base = _train_config(args)
    configs = [base.replace(seed=seed) for seed in seeds]  # every seed checked before the first run
    paths = []
    for seed, config in zip(seeds, configs):
        for spec in specs:
            result, path = _run_training(spec, config, args.runs, True, save_model=not args.no_weights)
            if result.status != "done":
                print(f"error: {spec.name} seed {seed} {ended(result.status, result.message)} ({path})",
                      file=sys.stderr)
                return STATUS_EXIT[result.status]
            paths.append(path)
    runs = [load_run(p, with_model=False) for p in paths]
    rows = [
        {"model": r["model"], "params": r["params"], "seeds": r["seeds"], "train_loss": r["train_loss_text"],
         "train_error_%": r["train_error_text"], "test_error_%": r["test_error_text"],
         "seconds": round(r["seconds"], 1)}
        for r in group_rows(runs)
    ]
    print()
    print(f"{describe(base)}, seeds {', '.join(map(str, seeds))}; train loss/error: mean of the last 20% of logged "
          "steps" + (", mean ± sd over seeds" if len(seeds) > 1 else ""))
    print(table(rows))
    print()
    for finding in comparison_findings(runs):  # plain nets, depths and twins read from the runs' specs
        print(f"{'yes' if finding.holds else 'NO '}  {finding.text}")
    return EXIT_OK
