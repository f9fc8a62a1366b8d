"""The ``mlrn`` command line: upscale, bench, models, train and export, over the same core the app uses.

Parsers are built inside :func:`build_parser` (never at import time). Each sub-command returns an
exit status; user errors print one line naming the problem and exit with 2, failures inside a batch
exit with 1 after the summary.

Start-up: nothing here imports torch before a command runs, so ``mlrn --help``, ``mlrn --version``, the
other commands' ``--help`` and argument errors answer in a fraction of a second instead of the 2-4 s torch
takes to import (``benchmarks/startup.py``). The one parser that needs torch to be built is upscale's
(:mod:`mlrn_core.cli_upscale` takes its choices from :mod:`mlrn_core.batch`): it is built only when the
command is ``upscale`` (:func:`_command_of`); otherwise a stand-in with the same one-line help is listed.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from mlrn_core.terminal import EXIT_OK, EXIT_USAGE, Progress, bar, fmt_duration

# --- bench ----------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from mlrn_core import data as data_mod
    from mlrn_core import registry
    from mlrn_core.evaluate import benchmark, parse_degradation
    from mlrn_core.tiling import DeviceError, pick_device

    progress = Progress()
    loaded = None
    try:
        degradation = parse_degradation(args.degrade)
    except ValueError as exc:
        print(f"mlrn bench: --degrade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        device = pick_device(args.device)
        loaded = registry.load_model(args.model, args.scale)
    except DeviceError as exc:
        print(f"mlrn bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except registry.ModelError as exc:
        if args.model:  # an explicit model that fails is an error; a missing default is reported as null
            print(f"mlrn bench: {exc}", file=sys.stderr)
            return EXIT_USAGE
        progress.line(f"note: {exc}; reporting bicubic only")
    try:
        res = benchmark(
            args.dirs,
            args.scale,
            loaded.model if loaded else None,
            loaded.name if loaded else None,
            device,
            args.tile,
            progress=lambda i, n, name: progress.update(f"bench {bar(i / max(1, n))} {i}/{n} {name}"),
            degradation=degradation,
            ensemble=args.quality == "best",
            precision=args.precision,
        )
    except (data_mod.DataError, ValueError) as exc:
        print(f"mlrn bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress.line("")
    for path, reason in res.skipped:
        progress.line(f"skipped {path}: {reason}")
    if args.json:
        print(json.dumps(res.as_json()))
        return EXIT_OK
    for row in res.per_image:
        m = row.get("model")
        print(
            f"{row['image']:<28} bicubic {row['bicubic']['psnr']:7.3f} dB / {row['bicubic']['ssim']:.4f}"
            + (f"   model {m['psnr']:7.3f} dB / {m['ssim']:.4f}" if m else "")
        )
    b, m = res.bicubic, res.model
    print(
        f"{'mean of ' + str(len(res.images)) + ' images':<28} bicubic {b.psnr:7.3f} dB / {b.ssim:.4f}"
        + (
            f"   {res.model_name}{' (best quality)' if res.quality == 'best' else ''}"
            f"{'' if res.precision == 'fp32' else ' (' + res.precision + ')'} {m.psnr:7.3f} dB / {m.ssim:.4f}"
            if m
            else ""
        )
    )
    return EXIT_OK


# --- models ---------------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from mlrn_core import paths, registry

    entries = registry.list_models()
    problems = registry.model_problems()
    for path, reason in problems:  # never hidden: a file the user put there and cannot pick
        print(f"mlrn models: cannot use {path}: {reason}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "kind": e.kind,
                        "scale": e.scale,
                        "path": str(e.path),
                        "metrics": e.info.get("metrics", {}),
                    }
                    for e in entries
                ]
            )
        )
        return EXIT_OK
    if not entries:
        print(
            "no models: the built-in weights are missing from this installation (reinstalling MLRN Studio "
            f"restores them) and there are no user models in {paths.user_models_dir()}"
        )
        return EXIT_OK
    from mlrn_core.model_summary import quality

    print(f"{'name':<24} {'kind':<9} {'scale':<5} {'measured gain (PSNR, on the images named)':<48} path")
    for e in entries:
        q = quality(e.info)  # PSNRs of different images are not comparable; gains over a reference are
        print(f"{e.name:<24} {e.kind:<9} x{e.scale:<4} {q.short if q else '-':<48} {e.path}")
    print(f"\nuser models folder: {paths.user_models_dir()}")
    return EXIT_OK


# --- train ----------------------------------------------------------------------------------------


def _parse_kernels(text: str) -> tuple[tuple[int, int], ...]:
    """'3,3x5,5x5' -> ((3,3),(3,5),(5,5)); '3,5,7' -> ((3,3),(5,5),(7,7))."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        try:
            if "x" in part:
                h, w = part.split("x")
                out.append((int(h), int(w)))
            else:
                out.append((int(part), int(part)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"cannot read kernel size '{part}' (use e.g. 3,3x5,5x5)") from None
    return tuple(out)


def _parse_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split("-")) if "-" in text else (int(text), int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a quality range like 60-95, got '{text}'") from None
    if not (1 <= lo <= hi <= 100):
        raise argparse.ArgumentTypeError(f"JPEG qualities must be within 1-100, got '{text}'")
    return lo, hi


_TRAIN_FIELDS = {
    # argparse dest -> TrainConfig field
    "data": "data",
    "val": "val",
    "scale": "scale",
    "out": "out",
    "max_steps": "max_steps",
    "max_minutes": "max_minutes",
    "batch": "batch",
    "patch": "patch",
    "lr": "lr",
    "schedule": "schedule",
    "warmup": "warmup_steps",
    "schedule_steps": "schedule_steps",
    "tail_steps": "tail_steps",
    "ema": "ema",
    "grad_clip": "grad_clip",
    "amp": "amp",
    "compile": "compile",
    "seed": "seed",
    "val_every": "val_every",
    "ckpt_every": "ckpt_every",
    "device": "device",
    "threads": "threads",
    "init": "init",
    "save_as": "save_as",
    "features": "features",
    "blocks": "blocks",
    "kernels": "kernels",
    "gff": "gff",
    "rsc": "rsc",
    "image_skip": "image_skip",
    "jpeg_quality": "jpeg_quality",
    "noise": "noise_sigma",
    "exclude": "exclude",
}


def build_train_config(args: argparse.Namespace):
    """Config file values, then the command line's (only the options actually given)."""
    from mlrn_core.runs import RunFolder
    from mlrn_core.trainer import TrainConfig

    values: dict = {}
    if args.config:
        try:
            values.update(json.loads(Path(args.config).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read config file '{args.config}': {exc}") from exc
    if args.max_minutes is not None and args.max_steps is None and "max_steps" not in values and not args.resume:
        values["max_steps"] = None  # a time budget alone
    if args.resume:
        ckpt_cfg = RunFolder(Path(args.out)).config
        if ckpt_cfg.exists():
            stored = json.loads(ckpt_cfg.read_text(encoding="utf-8"))
            stored.update(values)
            values = stored
    for dest, fld in _TRAIN_FIELDS.items():
        v = getattr(args, dest, None)
        if v is not None:
            values[fld] = tuple(v) if isinstance(v, list) else v
    if "data" not in values:
        raise ValueError("give at least one --data folder (or a config file with 'data')")
    if "out" not in values:
        raise ValueError("give --out RUN_DIR")
    return TrainConfig.from_json(values)


def cmd_train(args: argparse.Namespace) -> int:
    from mlrn_core import trainer as tr

    try:
        cfg = build_train_config(args)
    except (ValueError, TypeError) as exc:
        print(f"mlrn train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = Progress()
    is_main = True

    def on_event(ev: tr.Event) -> None:
        if isinstance(ev, tr.StartedEvent):
            progress.line(
                f"{'resuming' if ev.resumed else 'training'} x{cfg.scale} on {ev.device}: "
                f"{ev.train_images} training images, {ev.val_images} validation images, "
                f"from step {ev.step}"
            )
            for path, reason in ev.skipped:
                progress.line(f"  skipped {path}: {reason}")
        elif isinstance(ev, tr.StepEvent):
            frac = (
                ev.step / cfg.max_steps
                if cfg.max_steps
                else (ev.elapsed_s / (cfg.max_minutes * 60) if cfg.max_minutes else 0)
            )
            progress.update(
                f"step {ev.step} {bar(frac)} loss {ev.loss:.4f} lr {ev.lr:.2e} "
                f"{ev.steps_per_s:.2f} it/s elapsed {fmt_duration(ev.elapsed_s)} "
                f"eta {fmt_duration(ev.eta_s)}"
            )
        elif isinstance(ev, tr.ValidationEvent):
            base = f", base {ev.base_psnr:.3f}" if ev.base_psnr is not None else ""
            progress.line(
                f"step {ev.step}: val {ev.psnr:.3f} dB / {ev.ssim:.4f} (bicubic {ev.bicubic_psnr:.3f}"
                f"{base}, best {ev.best_psnr:.3f}){' *' if ev.is_best else ''}"
            )
        elif isinstance(ev, tr.CheckpointEvent):
            progress.update(f"checkpoint saved at step {ev.step}", force=True)
        elif isinstance(ev, tr.FinishedEvent):
            how = "stopped" if ev.stopped else "finished"
            best = f", best val {ev.best_psnr:.3f} dB" if ev.best_psnr is not None else ""
            progress.line(
                f"{how} at step {ev.step} after {fmt_duration(ev.elapsed_s)}{best}; "
                f"model: {ev.model_path}" + (f"; saved as user model '{ev.user_model}'" if ev.user_model else "")
            )
        elif isinstance(ev, tr.FailedEvent):
            progress.line(f"failed at step {ev.step}: {ev.error}")

    trainer = tr.Trainer(cfg, on_event, resume=args.resume)

    def stop(signum, _frame):
        if trainer.stop_requested:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        if is_main:
            progress.line(
                f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint (again to abort)"
            )
        trainer.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        trainer.run()
    except tr.TrainingError as exc:
        print(f"mlrn train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        import torch.distributed as tdist

        if tdist.is_available() and tdist.is_initialized():
            tdist.destroy_process_group()
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------------------


# upscale's line in 'mlrn --help' when its parser is not built (build_parser(full=False)); the same as
# cli_upscale.add_upscale_parser's help (tests/test_cli_startup.py compares the two parsers' help)
_UPSCALE_HELP = "upscale image files and folders (batch, with progress)"


def _command_of(argv: list[str]) -> str | None:
    """The sub-command ``argv`` names: its first argument that is not an option (the top-level options
    take no values), or None (``mlrn --help``, ``mlrn --version``, no command)."""
    return next((a for a in argv if a != "--" and not a.startswith("-")), None)


def build_parser(full: bool = True) -> argparse.ArgumentParser:
    """The ``mlrn`` parser. ``full`` False lists ``upscale`` with its one-line help but without its options,
    so that no torch is imported (its module imports :mod:`mlrn_core.batch`): for any command but upscale."""
    from mlrn_core import __version__
    from mlrn_core.cli_export import add_export_parser

    parser = argparse.ArgumentParser(
        prog="mlrn",
        description="MLRN Studio on the command line: super-resolution with the MLRN network.",
        epilog="Run 'mlrn COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"mlrn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (e.g. skipped files)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    if full:
        from mlrn_core.cli_upscale import add_upscale_parser

        add_upscale_parser(sub)
    else:
        sub.add_parser("upscale", help=_UPSCALE_HELP)

    b = sub.add_parser(
        "bench",
        help="PSNR/SSIM of bicubic and a model on folders of HR images",
        description="Measure PSNR/SSIM (Y channel, border = scale, MATLAB bicubic LR) of bicubic "
        "and a model on HR images, as published SR papers do.",
    )
    b.add_argument("dirs", nargs="+", metavar="DIR", help="folders (or files) of high-resolution images")
    b.add_argument("-s", "--scale", type=int, choices=(2, 3, 4), required=True, help="upscaling factor: 2, 3 or 4")
    b.add_argument("--model", help="model name or file (default: the built-in model for the scale)")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    b.add_argument(
        "--tile",
        type=int,
        default=256,
        help="tile size in LR pixels (default 256: every evaluation uses the same tiles, so its numbers compare "
        "across runs; mlrn upscale picks its tile from the device instead)",
    )
    b.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    b.add_argument(
        "--degrade",
        default="none",
        metavar="SPEC",
        help="degrade the LR inputs first, the same way every run: none (default), jpeg:Q (a 4:2:0 "
        "JPEG at quality Q, as cameras write), jpeg:LO-HI, or camera (blur, bicubic or area "
        "downscale, noise, JPEG q70-98: the photo models' training inputs)",
    )
    b.add_argument(
        "--quality",
        default="normal",
        choices=("normal", "best"),  # tiling.QUALITIES (tiling is imported lazily, with torch)
        help="normal: one pass per tile; best: the average of the 8 flips and rotations of each tile "
        "(self-ensemble, about 8x the time) (default: normal)",
    )
    b.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16", "openvino", "openvino-int8", "openvino-gpu"),  # tiling.PRECISIONS
        help="the inference path scored: fp32 (PyTorch, the reference; default), bf16, fp16, openvino (OpenVINO "
        "fp32 on the CPU), openvino-int8 (a built-in model's int8 network), openvino-gpu (an Intel GPU)",
    )
    b.set_defaults(func=cmd_bench)

    m = sub.add_parser(
        "models",
        help="list built-in and user models",
        description="List the built-in models "
        "and the user's own (fine-tuned) models with their scale and validation PSNR.",
    )
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser(
        "train",
        help="train or fine-tune a model (resumable; runs under torchrun too)",
        description="Train MLRN on folders of high-resolution images, or fine-tune an existing model with "
        "--init. The run folder gets ckpt.pt (for --resume), model.pt (best weights) and "
        "events.jsonl. Ctrl-C stops after the current step and saves a checkpoint. Under "
        "'torchrun --nproc_per_node=N mlrn train ...' it trains with DistributedDataParallel. "
        "Options left out come from --config (a JSON file of TrainConfig fields) or the defaults.",
    )
    t.add_argument("--data", action="append", metavar="DIR", help="folder of HR training images (repeatable)")
    t.add_argument("--val", action="append", metavar="DIR", help="folder of HR validation images (repeatable)")
    t.add_argument("--exclude", action="append", metavar="FILE", help="an image never to train on (repeatable)")
    t.add_argument("-s", "--scale", type=int, choices=(2, 3, 4))
    t.add_argument("--out", metavar="RUN_DIR", help="run folder for checkpoints, model.pt and logs")
    t.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig fields")
    t.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    budget = t.add_argument_group("budget")
    budget.add_argument("--max-steps", type=int, help="stop after this many steps (default 1000)")
    budget.add_argument("--max-minutes", type=float, help="stop after this many minutes of training")
    opt = t.add_argument_group("optimisation")
    opt.add_argument("--batch", type=int, help="patches per step (default 16)")
    opt.add_argument("--patch", type=int, help="LR patch size in pixels (default 48)")
    opt.add_argument("--lr", type=float, help="peak learning rate (default 5e-4)")
    opt.add_argument(
        "--schedule",
        choices=("cosine", "cosine-time", "step", "constant-cosine"),
        help="cosine with warm-up over the steps, cosine over --max-minutes, the paper's halving, or constant "
        "with a cosine over the last --tail-steps (a long run resumed across sessions)",
    )
    opt.add_argument("--warmup", type=int, help="warm-up steps for cosine (default 100)")
    opt.add_argument("--schedule-steps", type=int, help="cosine horizon (default: --max-steps)")
    opt.add_argument("--tail-steps", type=int, help="constant-cosine: steps of the cosine tail ending at --max-steps")
    opt.add_argument(
        "--ema",
        type=float,
        help="EMA decay of the weights, e.g. 0.999 (default off); both the average and the latest weights are "
        "validated and the better one is kept",
    )
    opt.add_argument("--grad-clip", type=float, help="max gradient norm (default off)")
    opt.add_argument(
        "--amp",
        choices=("auto", "off", "bf16", "fp16"),
        help="mixed precision (auto: bf16 on CUDA and on CPUs with native bf16 kernels, else "
        "fp16 on CUDA and fp32 on the CPU)",
    )
    opt.add_argument("--compile", action="store_true", default=None, help="use torch.compile")
    opt.add_argument("--seed", type=int, help="seed (a CPU run with the same seed is repeatable)")
    opt.add_argument("--val-every", type=int, help="validate and checkpoint every K steps (default 250)")
    opt.add_argument(
        "--ckpt-every", type=int, help="also checkpoint every K steps between validations (default: only at them)"
    )
    opt.add_argument("--device", help="auto, cpu, cuda or mps (default auto)")
    opt.add_argument("--threads", type=int, help="CPU threads (default: all)")
    arch = t.add_argument_group("model (ignored with --init, which brings its own architecture)")
    arch.add_argument("--init", metavar="MODEL", help="warm-start from a built-in or user model name or a file")
    arch.add_argument("--save-as", metavar="NAME", help="also register the result as a user model")
    arch.add_argument("--features", type=int, help="G, feature channels (32)")
    arch.add_argument("--blocks", type=int, help="N, FSFblocks (8)")
    arch.add_argument("--kernels", type=_parse_kernels, help="bypass kernels, e.g. 3,3x5,5 (default) or 3,5,7")
    arch.add_argument("--no-gff", dest="gff", action="store_false", default=None, help="no global feature fusion")
    arch.add_argument("--no-rsc", dest="rsc", action="store_false", default=None, help="no residual skip connection")
    arch.add_argument(
        "--image-skip",
        action="store_true",
        default=None,
        help="add a bicubic upscale of the input to the output (learn the residual)",
    )
    deg = t.add_argument_group("LR degradations (off by default)")
    deg.add_argument("--jpeg-quality", type=_parse_range, metavar="LO-HI", help="JPEG-compress LR patches")
    deg.add_argument("--noise", type=float, metavar="SIGMA", help="Gaussian noise up to SIGMA (0-255 units)")
    t.set_defaults(func=cmd_train)

    add_export_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(full=_command_of(argv) == "upscale")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from mlrn_core import paths

    problem = paths.home_problem()
    if problem:
        print(f"mlrn: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The ``mlrn`` console script (``pyproject.toml``, the bundle's ``packaging/entry_mlrn.py`` and ``python -m
    mlrn_core.cli``): :func:`main`, then exit with its status.

    After ``mlrn upscale`` the process ends without tearing the interpreter down (:func:`exit_now`): by then
    every output is written and renamed and the record closed (:func:`mlrn_core.batch.run_batch` returns only
    then), and unloading torch and OpenVINO module by module took 0.4-0.5 s of a one-photo run (``python
    benchmarks/startup.py``, "interpreter start + exit"), paid by every tool that calls ``mlrn`` once per photo.
    Other commands exit the usual way."""
    argv = sys.argv[1:]
    code = main(argv)
    if _command_of(argv) == "upscale":
        exit_now(code)
    sys.exit(code)


def exit_now(code: int) -> None:
    """End the process with ``code`` at once: flush stdout, stderr and the log, then ``os._exit`` (no atexit
    handlers, no module teardown). Only for a process whose work is done and whose files are closed."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (mlrn upscale ... | head): nothing more to say
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
