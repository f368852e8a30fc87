"""``python -m app library ACTION``: list, set-time, remove, check, repair, reindex, correct, feedback and
export-features -- the upkeep of a library once videos are in it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.commands.common import add_library_args, command_settings, duration_text, service_for


def register(subparsers) -> None:
    lib = subparsers.add_parser("library", help="list, remove, check or repair library videos")
    sub = lib.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    _register_listing(sub)
    _register_upkeep(sub)
    _register_corrections(sub)


def _register_listing(sub) -> None:
    """``library list``, ``set-time``, ``remove``, ``export-features``: the videos themselves."""
    ls = sub.add_parser("list", help="list the indexed videos")
    add_library_args(ls)
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
    add_library_args(st)
    st.set_defaults(handler=set_time_command)
    rm = sub.add_parser("remove", help="remove a video and everything stored for it")
    rm.add_argument("id", help="video id (from `library list`)")
    add_library_args(rm)
    rm.set_defaults(handler=remove_command)
    ex = sub.add_parser(
        "export-features",
        help="write every video's features as <video name>.npy (Ego4D's per-video layout), to train on",
        description="Copy each ready video's float16 features to OUT/<file name stem>.npy with a features.json "
        "naming the encoder and grid; `train --set data.features_dir=OUT` then trains a localizer that matches "
        "this library's features.",
    )
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write")
    add_library_args(ex)
    ex.set_defaults(handler=export_features_command)


def _register_upkeep(sub) -> None:
    """``library check``, ``repair``, ``reindex``: keeping the library whole, and switching its encoder."""
    ck = sub.add_parser("check", help="report inconsistencies (exit 1 if any)")
    add_library_args(ck)
    ck.set_defaults(handler=check_command)
    rp = sub.add_parser("repair", help="fix inconsistencies (dead jobs, orphan files, stale index)")
    add_library_args(rp)
    rp.set_defaults(handler=repair_command)
    ri = sub.add_parser(
        "reindex",
        help="switch the library to another encoder (re-encodes every video)",
        description="Re-encode every video of the library with another encoder and switch to it "
        "atomically: until the switch the library keeps working with its old encoder, "
        "and an interrupted re-index leaves it as it was.",
    )
    add_library_args(ri)
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
    add_library_args(co)
    co.set_defaults(handler=correct_command)
    fb = sub.add_parser(
        "feedback",
        help="list the stored corrections, or export them as an Ego4D NLQ file",
        description="Without --out: the corrections, one per line. With --out: an NLQ-format file of the right "
        "and adjusted answers (one clip per video), to train or fine-tune a localizer on.",
    )
    fb.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the NLQ file here")
    fb.add_argument("--json", action="store_true", help="list as JSON")
    add_library_args(fb)
    fb.set_defaults(handler=feedback_command)


def list_command(args) -> int:
    from indexing.library import Library
    from indexing.recording_time import by_day, local_moment

    library = Library.open(command_settings(args).library)
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
            print(f"  {at}  {source:12} {r.id:12}  {duration_text(r.duration):>8}  {r.status:8}  {r.name}")
    return 0


def set_time_command(args) -> int:
    from indexing.library import Library
    from indexing.recording_time import parse_user_time, short_time

    when = parse_user_time(args.time)  # a time that cannot be read changes nothing
    rec = Library.open(command_settings(args).library, create=False).set_recording_time(args.id, when)
    print(f"{rec.id}  {rec.name}: recorded {short_time(rec.recorded_at or when.at, rec.recorded_tz)} (set by you)")
    return 0


def remove_command(args) -> int:
    from indexing.library import Library

    rec = Library.open(command_settings(args).library, create=False).remove(args.id)
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

    report = Library.open(command_settings(args).library, create=False, repair=False).check()
    _print_report(report)
    return 0 if report.ok else 1


def reindex_command(args) -> int:
    from tqdm import tqdm

    from indexing.library import Library
    from models.clip_encoder import EncoderSpec

    Library.open(command_settings(args).library, create=False, repair=False)  # a clear error when there is none
    service = service_for(argparse.Namespace(library=args.library, device=args.device, workers=args.workers))
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
        f"re-indexed {report.videos} videos with {report.new_key} (was {report.old_key}) "
        f"in {duration_text(report.seconds)}"
    )
    return 1 if report.damaged else 0


def repair_command(args) -> int:
    from indexing.library import Library

    library = Library.open(command_settings(args).library, create=False, repair=False)
    report = library.repair()
    _print_report(report)
    return 0


def correct_command(args) -> int:
    from indexing.library import Library

    library = Library.open(command_settings(args).library, create=False, repair=False)
    try:
        c = library.feedback.add(args.id, args.question, args.start, args.end, args.verdict, mode=args.mode)
    finally:
        library.close()
    print(f"stored correction {c.id}: {c.verdict} {c.start:.2f}-{c.end:.2f} s of video {c.video_id} for {c.question!r}")
    return 0


def feedback_command(args) -> int:
    from indexing.library import Library
    from training.feedback import export_feedback

    library = Library.open(command_settings(args).library, create=False, repair=False)
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
        print(f"{c.id:4d}  {c.video_id}  {c.verdict:<8}  {duration_text(c.start)}-{duration_text(c.end)}  {c.question}")
    return 0


def export_features_command(args) -> int:
    from indexing.feature_export import export_features
    from indexing.library import Library

    done = export_features(Library.open(command_settings(args).library, create=False), args.out)
    print(f"exported the features of {done.videos} videos to {done.folder}")
    return 0
