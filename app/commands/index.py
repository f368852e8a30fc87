"""``python -m app index VIDEO...``: decode, embed and index videos into the library -- files, a list of
them, a folder watched as recordings arrive, or a Ray cluster.

It prints one line per indexed video on stdout and, for each file that cannot be indexed, exactly one
``error: <name>: <why>`` line on stderr; the other files are still indexed and the exit status is 1 if any
file failed. Progress bars go to stderr only when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.commands.common import add_library_args, duration_text, service_for
from app.text import counted


def register(subparsers) -> None:
    _register_index(subparsers)


def grey_levels(text: str) -> float:
    """argparse type of ``--reuse-still``: a grey-level difference, 0-255."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of grey levels, not {text!r}") from None
    if not 0.0 <= value <= 255.0:
        raise argparse.ArgumentTypeError(f"grey levels lie in 0-255, not {value:g}")
    return value


def _register_index(subparsers) -> None:
    p = subparsers.add_parser(
        "index", help="add videos to the library", description="Decode, embed and index videos into the library."
    )
    p.add_argument("videos", nargs="*", type=Path, metavar="VIDEO", help="video files to add")
    p.add_argument(
        "--watch",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="keep running and add the videos that arrive in FOLDER, each once it has finished copying, in "
        "recording-time order; Ctrl-C stops (a restart adds nothing twice)",
    )
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="with --watch: seconds between looks")
    p.add_argument(
        "--settle", type=float, default=5.0, metavar="S", help="with --watch: seconds a file must stay unchanged"
    )
    p.add_argument(
        "--from-list",
        type=Path,
        default=None,
        metavar="FILE",
        help="also add the videos listed in FILE, one path per line (relative to FILE's folder; # comments)",
    )
    add_library_args(p)
    _add_encoder_args(p)
    _add_decoding_args(p)
    _add_cluster_args(p)
    p.set_defaults(handler=index_command)


def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="open_clip architecture (default: the library's encoder, else $EGORECALL_MODEL or ViT-B-16)",
    )
    p.add_argument(
        "--pretrained",
        default=None,
        metavar="TAG|FILE|none",
        help="weights: an open_clip tag, a weights file, or 'none' for random weights (testing only)",
    )
    p.add_argument(
        "--quantize",
        choices=("none", "int8", "openvino"),
        default=None,
        help="a faster CPU image tower: int8 (torch) or openvino (the [openvino] extra, fastest measured); its "
        "features are another encoder's (default $EGORECALL_QUANTIZE)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="HZ",
        help="feature grid rate of a new library (default 1.875 Hz, as Ego4D)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="where the encoder runs")


def _add_decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decoder processes per video, each decoding a time segment (default 1)",
    )
    p.add_argument(
        "--reuse-still",
        type=grey_levels,
        default=None,
        metavar="LEVELS",
        help="a sampled frame differing from the last encoded one by less than this mean grey difference "
        "(0-255) reuses its feature instead of being encoded (default 0: encode every frame)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="keep the video where it is instead of linking/copying it into the library",
    )


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="decode and encode on a Ray cluster (the ray extra): 'auto' joins the cluster `ray start` made "
        "here, HOST:PORT another head, no value starts Ray on this machine for the run",
    )
    p.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        metavar="N",
        help="with --ray: worker actors (default: one per GPU, else one per CPU)",
    )


def _index_paths(args) -> list[Path]:
    from indexing.cluster import read_list
    from indexing.errors import LibraryError

    paths = list(args.videos) + (read_list(args.from_list) if args.from_list else [])
    if not paths and getattr(args, "watch", None) is None:
        raise LibraryError(
            "nothing to index: name video files, a list of them with --from-list FILE, or a folder to --watch"
        )
    return paths


def _print_result(result) -> bool:
    if result.ok:
        rec = result.record
        note = "  (already in the library)" if result.existed else ""
        print(f"{rec.id}  {duration_text(rec.duration):>8}  {rec.num_rows:6d} frames  {rec.name}{note}", flush=True)
    else:
        print(f"error: {result.error}", file=sys.stderr, flush=True)
    return result.ok


def index_command(args) -> int:
    paths = _index_paths(args)
    if args.ray is not None:
        return _index_on_cluster(args, paths)
    from tqdm import tqdm

    service = service_for(args)
    bars: dict[Path, tqdm] = {}

    def progress(path: Path, done: int, total: int) -> None:
        bar = bars.get(path)
        if bar is None:
            bar = bars[path] = tqdm(
                total=total, desc=path.name, unit="frame", leave=False, disable=None, file=sys.stderr
            )
        bar.update(done - bar.n)

    failed = 0
    # Index one by one so each file's line appears as soon as it is done.
    for path in paths:
        (result,) = service.index([path], progress=progress, copy_media=not args.reference)
        bar = bars.pop(path, None)
        if bar is not None:
            bar.close()
        failed += not _print_result(result)
    if args.watch is not None:
        return _watch(args, service) or (1 if failed else 0)
    return 1 if failed else 0


def _watch(args, service) -> int:
    import threading

    from app.commands.stopping import stop_on_signals
    from indexing.errors import LibraryError

    if args.interval <= 0 or args.settle < 0:
        raise LibraryError("--interval must be above 0 and --settle at least 0 seconds")
    stop = threading.Event()
    previous = stop_on_signals(stop) if threading.current_thread() is threading.main_thread() else {}
    print(f"watching {args.watch.absolute()} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        added = service.watch(
            args.watch,
            stop,
            interval_s=args.interval,
            settle_s=args.settle,
            on_result=_print_result,
            copy_media=not args.reference,
        )
    finally:
        import signal

        for s, h in previous.items():
            signal.signal(s, h)
    print(f"stopped watching; {counted(added, 'video')} added", file=sys.stderr)
    return 0


def _index_on_cluster(args, paths: list[Path]) -> int:
    """One bar for the whole corpus (files, hours of video done, ETA); a line per file as it is committed."""
    from tqdm import tqdm

    from indexing.cluster import ClusterConfig

    service = service_for(args)
    config = ClusterConfig(address=None if args.ray == "local" else args.ray, workers=args.ray_workers)
    bar = tqdm(total=len(paths), desc="corpus", unit="video", disable=None, file=sys.stderr)
    hours = 0.0
    failed = 0

    def progress(result, done: int, total: int) -> None:
        nonlocal hours, failed
        if result.ok and not result.existed:
            hours += result.record.duration / 3600.0
        bar.set_postfix_str(f"{hours:.2f} h indexed", refresh=False)
        bar.update(1)
        with bar.external_write_mode():
            failed += not _print_result(result)

    try:
        service.index_on_cluster(paths, config, progress, copy_media=not args.reference)
    finally:
        bar.close()
    return 1 if failed else 0
