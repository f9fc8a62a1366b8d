"""``mlrn upscale``: upscale image files and whole folders from the command line.

A thin face over :mod:`mlrn_core.batch` (the engine the app's Batch Export dialog runs too): parse the
options, load the model once, plan (refusing anything that would write over an input), run with a
progress display, print one line per file and a summary. Exit status: 0 when every file was upscaled
or skipped, 1 when any file failed, 2 for usage errors (nothing written), 130 when stopped by Ctrl-C.
Under ``torchrun --nproc_per_node=N`` each process takes every N-th file (by RANK / WORLD_SIZE) and,
with CUDA, its own GPU (``cuda:LOCAL_RANK``); each process prints its own summary.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path

from mlrn_core.batch_choices import FORMATS, ON_EXISTS, RAW_COLOURS, SCALES
from mlrn_core.imageio import RAW_ADVICE
from mlrn_core.terminal import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Progress, bar, fmt_duration, plural

_DESCRIPTION = """\
Upscale images with the MLRN network. INPUT may be image files or folders (with --recursive,
subfolders too; their structure is mirrored under --out-dir).

Where outputs go:
  one file, no -o/--out-dir   next to it as NAME_x2.EXT (never over the input)
  -o FILE                     exactly FILE (only with a single input file)
  --out-dir DIR               DIR/NAME_x2.EXT; required for folders and several files

Which model: by default (--model auto) each file gets a built-in model chosen from its real format
(not its name): the photo model mlrn-x2-photo for camera and phone files (JPEG, HEIC/HEIF, AVIF, lossy
WebP, JPEG-compressed TIFF), the paper model mlrn-x2 for lossless files (PNG, TIFF, BMP, lossless WebP, camera RAW).
Without the photo model for the scale, every file uses the paper model and the run says so. --dry-run
shows the model for each file; the record names the model per file.

Outputs keep EXIF (orientation reset, pixel size updated), XMP and IPTC (keywords, ratings, copyright),
the ICC profile, DPI, 16 bit (PNG/TIFF), alpha and grayscale. Reads PNG, JPEG, TIFF (also 32-bit float),
WebP, BMP, HEIC/HEIF, AVIF and camera RAW (.CR2 .CR3 .NEF .ARW .RAF .ORF .RW2 .DNG .PEF...): a RAW file
is developed with LibRaw (camera white balance, 16 bit, no auto-brightening, sRGB with its ICC profile; no
noise reduction, lens correction or sharpening) and written as a 16-bit TIFF unless --format says otherwise.
Each file is written to a temporary name and given its final name when complete, never over a file that
exists by then (not even one another run wrote meanwhile, unless --on-exists overwrite); a file that
fails is reported with the reason and the batch goes on. With --out-dir every file gets a line in
the folder's record (input, output, status, model, scale, device, seconds, error; with --model auto
also auto: why that model), kept in the per-user data folder, not among the photos: the summary line
names it. A second run with --on-exists skip (the default) only does what is missing, so an
interrupted run can simply be rerun.
Ctrl-C stops after the current tile (nothing partial is left); 'mlrn -v upscale' also lists the
skipped and unsupported files.
"""

_EPILOG = """\
exit status: 0 all files done or skipped, 1 some file failed, 2 usage error (nothing written),
130 interrupted.

examples:
  mlrn upscale photo.jpg                              # writes photo_x2.jpg next to it (model: auto)
  mlrn upscale photo.jpg -s 4 -o big.tif              # x4, written as TIFF
  mlrn upscale ~/Pictures/trip -r --out-dir ~/Pictures/trip-x2 --model my-model
  torchrun --nproc_per_node=4 -m mlrn_core.cli upscale scans -r --out-dir scans-x2   # 4 GPUs
"""


def _tile(text: str) -> int:
    from mlrn_core.tiling import MIN_TILE

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a tile size in pixels, got '{text}'") from None
    if value != 0 and value < MIN_TILE:
        raise argparse.ArgumentTypeError(f"tile size must be 0 (automatic) or at least {MIN_TILE} px, got {value}")
    return value


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"threads must be 0 (automatic) or a positive number, got '{text}'")
    return value


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must be an integer from 1 to 100, got '{text}'")
    return value


class _QualityAction(argparse.Action):
    """``--quality normal|best`` picks the upscaling quality; ``--quality Q`` (1-100) is the compression
    quality of JPEG/WebP/HEIC/AVIF outputs, as before ``best`` existed (the same as ``--jpeg-quality Q``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        text = str(values).strip().lower()
        if text in ("normal", "best"):  # tiling.QUALITIES (tiling is imported lazily, with torch)
            namespace.upscale_quality = text
            return
        try:
            namespace.quality = _quality(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentError(
                self, f"expected normal, best or a JPEG/WebP quality from 1 to 100, got '{values}'"
            ) from None


def add_upscale_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``upscale`` sub-command on the ``mlrn`` parser."""
    p = sub.add_parser(
        "upscale",
        help="upscale image files and folders (batch, with progress)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files and/or folders")
    p.add_argument(
        "-s", "--scale", type=int, choices=SCALES, help="upscaling factor (default: the --model's scale, else 2)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="output file; only with a single input file (its extension sets the format)",
    )
    where.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="output folder (created if missing); required for folders and several files; must not be an input folder",
    )
    p.add_argument(
        "--model",
        default="auto",
        metavar="auto|NAME|PATH",
        help="'auto' (the default) picks a built-in model per file from its real format: the photo model "
        "mlrn-x{S}-photo for JPEG, HEIC/HEIF, AVIF, lossy WebP and JPEG-compressed TIFF, the paper model "
        "mlrn-x{S} for lossless files (PNG, TIFF, BMP, lossless WebP) and when the photo model is not "
        "installed; or a model name from 'mlrn models', or a model file",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "pytorch", "openvino"),  # backends.BACKENDS (imported lazily, with torch)
        help="what runs the network: auto (the fastest path measured on this machine for the model, once, "
        "then remembered), pytorch, or openvino (fast on ordinary x86 CPUs and Intel GPUs) (default: auto)",
    )
    p.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,mps,gpu}",
        help="where to run: auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N, mps, or gpu (an Intel GPU "
        "through OpenVINO) (default: auto)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16", "int8", "openvino", "openvino-int8", "openvino-gpu"),
        help="number precision: auto (with --backend auto: the fastest path measured here; with pytorch: bf16 "
        "on CPUs with native bf16 kernels, fp16 on CUDA, fp32 elsewhere), fp32 (exact), bf16, fp16 (GPU), int8 "
        "(OpenVINO's int8 network of a built-in model, Set14 within 0.05 dB of fp32) (default: auto)",
    )
    p.add_argument(
        "--tile",
        type=_tile,
        default=0,
        metavar="PX",
        help="tile size in input pixels; 0 picks one from the free device memory (default: 0). "
        "Smaller tiles need less memory",
    )
    p.add_argument(
        "--threads",
        type=_threads,
        default=0,
        metavar="N",
        help="CPU threads for the network (default: 0, torch's choice); fewer can be faster on a "
        "machine busy with other work",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default="same",
        help="output format; 'same' keeps each source's format (default: same). A format that "
        "cannot hold what the source has (alpha in jpg, 16 bit in jpg/webp) is reported",
    )
    p.add_argument(
        "--quality",
        action=_QualityAction,
        metavar="normal|best|Q",
        help="normal: each tile through the network once (default); best: the average of the 8 flips and "
        "rotations of each tile (self-ensemble): about 8x the time for a small gain in detail (see "
        "docs/quality.md). A number 1-100 is the JPEG/WebP quality, as --jpeg-quality",
    )
    p.add_argument(
        "--raw-colour",
        choices=RAW_COLOURS,
        default="srgb",
        help="the colour space camera RAW files are developed into, with its ICC profile embedded: srgb "
        "(default), adobe (Adobe RGB 1998) or prophoto (ProPhoto RGB; keep 16 bit with it)",
    )
    p.add_argument(
        "--jpeg-quality", dest="quality", type=_quality, metavar="Q", help="JPEG/WebP quality 1-100 (default: 95)"
    )
    p.set_defaults(upscale_quality="normal", quality=None)
    p.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="also upscale images in subfolders of folder inputs (structure mirrored)",
    )
    p.add_argument(
        "--suffix",
        metavar="TEXT",
        help="added to output names before the extension (default: _x{scale}); may be empty with --out-dir",
    )
    p.add_argument(
        "--on-exists",
        choices=ON_EXISTS,
        default="skip",
        help="when an output file exists: skip it (default; rerunning resumes a batch), "
        "rename the new one to 'NAME (1).EXT', or overwrite it",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would happen to each file (write, skip, rename, unsupported) and exit",
    )
    p.add_argument(
        "--no-prefetch",
        action="store_true",
        help="do not overlap reading and writing with the upscaling (for measurements)",
    )
    p.set_defaults(func=cmd_upscale)
    return p


def _usage(message: str) -> int:
    print(f"mlrn upscale: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_upscale(args: argparse.Namespace) -> int:
    """Run ``mlrn upscale``; returns the exit status."""
    from mlrn_core import auto, backends, batch, distributed, registry, tiling
    from mlrn_core.auto import is_auto

    try:
        dist = distributed.from_env()
    except distributed.TorchrunError as exc:
        return _usage(str(exc))
    rank, world = dist.rank, dist.world
    prefix = f"[rank {rank}/{world}] " if world > 1 else ""

    inputs: list[Path] = list(args.inputs)
    missing = [p for p in inputs if not p.exists()]
    if missing:
        return _usage(f"input '{missing[0]}' does not exist")
    if args.output is None and args.out_dir is None and (len(inputs) > 1 or inputs[0].is_dir()):
        what = "a folder" if inputs[0].is_dir() and len(inputs) == 1 else "several inputs"
        return _usage(f"give --out-dir DIR to upscale {what} (-o FILE is only for a single file)")

    loaded = None
    scale = args.scale
    per_file = is_auto(args.model)
    if per_file:
        scale = scale or 2
        if not args.dry_run and not auto.available(scale):
            return _usage(f"--model auto: {auto.describe(scale)} Pass a model with --model")
    elif not args.dry_run or (scale is None and args.model):
        try:  # a model file read before is not read again (mlrn_core.known_models): no torch where none runs
            want = scale if scale is not None else (None if args.model else 2)
            loaded = registry.known_model(args.model, want) or registry.load_model(args.model, want)
        except registry.ModelError as exc:
            return _usage(str(exc))
        scale = loaded.scale
    try:  # --backend/--device/--precision -> the device to pick and the path's precision value
        device_pref, path = backends.path_from_flags(args.backend, args.device, args.precision)
        if path == "pytorch-auto":  # PyTorch forced: Auto's fixed rule for the device, nothing measured
            path = tiling.resolve_precision(tiling.pick_device(device_pref), "auto")
    except (ValueError, tiling.DeviceError) as exc:
        return _usage(str(exc))
    try:
        options = batch.BatchOptions(
            scale=scale or 2,
            model=args.model,
            device=device_pref,
            tile=args.tile or None,
            fmt=args.fmt,
            quality=args.quality,
            recursive=args.recursive,
            suffix=args.suffix,
            on_exists=args.on_exists,
            prefetch=not args.no_prefetch,
            precision=path,
            ensemble=args.upscale_quality == "best",
            raw_colour=args.raw_colour,
        )
        plan = batch.plan_batch(inputs, args.out_dir, options, output=args.output)
    except (ValueError, batch.BatchError) as exc:
        return _usage(str(exc))

    if args.dry_run:
        for line in batch.plan_lines(plan.items):
            print(line)
        print(f"{plural(len(plan), 'file')}: {plan.describe()}")
        for line in batch.auto_summary(plan.items):
            print(f"model auto: {line}")
        return EXIT_OK
    if not plan.items:
        hint = "" if args.recursive else " (use --recursive for subfolders)"
        print(f"{prefix}nothing to do: no files found{hint}", file=sys.stderr)
        return EXIT_OK
    if len(plan) == 1 and plan.items[0].action == batch.UNSUPPORTED:  # the one file asked for cannot be done
        item = plan.items[0]
        print(f"mlrn upscale: cannot upscale '{item.source}': {item.describe()}", file=sys.stderr)
        return EXIT_FAILED

    if args.threads > 0:
        tiling.set_threads(args.threads)
    mine = plan.shard(rank, world) if world > 1 else plan
    if per_file:  # each process loads the models its own files need
        try:
            model = batch.load_auto_models(mine.items, auto.ModelCache(known=True))
        except registry.ModelError as exc:
            return _usage(str(exc))
        model_text = "model auto"
        nets = [m.model for m in model.values()]
    else:
        assert loaded is not None  # loaded above unless this is a dry run
        model, model_text = loaded, loaded.name
        nets = [loaded.model]
    try:
        device = _device(device_pref, dist, nets)
        precision = path if path == "auto" else tiling.resolve_precision(device, path)
    except (tiling.DeviceError, ValueError) as exc:
        return _usage(str(exc))

    progress = Progress()  # stderr: the bar, one line per file and the summary
    show_bar = rank == 0
    progress.line(
        f"{prefix}upscaling {len(mine.work)} of {plural(len(mine), 'file')} x{scale} with {model_text} on "
        f"{tiling.device_label(device)}, "
        + ("Auto (the fastest path measured here)" if path == "auto" else backends.path_label(precision, device))
        + (f", {tiling.quality_note(options.scale)}" if options.ensemble else "")
        + (f" into {plan.out_dir}" if plan.out_dir else "")
        + (f" ({mine.describe()})" if len(mine.work) != len(mine) else "")
    )
    for line in batch.auto_summary(mine.items):
        progress.line(f"{prefix}  auto: {line}")

    def on_progress(p: batch.BatchProgress) -> None:
        if not show_bar or p.item is None:
            return
        tiles = f" {p.tiles_done}/{p.tiles_total} tiles" if p.tiles_total > 1 else ""
        progress.update(
            f"{prefix}[{p.position}/{p.total}] {bar(p.fraction)} {p.fraction:4.0%}  {p.item.relative} "
            f"{bar(p.item_fraction, 10)}{tiles}  elapsed {fmt_duration(p.elapsed_s)} eta {fmt_duration(p.eta_s)}"
        )

    def on_item(r: batch.ItemResult) -> None:
        src = r.item.source
        if r.status == batch.OK:
            used = f", {r.item.auto.name}" if per_file and r.item.auto else ""
            ran = f", {r.backend}" if r.backend else ""
            progress.line(f"{prefix}ok      {src} -> {r.output} ({r.seconds:.1f} s{used}{ran})")
        elif r.status == batch.FAILED:
            progress.line(f"{prefix}FAILED  {src}: {r.error}")
        elif r.status == batch.CANCELLED:
            progress.line(f"{prefix}stopped {src}: cancelled, nothing written")
        elif args.verbose or len(plan) == 1:
            why = f"{r.item.output.name} exists" if r.item.action == batch.SKIP and r.item.output else r.error
            progress.line(f"{prefix}skip    {src}: {why}")
        for w in r.warnings:
            progress.line(f"{prefix}  note: {src.name}: {w}")

    stop = {"requested": False}

    def on_signal(signum: int, _frame: object) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        progress.line(
            f"{prefix}{signal.Signals(signum).name}: stopping after the current tile (again to abort at once)"
        )

    io_log = logging.getLogger("mlrn_core.imageio")
    old_propagate = io_log.propagate
    if not args.verbose:  # the writer's warnings are printed per file as 'note:' lines
        io_log.propagate = False
    handlers = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # only the main thread may catch signals
                handlers[sig] = signal.signal(sig, on_signal)
        summary = batch.run_batch(
            mine,
            options,
            model,
            progress=on_progress,
            cancel=lambda: stop["requested"],
            on_item=on_item,
            device=device,
            record={"rank": rank} if world > 1 else None,
            announce=lambda text: progress.line(f"{prefix}{text}"),
        )
    except (batch.BatchError, tiling.DeviceError) as exc:
        return _usage(str(exc))
    finally:
        io_log.propagate = old_propagate
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    where = f"; record: {mine.sidecar}" if mine.sidecar and mine.items else ""
    if summary.record_error:
        where = f"; the batch record {summary.record_error}"
    progress.line(f"{prefix}{summary.describe()}{where}")
    raws = mine.raw_files
    if raws:
        progress.line(f"{prefix}{len(raws)} camera RAW file(s) not upscaled: {RAW_ADVICE}")
    if summary.failed:
        progress.line(f"{prefix}{len(summary.failed)} failed:")
        for r in summary.failed:
            progress.line(f"{prefix}  {r.item.source}: {r.error}")
    if summary.cancelled:
        return 130
    if world > 1:
        _wait_for_other_ranks()
    return EXIT_FAILED if summary.failed else EXIT_OK


def _device(preference: str, dist, nets: list):
    """The device this process runs on: the CPU known without importing torch (:func:`mlrn_core.tiling.host_cpu`)
    when it is the one ``preference`` picks and the CPU threads are known (``--threads``, or Auto's measurement
    of these models on this machine), so that a path run by OpenVINO never imports torch; else torch's pick."""
    from mlrn_core import backends, distributed, tiling

    if not dist.enabled:
        threads = tiling.threads_asked() or backends.measured_threads(nets)
        host = tiling.host_cpu(preference, threads) if threads else None
        if host is not None:
            return host
    return distributed.device_for(preference, dist)


def _wait_for_other_ranks() -> None:
    """torchrun tears down every rank as soon as one exits non-zero: all ranks meet at a barrier before
    exiting, so a rank with failed files does not get the others killed mid-batch."""
    import datetime

    import torch.distributed as dist

    try:
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
        dist.barrier()
        dist.destroy_process_group()
    except (RuntimeError, ValueError) as exc:  # no rendezvous (not launched by torchrun)
        logging.getLogger(__name__).warning("could not wait for the other ranks: %s", exc)
