"""``python -m app index VIDEO...`` and ``python -m app library ACTION`` (list, remove, check, repair, reindex,
correct, feedback, export-features).

``index`` prints one line per indexed video on stdout and, for each file that cannot be indexed, exactly one
``error: <name>: <why>`` line on stderr; the other files are still indexed and the exit status is 1 if any
file failed. Progress bars go to stderr only when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.settings import EVERYDAY_FLAGS, Settings, load_settings


def grey_levels(text: str) -> float:
    """argparse type of ``--reuse-still``: a grey-level difference, 0-255."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of grey levels, not {text!r}") from None
    if not 0.0 <= value <= 255.0:
        raise argparse.ArgumentTypeError(f"grey levels lie in 0-255, not {value:g}")
    return value


def _add_library_arg(parser: argparse.ArgumentParser) -> None:
    """``--library`` and the app's settings (``--settings FILE``, ``--set KEY=VALUE``), for every command that
    opens a library."""
    parser.add_argument(
        "--library",
        type=Path,
        default=None,
        metavar="DIR",
        help="library directory (default: $EGORECALL_LIBRARY or data/library)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        metavar="FILE",
        help="a YAML file of the app's settings (default: $EGORECALL_CONFIG; `python -m app settings` lists them)",
    )
    parser.add_argument(
        "--set",
        dest="settings_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting, e.g. --set indexing.decode.workers=2 --set clips.pad_s=2 (repeatable)",
    )


def _settings(args) -> Settings:
    """The settings a command runs with: defaults, environment, ``--settings``, its everyday flags, ``--set``."""
    flags = {name: getattr(args, name, None) for name in EVERYDAY_FLAGS}
    return load_settings(getattr(args, "settings", None), getattr(args, "settings_overrides", None) or (), flags)


def register(subparsers) -> None:
    _register_index(subparsers)
    lib = subparsers.add_parser("library", help="list, remove, check or repair library videos")
    sub = lib.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    _register_listing(sub)
    _register_upkeep(sub)
    _register_corrections(sub)


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
    _add_library_arg(p)
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


def _register_listing(sub) -> None:
    """``library list``, ``set-time``, ``remove``, ``export-features``: the videos themselves."""
    ls = sub.add_parser("list", help="list the indexed videos")
    _add_library_arg(ls)
    ls.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    ls.set_defaults(handler=list_command)
    st = sub.add_parser(
        "set-time",
        help="set when a video was recorded",
        description="Date a video by hand when its file carries no (or a wrong) recording time: "
        "YYYY-MM-DDTHH:MM in this machine's time zone, or with an offset (2026-12-06T08:15+01:00).",
    )
    st.add_argument("id", help="video id (from `library list`)")
    st.add_argument("time", help="when its first frame was recorded, e.g. 2026-12-06T08:15")
    _add_library_arg(st)
    st.set_defaults(handler=set_time_command)
    rm = sub.add_parser("remove", help="remove a video and everything stored for it")
    rm.add_argument("id", help="video id (from `library list`)")
    _add_library_arg(rm)
    rm.set_defaults(handler=remove_command)
    ex = sub.add_parser(
        "export-features",
        help="write every video's features as <video name>.npy (Ego4D's per-video layout), to train on",
        description="Copy each ready video's float16 features to OUT/<file name stem>.npy with a features.json "
        "naming the encoder and grid; `train --set data.features_dir=OUT` then trains a localizer that matches "
        "this library's features.",
    )
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write")
    _add_library_arg(ex)
    ex.set_defaults(handler=export_features_command)


def _register_upkeep(sub) -> None:
    """``library check``, ``repair``, ``reindex``: keeping the library whole, and switching its encoder."""
    ck = sub.add_parser("check", help="report inconsistencies (exit 1 if any)")
    _add_library_arg(ck)
    ck.set_defaults(handler=check_command)
    rp = sub.add_parser("repair", help="fix inconsistencies (dead jobs, orphan files, stale index)")
    _add_library_arg(rp)
    rp.set_defaults(handler=repair_command)
    ri = sub.add_parser(
        "reindex",
        help="switch the library to another encoder (re-encodes every video)",
        description="Re-encode every video of the library with another encoder and switch to it "
        "atomically: until the switch the library keeps working with its old encoder, "
        "and an interrupted re-index leaves it as it was.",
    )
    _add_library_arg(ri)
    ri.add_argument("--model", required=True, metavar="NAME", help="open_clip architecture of the new encoder")
    ri.add_argument(
        "--pretrained",
        required=True,
        metavar="TAG|FILE|none",
        help="its weights: an open_clip tag, a weights file (e.g. from `pretrain`), or 'none'",
    )
    ri.add_argument(
        "--quantize",
        choices=("none", "int8", "openvino"),
        default="none",
        help="a faster CPU image tower: int8 (torch) or openvino (the [openvino] extra)",
    )
    ri.add_argument("--device", choices=("cpu", "cuda"), default=None, help="where the encoder runs")
    ri.add_argument("--workers", type=int, default=None, metavar="N", help="decoder processes per video")
    ri.set_defaults(handler=reindex_command)


def _register_corrections(sub) -> None:
    """``library correct`` and ``feedback``: users' verdicts on answers, and exporting them to train on."""
    co = sub.add_parser(
        "correct",
        help="mark an answer right or wrong, or give its true start/end",
        description="Store a correction of one answer moment in the library (kept until its video is removed); "
        "`library feedback --out FILE` exports the right and adjusted ones as NLQ training data.",
    )
    co.add_argument("id", help="video id (from `library list` or an answer)")
    co.add_argument("question", help="the question the moment answered")
    co.add_argument("--start", type=float, required=True, metavar="S", help="seconds from the video's start")
    co.add_argument("--end", type=float, required=True, metavar="S", help="seconds from the video's start")
    verdict = co.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--right", dest="verdict", action="store_const", const="right", help="the moment is right")
    verdict.add_argument("--wrong", dest="verdict", action="store_const", const="wrong", help="the moment is wrong")
    verdict.add_argument(
        "--adjusted", dest="verdict", action="store_const", const="adjusted", help="START-END is the true answer"
    )
    co.add_argument("--mode", default="", help="the mode that answered (recorded with the correction)")
    _add_library_arg(co)
    co.set_defaults(handler=correct_command)
    fb = sub.add_parser(
        "feedback",
        help="list the stored corrections, or export them as an Ego4D NLQ file",
        description="Without --out: the corrections, one per line. With --out: an NLQ-format file of the right "
        "and adjusted answers (one clip per video), to train or fine-tune a localizer on.",
    )
    fb.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the NLQ file here")
    fb.add_argument("--json", action="store_true", help="list as JSON")
    _add_library_arg(fb)
    fb.set_defaults(handler=feedback_command)


def _service(args):
    from app.service import EgoRecall
    from models.clip_encoder import EncoderSpec

    spec = None
    if getattr(args, "model", None) or getattr(args, "pretrained", None) or getattr(args, "quantize", None):
        spec = EncoderSpec.from_env(model=args.model, pretrained=args.pretrained, quantize=args.quantize)
    return EgoRecall(_settings(args), encoder_spec=spec, rate_hz=getattr(args, "rate", None))


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


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
        print(f"{rec.id}  {_duration(rec.duration):>8}  {rec.num_rows:6d} frames  {rec.name}{note}", flush=True)
    else:
        print(f"error: {result.error}", file=sys.stderr, flush=True)
    return result.ok


def index_command(args) -> int:
    paths = _index_paths(args)
    if args.ray is not None:
        return _index_on_cluster(args, paths)
    from tqdm import tqdm

    service = _service(args)
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
    print(f"stopped watching; {added} video(s) added", file=sys.stderr)
    return 0


def _index_on_cluster(args, paths: list[Path]) -> int:
    """One bar for the whole corpus (files, hours of video done, ETA); a line per file as it is committed."""
    from tqdm import tqdm

    from indexing.cluster import ClusterConfig

    service = _service(args)
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


def list_command(args) -> int:
    from indexing.library import Library
    from indexing.recording_time import by_day, local_moment

    library = Library.open(_settings(args).library)
    records = library.videos(include_pending=True)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=1))
        return 0
    if not records:
        print(f"no videos in {library.root}")
        return 0
    for day, group in by_day(records):  # a diary: days in order, each day's recordings by time
        print(day)
        for r in group:
            at = local_moment(r.recorded_at, r.recorded_tz).strftime("%H:%M") if r.recorded_at else "--:--"
            source = f"({r.recorded_source})" if r.recorded_source else ""
            print(f"  {at}  {source:12} {r.id:12}  {_duration(r.duration):>8}  {r.status:8}  {r.name}")
    return 0


def set_time_command(args) -> int:
    from indexing.library import Library
    from indexing.recording_time import parse_user_time, short_time

    when = parse_user_time(args.time)  # a time that cannot be read changes nothing
    rec = Library.open(_settings(args).library, create=False).set_recording_time(args.id, when)
    print(f"{rec.id}  {rec.name}: recorded {short_time(rec.recorded_at, rec.recorded_tz)} (set by you)")
    return 0


def remove_command(args) -> int:
    from indexing.library import Library

    rec = Library.open(_settings(args).library, create=False).remove(args.id)
    print(f"removed {rec.id}  {rec.name}")
    return 0


def _print_report(report) -> None:
    for problem in report.problems:
        print(problem)
    for fix in report.fixed:
        print(f"fixed: {fix}")
    if report.ok:
        print("library is consistent")


def check_command(args) -> int:
    from indexing.library import Library

    report = Library.open(_settings(args).library, create=False, repair=False).check()
    _print_report(report)
    return 0 if report.ok else 1


def reindex_command(args) -> int:
    from tqdm import tqdm

    from indexing.library import Library
    from models.clip_encoder import EncoderSpec

    Library.open(_settings(args).library, create=False, repair=False)  # a clear error when there is none
    service = _service(argparse.Namespace(library=args.library, device=args.device, workers=args.workers))
    bar = tqdm(desc="re-indexing", unit="frame", leave=False, disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = service.reindex(
            EncoderSpec(args.model, args.pretrained, "" if args.quantize == "none" else args.quantize),
            progress=progress,
        )
    finally:
        bar.close()
    if report.unchanged:
        print(f"the library already uses {report.new_key}; nothing to do")
        return 0
    for video_id, why in report.damaged:
        print(f"error: {why} (video {video_id} is now marked damaged; remove it and add it again)", file=sys.stderr)
    print(
        f"re-indexed {report.videos} videos with {report.new_key} (was {report.old_key}) in {_duration(report.seconds)}"
    )
    return 1 if report.damaged else 0


def repair_command(args) -> int:
    from indexing.library import Library

    library = Library.open(_settings(args).library, create=False, repair=False)
    report = library.repair()
    _print_report(report)
    return 0


def correct_command(args) -> int:
    from indexing.library import Library

    library = Library.open(_settings(args).library, create=False, repair=False)
    try:
        c = library.feedback.add(args.id, args.question, args.start, args.end, args.verdict, mode=args.mode)
    finally:
        library.close()
    print(f"stored correction {c.id}: {c.verdict} {c.start:.2f}-{c.end:.2f} s of video {c.video_id} for {c.question!r}")
    return 0


def feedback_command(args) -> int:
    from indexing.library import Library
    from training.feedback import export_feedback

    library = Library.open(_settings(args).library, create=False, repair=False)
    try:
        if args.out is not None:
            print(export_feedback(library, args.out).line())
            return 0
        corrections = library.feedback.list()
    finally:
        library.close()
    if args.json:
        print(json.dumps([c.to_dict() for c in corrections], indent=1))
    elif not corrections:
        print("no corrections stored yet")
    for c in [] if args.json else corrections:
        print(f"{c.id:4d}  {c.video_id}  {c.verdict:<8}  {_duration(c.start)}-{_duration(c.end)}  {c.question}")
    return 0


def export_features_command(args) -> int:
    from indexing.feature_export import export_features
    from indexing.library import Library

    done = export_features(Library.open(_settings(args).library, create=False), args.out)
    print(f"exported the features of {done.videos} videos to {done.folder}")
    return 0
