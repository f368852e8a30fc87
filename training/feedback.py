"""The library's corrections as an Ego4D NLQ training file: what a person's own videos teach a localizer.

Each video with usable corrections becomes one clip covering the whole video (``video_uid`` is the video's file
stem, which is how :class:`training.features.LibraryClipFeatures` finds its features); each correction marked
right, or adjusted to new times, becomes a language query whose answer is that window. Moments marked wrong
say where the answer is *not*, which NLQ training cannot use; they are counted and left out. The file trains
like any NLQ file (e.g. stage ``finetune`` from a checkpoint, alone or beside NaQ/NLQ files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexing.feedback import ADJUSTED, RIGHT
from indexing.library import Library
from training.nlq_writer import NLQFileBuilder

FEEDBACK_TEMPLATE = "EgoRecall: corrected answer"


@dataclass
class FeedbackExport:
    path: Path
    queries: int
    videos: int
    skipped_wrong: int

    def line(self) -> str:
        answers = f"{self.queries} corrected answer{'' if self.queries == 1 else 's'}"
        videos = f"{self.videos} video{'' if self.videos == 1 else 's'}"
        wrong = f"{self.skipped_wrong} moment{' marked wrong is' if self.skipped_wrong == 1 else 's marked wrong are'}"
        return f"wrote {answers} of {videos} to {self.path}" + (
            f"; {wrong} not training queries" if self.skipped_wrong else ""
        )


def export_feedback(library: Library, path: str | Path) -> FeedbackExport:
    """Write the library's right/adjusted corrections as an NLQ file (train split)."""
    corrections = library.feedback.list()
    records = {r.id: r for r in library.videos()}
    builder = NLQFileBuilder(description="EgoRecall: answers corrected by the library's user")
    clips: set[str] = set()
    written = skipped = 0
    for c in corrections:
        if c.verdict not in (RIGHT, ADJUSTED):
            skipped += 1
            continue
        rec = records.get(c.video_id)
        if rec is None:  # not ready (being re-indexed): its correction waits for the next export
            continue
        clip_uid = f"{rec.id}-library"
        if clip_uid not in clips:
            builder.add_clip(clip_uid, Path(rec.name).stem, 0.0, rec.duration, split="train")
            clips.add(clip_uid)
        builder.add_query(
            clip_uid, c.question, c.start, c.end, template=FEEDBACK_TEMPLATE, annotation_uid=f"{rec.id}-feedback"
        )
        written += 1
    out = builder.write(path, indent=1)
    return FeedbackExport(Path(out), written, len(clips), skipped)
