"""How the grammar reads real questions: the query texts of Ego4D NLQ annotation files.

    python bench/bench_questions.py --annotations ~/ego4d/v2/annotations/nlq_train.json nlq_val.json
    python bench/bench_questions.py --annotations https://HOST/nlq_val.json     # fetched at run time, kept in --cache
    python bench/bench_questions.py --annotations FILE --show 30                  # and 30 texts no rule read

Ego4D's files come with its licence (`ego4d --output_directory ~/ego4d --datasets annotations`, after accepting
it at ego4ddataset.com); they are read where they are or fetched at run time and never committed. Any file in
the NLQ format works (the synthetic worlds' ``nlq_val.json`` too).

For every language query: **read by a rule** -- a grammar rule read it (not the object-finding fallback, not the
bag of content words); **object found** -- the annotators' ``slot_x`` (what the template's X stands for: Ego4D's
own record of what the query is about) is in the part of the reading the template puts it in (its head noun,
singular): the place for "What did I put in X?" and "... in location X?", the person for "... person with role
X?", the activity for "... activity X?", else the object; **named anywhere** -- that head noun is in any part of
the reading (object, place, person, action, anchor event). Per Ego4D template, then overall. A query without
``slot_x``, or whose X is the template's own placeholder ("What *object* did I pick up?": the answer is the
thing, nothing names it), counts in "read by a rule" only. Target (issue 27): >= 97 % of real queries read with
their object found.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.questions import UNREAD_TEMPLATES, EmptyQuestion, rewrite_question  # noqa: E402
from models.text_normalize import normalize_text  # noqa: E402
from models.words import bare, singular  # noqa: E402

logger = logging.getLogger("bench_questions")

PLACEHOLDERS = frozenset({"object", "thing", "item", "stuff", "time"})
"""An X that names no object: the template's own word for the thing asked about, or the count of "How many times"."""
ROLES = ((re.compile(r"put in x|location x", re.I), "place"), (re.compile(r"activity x", re.I), "action"))
ROLES += ((re.compile(r"role x|person x", re.I), "person"),)
"""Where a template's X lands in a reading (the object where none of these match)."""


def role(template: str) -> str:
    return next((field for pattern, field in ROLES if pattern.search(template)), "object")


@dataclass(frozen=True)
class TextQuery:
    text: str
    template: str
    slot: str


def load_texts(path: Path) -> list[TextQuery]:
    """Every language query's text, template and ``slot_x`` in an NLQ-format file (null entries skipped)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"error: cannot read {path} as an NLQ annotation file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("videos"), list):
        raise SystemExit(f"error: {path} is not an NLQ annotation file (no 'videos' list)")
    out = []
    for video in doc["videos"]:
        for clip in (video or {}).get("clips") or []:
            for ann in (clip or {}).get("annotations") or []:
                for lq in (ann or {}).get("language_queries") or []:
                    if isinstance(lq, dict) and isinstance(lq.get("query"), str) and lq["query"].strip():
                        slot = lq.get("slot_x")
                        out.append(
                            TextQuery(
                                lq["query"], str(lq.get("template") or "(none)"), slot if isinstance(slot, str) else ""
                            )
                        )
    return out


def head(phrase: str | None) -> str:
    """The head noun of a phrase, singular and bare ("my red Cups" -> "cup"); "" when there is none."""
    words = re.sub(r"[^a-z ]+", " ", normalize_text(phrase or "")).split()
    if not words:
        return ""
    return singular(bare(" ".join(words))).split()[-1]


def _words(phrase: str | None) -> set[str]:
    return {singular(w) for w in re.sub(r"[^a-z ]+", " ", (phrase or "").lower()).split()}


@dataclass
class Reading:
    rule: str
    read: bool
    found: bool | None
    """None where the query has no ``slot_x``."""
    named: bool | None


def read(q: TextQuery) -> Reading:
    try:
        r = rewrite_question(q.text)
    except EmptyQuestion:
        return Reading("empty", False, False if q.slot else None, False if q.slot else None)
    target = head(q.slot)
    if not target or target in PLACEHOLDERS:
        return Reading(r.template, r.template not in UNREAD_TEMPLATES, None, None)
    found = target in _words(getattr(r, role(q.template)))
    anchor = " ".join(p.text for p in r.anchor)
    named = found or any(target in _words(part) for part in (r.object, r.place, r.person, r.action, anchor))
    return Reading(r.template, r.template not in UNREAD_TEMPLATES, found, named)


def _share(values: list[bool | None]) -> tuple[float | None, int]:
    """Percent true among the known values (None when none is known: JSON null, printed as a dash)."""
    known = [v for v in values if v is not None]
    return (100.0 * sum(known) / len(known) if known else None), len(known)


def _pct(value: float | None, width: int) -> str:
    return f"{'–':>{width}}" if value is None else f"{value:>{width}.1f}"


def report(queries: list[TextQuery], show: int = 0) -> dict:
    readings = [read(q) for q in queries]
    by_template: dict[str, list[Reading]] = defaultdict(list)
    for q, r in zip(queries, readings):
        by_template[q.template].append(r)

    def row(rs: list[Reading]) -> dict:
        found, with_slot = _share([r.found for r in rs])
        named, _ = _share([r.named for r in rs])
        return {
            "queries": len(rs),
            "read_by_a_rule": 100.0 * sum(r.read for r in rs) / max(len(rs), 1),
            "with_slot": with_slot,
            "object_found": found,
            "named_anywhere": named,
        }

    unread = [q for q, r in zip(queries, readings) if not r.read]

    def missed(q: TextQuery) -> str:
        field = role(q.template)
        return f"{q.text}  [slot_x: {q.slot}; {field} read: {getattr(rewrite_question(q.text), field)}]"

    openings = Counter(" ".join(normalize_text(q.text).split()[:3]) for q in unread)
    return {
        "all": row(readings),
        "templates": {t: row(rs) for t, rs in sorted(by_template.items(), key=lambda kv: -len(kv[1]))},
        "unread_openings": openings.most_common(15),
        "unread_examples": [q.text for q in unread[:show]],
        "not_found_examples": [missed(q) for q, r in zip(queries, readings) if r.found is False and r.rule != "empty"][
            :show
        ],
    }


def _local(source: str, cache: Path) -> Path:
    if not re.match(r"^https?://", source):
        return Path(source).expanduser()
    from models.download import DownloadFailed, fetch_url

    target = cache / Path(source.split("?", 1)[0]).name
    if not target.is_file():
        try:
            fetch_url(source, target, f"the annotation file {target.name}")
        except DownloadFailed as exc:
            raise SystemExit(f"error: {exc}") from None
    return target


def _print(name: str, rep: dict) -> None:
    a = rep["all"]
    print(
        f"\n{name}: {a['queries']} queries; read by a rule {a['read_by_a_rule']:.1f} %; of the {a['with_slot']} with "
        f"slot_x: object found {_pct(a['object_found'], 0)} %, named anywhere {_pct(a['named_anywhere'], 0)} %"
    )
    print(f"  {'template':<58} {'queries':>7} {'rule %':>7} {'found %':>8} {'named %':>8}")
    for t, r in rep["templates"].items():
        print(
            f"  {t[:58]:<58} {r['queries']:>7} {r['read_by_a_rule']:>7.1f} {_pct(r['object_found'], 8)} "
            f"{_pct(r['named_anywhere'], 8)}"
        )
    if rep["unread_openings"]:
        print("  openings no rule read: " + ", ".join(f"'{o}' {n}" for o, n in rep["unread_openings"]))
    for text in rep["unread_examples"]:
        print(f"  unread: {text}")
    for text in rep["not_found_examples"]:
        print(f"  object not found: {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", nargs="+", required=True, help="NLQ annotation files or their URLs")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "egorecall" / "nlq")
    parser.add_argument("--show", type=int, default=0, help="print this many texts no rule read / not found")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {}
    for source in args.annotations:
        path = _local(source, args.cache)
        out[str(path)] = report(load_texts(path), show=args.show)
        _print(str(path), out[str(path)])
    if len(out) > 1:
        everything = [q for source in args.annotations for q in load_texts(_local(source, args.cache))]
        out["all files"] = report(everything)
        _print("all files", out["all files"])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
