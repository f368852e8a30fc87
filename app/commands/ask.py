"""``python -m app ask QUESTION`` (ranked moments with clips) and ``python -m app predict`` (an NLQ submission).

Both answer through the same answerers as the UI (:mod:`app.answering`); ``ask`` goes through
``EgoRecall.ask``. Library code is imported inside the handlers so that ``python -m app --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

from app.commands.common import add_library_args, command_settings
from app.text import counted

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mts", ".ts")


def register(subparsers) -> None:
    _register_ask(subparsers)
    _register_predict(subparsers)
    _register_calibrate(subparsers)


def _register_ask(subparsers) -> None:
    p = subparsers.add_parser(
        "ask",
        help="find the moments of your videos that answer a question",
        description='Answer a question such as "where did I put my keys?" with the best moments of one video '
        "or of the whole library: rank, video, start-end, score and a playable clip of each.",
    )
    p.add_argument("question", help='the question, e.g. "where did I put my keys?"')
    p.add_argument("--video", metavar="ID", default=None, help="search only this video (id from `library list`)")
    p.add_argument(
        "--mode",
        default="auto",
        metavar="auto|zeroshot|CHECKPOINT|fused:CHECKPOINT",
        help="auto (default: fused with the library's best trained checkpoint, else zero-shot CLIP search), "
        "zeroshot, a trained checkpoint's name or folder, or fused:CHECKPOINT",
    )
    p.add_argument("--k", type=int, default=5, metavar="N", help="how many moments, 1-50 (default 5)")
    p.add_argument(
        "--since",
        default=None,
        metavar="TIME",
        help="only what was recorded from TIME on: 2026-12-06T08:00, 2026-12-06, or words (yesterday, Monday, "
        "last week, this morning: from their start)",
    )
    p.add_argument(
        "--until",
        default=None,
        metavar="TIME",
        help="only what was recorded before TIME (in words: up to the end of the day or week they name)",
    )
    clips = p.add_mutually_exclusive_group()
    clips.add_argument(
        "--clips", type=Path, default=None, metavar="DIR", help="also copy each moment's clip and thumbnail into DIR"
    )
    clips.add_argument("--no-clips", action="store_true", help="do not cut clips (faster)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="where models run")
    add_library_args(p)
    p.set_defaults(handler=ask_command)


def _register_predict(subparsers) -> None:
    pr = subparsers.add_parser(
        "predict",
        help="answer every query of an Ego4D NLQ file and write a challenge submission",
        description="Answer each query of an NLQ annotation file (top-k windows, seconds from the clip's start) "
        "and write an Ego4D NLQ challenge submission; score it with `python -m app evaluate`. "
        "Clips come from the library's videos (named <video_uid>.<ext>), from --videos-dir (indexed first when "
        "missing), or from --features-dir. Queries whose clip has no features are reported and written with no "
        "windows (misses).",
    )
    pr.add_argument(
        "--annotations", required=True, type=Path, metavar="NLQ.json", help="NLQ file (v1/v2, annotated or not)"
    )
    pr.add_argument(
        "--mode",
        default="auto",
        metavar="auto|zeroshot|CHECKPOINT|fused:CHECKPOINT",
        help="auto (default: fused with the best compatible trained checkpoint, else zero-shot), zeroshot, a "
        "trained checkpoint's name or folder, or fused:CHECKPOINT",
    )
    src = pr.add_mutually_exclusive_group()
    src.add_argument(
        "--videos-dir",
        type=Path,
        metavar="DIR",
        help="folder of the clips' source videos, <video_uid>.<ext>: indexed into the library when not there yet",
    )
    src.add_argument(
        "--features-dir", type=Path, metavar="DIR", help="folder of precomputed clip features, <clip_uid>.npy or .pt"
    )
    pr.add_argument("--out", required=True, type=Path, metavar="PRED.json", help="submission file to write")
    pr.add_argument("--k", type=int, default=5, metavar="N", help="windows per query, 1-50 (default 5)")
    pr.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="open_clip architecture for questions (default: the library's, else $EGORECALL_MODEL)",
    )
    pr.add_argument("--pretrained", default=None, metavar="TAG|FILE|none", help="its weights")
    pr.add_argument(
        "--features-key",
        default=None,
        metavar="KEY",
        help="with --features-dir: the identity of the encoder that made the features (an encoder "
        "key such as ViT-B-16/openai), checked against the mode; without it only the "
        "dimension is checked",
    )
    pr.add_argument(
        "--features-layout",
        choices=("auto", "clip", "video"),
        default="auto",
        help="with --features-dir: per-clip files, per-video files (Ego4D's downloads, <video_uid>.pt; clips are "
        "cut from them), or auto (each clip's own file, else its video's)",
    )
    pr.add_argument("--device", choices=("cpu", "cuda"), default=None, help="where models run")
    add_library_args(pr)
    pr.set_defaults(handler=predict_command)


def _register_calibrate(subparsers) -> None:
    ca = subparsers.add_parser(
        "calibrate",
        help="fit a mode's confidence calibration and its 'no good match' threshold on an annotated NLQ file",
        description="Answer every query of an annotated NLQ file about the library's videos, plus questions of "
        "other videos' clips about an object or place the clip's own questions never name as negatives, and fit "
        "the score -> probability-of-a-right-answer map and the threshold below which answers say 'no good "
        "match' (losing at most --max-loss points of R@1@0.3). It is stored with the checkpoint, or with the "
        "EgoRecall-pretrained encoder for zeroshot. For a checkpoint, fused:CHECKPOINT or auto, the fusion "
        "weight is chosen again on the file first, then the checkpoint's and the fused mode's calibrations are "
        "fitted (training does the same on its validation file).",
    )
    ca.add_argument("--annotations", required=True, type=Path, metavar="NLQ.json", help="annotated NLQ file")
    ca.add_argument("--mode", default="auto", metavar="auto|zeroshot|CHECKPOINT|fused:CHECKPOINT")
    ca.add_argument("--negatives", type=int, default=3, metavar="N", help="negative questions per clip (at least 1)")
    ca.add_argument(
        "--max-loss", type=float, default=2.0, metavar="POINTS", help="R@1@0.3 that may be lost, 0-100 (default 2)"
    )
    add_library_args(ca)
    ca.set_defaults(handler=calibrate_command)


# ------------------------------------------------------------------------------------------ formatting
def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on (whole seconds, rounded down so a start never looks later)."""
    total = int(max(0.0, seconds) + 1e-6)
    m, s = divmod(total, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"


def _copy_clips(answer, directory: Path):
    """Copy each moment's clip and thumbnail into ``directory`` under readable names; returns new moments."""
    from dataclasses import replace

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for m in answer.moments:
        if m.clip is None:
            out.append(m)
            continue
        base = (
            f"{m.rank:02d}-{_safe(Path(m.video_name).stem)}-"
            f"{clock(m.start).replace(':', '')}-{clock(m.end).replace(':', '')}"
        )
        clip = directory / f"{base}.mp4"
        shutil.copyfile(m.clip, clip)
        thumb = None
        if m.thumbnail is not None:
            thumb = directory / f"{base}.jpg"
            shutil.copyfile(m.thumbnail, thumb)
        out.append(replace(m, clip=clip, thumbnail=thumb))
    return replace(answer, moments=out)


def ask_command(args: argparse.Namespace) -> int:
    from app.answering import check_k
    from app.answering.results import confidence_text, percent
    from app.answering.when import explicit_range
    from app.service import EgoRecall
    from indexing.library import Library

    check_k(args.k)
    explicit_range(args.since, args.until)  # an unreadable time is refused before any work
    settings = command_settings(args)
    Library.open(settings.library, create=False, repair=False).close()  # no library: say so, create none
    service = EgoRecall(settings)
    answer = service.ask(
        args.question,
        video_id=args.video,
        mode=args.mode,
        k=args.k,
        clips=not args.no_clips,
        since=args.since,
        until=args.until,
    )
    if args.clips is not None:
        answer = _copy_clips(answer, args.clips)
    if args.json:
        print(json.dumps(_json_answer(answer), indent=1))
        return 0
    for warning in answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    scope = f"video {args.video}" if args.video else f"{counted(answer.candidates, 'video')} searched"
    how = f"{answer.asked_mode}: {answer.label}" if answer.asked_mode != answer.mode else answer.label
    print(f"{answer.question}\n  {how}, {scope}, {answer.seconds:.2f} s")
    if answer.searching:
        print(f"  searching: {answer.searching}")
    if answer.order_note:
        print(f"  {answer.order_note}")
    if not answer.moments:
        print("  no moments found")
        return 0
    if answer.no_good_match:
        best, line = answer.best_confidence or 0.0, answer.threshold or 0.0
        print(
            f"  no good match (best confidence {percent(best, line)}, a good match needs "
            f"{percent(line, best)}); the closest candidates:"
        )
    width = max(len(m.video_name) for m in answer.moments)
    sure = [confidence_text(m.confidence, answer.threshold) for m in answer.moments]
    sure_width = max(len(s) for s in sure)
    for m, said in zip(answer.moments, sure):
        where = str(m.clip) if m.clip else (f"(no clip: {m.clip_error})" if m.clip_error else "")
        when = f"{m.when:>17}  " if m.when else ""
        span = f"{clock(m.start):>7}–{clock(m.end):<7}"
        column = f"{said:<{sure_width}}  " if sure_width else ""
        print(f"{m.rank:3d}  {when}{m.video_name:<{width}}  {span}  {m.score:8.4f}  {column}{where}".rstrip())
    return 0


def _json_answer(answer) -> dict:
    """The answer without the per-bin curves (the UI reads those from ``Answer`` directly)."""
    d = answer.to_dict()
    d.pop("series")
    return d


# ------------------------------------------------------------------------------------------ predict
def _find_video(directory: Path, video_uid: str) -> Path | None:
    for suffix in VIDEO_SUFFIXES:
        for candidate in (directory / f"{video_uid}{suffix}", directory / f"{video_uid}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _library_source(args, settings, dataset):
    """The library as a clip source; with ``--videos-dir``, the clips' source videos that are not in it yet are
    indexed first. Videos found nowhere are reported by uid and their queries count as misses."""
    from tqdm import tqdm

    from app.service import EgoRecall
    from models.clip_encoder import EncoderSpec
    from models.errors import EgoRecallError
    from training.features import LibraryClipFeatures

    if args.videos_dir is not None and not args.videos_dir.is_dir():
        raise EgoRecallError(f"--videos-dir {args.videos_dir} is not a folder")
    spec = EncoderSpec.from_env(args.model, args.pretrained) if (args.model or args.pretrained) else None
    service = EgoRecall(settings, encoder_spec=spec)
    have = {Path(r.name).stem for r in service.videos()}
    uids = sorted({c.video_uid for c in dataset.clips.values()})
    folder = args.videos_dir
    missing = [u for u in uids if u not in have and (folder is None or _find_video(folder, u) is None)]
    todo = [(u, _find_video(folder, u)) for u in uids if u not in have and u not in missing]
    if missing:
        where = f"in the library nor in {folder}" if folder is not None else f"in the library at {settings.library}"
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        print(
            f"warning: {len(missing)} of {len(uids)} videos are {'neither ' if folder else 'not '}{where}: "
            f"{shown}; their queries count as misses"
            + ("" if folder else " (index them, or pass --videos-dir/--features-dir)"),
            file=sys.stderr,
        )
    for _uid, path in tqdm(todo, desc="indexing", unit="video", disable=None, file=sys.stderr):
        (result,) = service.index([path])
        if not result.ok:
            print(f"error: {result.error}", file=sys.stderr)
    return service, service.answerer(args.mode), LibraryClipFeatures(service.library)


def _directory_source(args, settings):
    from app.answering import AnswerContext, make_answerer
    from models.clip_encoder import ClipEncoder, EncoderSpec
    from training.features import DirectoryClipFeatures

    source = DirectoryClipFeatures(args.features_dir, key=args.features_key, layout=args.features_layout)
    spec = EncoderSpec.from_env(args.model, args.pretrained) if (args.model or args.pretrained) else settings.encoder
    loaded = {}

    def clip():
        if "clip" not in loaded:
            loaded["clip"] = ClipEncoder.load(spec, settings.device)
        return loaded["clip"]

    context = AnswerContext(
        feature_key=source.key,
        feature_dim=source.dim,
        rate_hz=None,
        encoder=clip,
        encoder_spec=spec,
        checkpoints_dir=settings.checkpoints_dir,
        device=settings.device,
        feature_key_known=args.features_key is not None,
    )
    return make_answerer(args.mode, context), source


def predict_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from app.answering import answer_dataset, check_k
    from training.nlq import load_nlq
    from training.submission import Prediction, write_submission

    check_k(args.k)
    started = time.monotonic()
    settings = command_settings(args)
    dataset = load_nlq(args.annotations)
    if args.features_dir is None:
        _service, answerer, source = _library_source(args, settings, dataset)
    else:
        answerer, source = _directory_source(args, settings)

    by_clip = dataset.queries_by_clip()
    bar = tqdm(total=len(dataset.queries), desc="answering", unit="query", disable=None, file=sys.stderr)
    answers = answer_dataset(answerer, dataset, source, args.k, progress=bar.update)
    bar.close()
    no_features, empty = answers.no_features, answers.empty

    ordered = [Prediction.for_query(q, answers.for_query(q)) for q in dataset.queries]
    write_submission(args.out, ordered, max_windows=args.k)
    missed = sum(len(by_clip[c]) for c in no_features)
    for why in list(no_features.values())[:5]:
        print(f"warning: {why}", file=sys.stderr)
    if len(no_features) > 5:
        print(f"warning: ... and {len(no_features) - 5} more clips without features", file=sys.stderr)
    print(
        f"{answerer.label}: answered {len(answers.windows)} of {len(dataset.queries)} queries in "
        f"{len(by_clip) - len(no_features)} clips in {time.monotonic() - started:.1f} s; "
        f"{missed} queries in {len(no_features)} clips without features and {empty} empty queries count as "
        f"misses; wrote {args.out}"
    )
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    from app.answering import AUTO, FUSED, ZEROSHOT, InvalidRequest, parse_mode, resolve_auto
    from app.answering.rejection import CalibrationError, calibrate_mode, negative_queries
    from app.answering.tuning import fit_checkpoint
    from app.service import EgoRecall
    from training.features import LibraryClipFeatures
    from training.nlq import load_nlq

    if not 0.0 <= args.max_loss <= 100.0:
        raise InvalidRequest(f"--max-loss is points of R@1@0.3 from 0 to 100 (got {args.max_loss:g})")
    if args.negatives < 1:
        raise InvalidRequest(f"--negatives must be at least 1 question per clip (got {args.negatives})")
    service = EgoRecall(command_settings(args))
    dataset = load_nlq(args.annotations)
    source = LibraryClipFeatures(service.library)
    mode = resolve_auto(service.answer_context()) if args.mode == AUTO else args.mode
    kind, checkpoint = parse_mode(mode)
    if mode != ZEROSHOT:  # a checkpoint, alone or fused: its fusion weight first, then both calibrations
        name = (checkpoint or mode) if kind.name == FUSED else mode
        fit = fit_checkpoint(
            service, name, dataset, source, negatives_per_clip=args.negatives, max_r1_loss=args.max_loss
        )
        if not fit.calibrations and fit.fusion is None:
            raise CalibrationError(f"nothing could be fitted: {fit.summary()}")
        print(fit.summary())
        return 0
    negatives = negative_queries(dataset, per_clip=args.negatives)
    out = calibrate_mode(service, mode, dataset, source, negatives, max_r1_loss=args.max_loss)
    c, cal = out["cross_fitted"], out["calibration"]
    print(
        f"{mode}: calibrated on {cal['positives']} queries and {cal['negatives']} negatives of "
        f"{args.annotations}; threshold {100 * cal['threshold']:.0f} %. On held-out halves: "
        f"{c['negatives_flagged']:.0f} % of negatives flagged 'no good match', {c['R@1@0.3_lost']:.1f} points of "
        f"R@1@0.3 lost (of {c['R@1@0.3']:.1f})"
    )
    return 0
