"""Features that behave like real ones for ``bench_query.py --features worlds``: real pipeline features of
rendered first-person video, tiled and perturbed to any number of hours, and real question embeddings.

Source: the libraries ``bench_transfer.py --corpus-style home --train-steps 400 --localizer vslnet
--pretrain-steps 240 --augment speed_probability=0`` (its first corpus, ``FIRST_CORPUS``) leaves in
``bench/out/transfer`` -- its one-house corpus and the report worlds (styles ``home``, ``flat``, ``cottage``,
``loft``), every video indexed by one encoder (the corpus's ``egorecall-small``, pretrained on narrations: its
features are anisotropic and its text-to-frame cosines small, as CLIP's are). About 2.9 hours of features and
~1,700 questions in the worlds' own words.

* **Videos.** A 30-minute video is a run of source recordings (a day of 90-150 s activities), drawn at random
  with their order, so answers are seconds long inside minutes of similar frames. Every piece is distorted as a
  whole -- a random near-identity linear map (a day's light and camera) -- and every frame gets noise, so each
  of the ~350 copies of a source moment at 1,000 hours is a distinct video whose scores differ from the others'
  by the copy, not only by frame noise (per-frame cosine to the source ~0.95).
* **Dimensions.** The encoder's 128-d features and questions are embedded in 512-d by one random isometry
  (cosines unchanged), so memory, scan and rescoring cost what 512-d CLIP ViT-B features cost.
* **Questions.** Every world's NLQ questions, rewritten by the app's grammar into prompt ensembles and encoded
  by the corpus encoder's text tower, exactly as ``ask`` would; a seeded sample of them is asked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRANSFER = ROOT / "bench" / "out" / "transfer"
LIBRARIES = ("corpus", "home-2027", "home-2028", "flat-3101", "cottage-3102", "loft-3103")
DISTORTIONS = 64
DISTORTION = 0.12
"""Scale of a piece's linear distortion x -> x + DISTORTION * x @ B (B Gaussian, 1/sqrt(dim) entries)."""
FRAME_NOISE = 0.0145
"""Per-dimension Gaussian noise on each frame (512-d: cosine ~0.95 to the undisturbed frame)."""


class WorldSource:
    """The source recordings (features in 512-d) and the corpus encoder, loaded once."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        from indexing.library import Library

        missing = [n for n in LIBRARIES if not (TRANSFER / n / "library.sqlite").exists()]
        if missing:
            raise SystemExit(
                f"--features worlds reads the libraries bench_transfer.py builds; missing {missing} under "
                f"{TRANSFER} (run bench/bench_generalization.py, then bench/bench_transfer.py --corpus-style home "
                "--train-steps 400 --localizer vslnet --pretrain-steps 240 --augment speed_probability=0)"
            )
        self.pieces: list[np.ndarray] = []
        self.origins: list[str] = []
        """Each piece's source video (its world's ``video_uid``)."""
        self.worlds: list[Path] = []
        spec = None
        for name in LIBRARIES:
            lib = Library.open(TRANSFER / name)
            spec = spec or lib.encoder_spec
            if lib.encoder_spec != spec:
                raise SystemExit(f"{name} was indexed by another encoder than {LIBRARIES[0]}")
            records = {r.id: r for r in lib.videos()}
            maps = lib.features_of(list(records.values()))
            self.pieces += [np.asarray(m, np.float32) for m in maps.values()]
            self.origins += [Path(records[vid].name).stem for vid in maps]
            self.worlds += sorted({Path(r.source_path).parent.parent / "world.json" for r in records.values()})
            lib.close()
        assert spec is not None
        self.encoder_spec = spec
        source_dim = self.pieces[0].shape[1]
        rng = np.random.default_rng((seed, 7))
        basis, _ = np.linalg.qr(rng.standard_normal((dim, source_dim)))  # [dim, source_dim], orthonormal columns
        self.embed = basis.T.astype(np.float32)  # x [.., source_dim] @ embed -> [.., dim], cosines unchanged
        self.distortions = [
            (DISTORTION / math.sqrt(dim)) * rng.standard_normal((dim, dim)).astype(np.float32)
            for _ in range(DISTORTIONS)
        ]
        self.dim = dim

    @property
    def hours(self) -> float:
        return sum(len(p) for p in self.pieces) / 1.875 / 3600.0

    def video(self, seed: int, index: int, rows: int) -> np.ndarray:
        """float16 [rows, dim]: one synthetic video (see the module docstring)."""
        x = np.concatenate([piece for _, piece in self._draw(seed, index, rows, features=True)])
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)

    def layout(self, seed: int, index: int, rows: int) -> list[tuple[int, int]]:
        """(source recording, rows taken from its start) for each stretch of video ``index``, in order: where its
        moments come from, so an answer can be told apart from another copy of the same moment. The same random
        draws as :meth:`video` (its noise included), so it holds for feature files made before it existed."""
        return [(p, len(piece)) for p, piece in self._draw(seed, index, rows, features=False)]

    def _draw(self, seed: int, index: int, rows: int, features: bool):
        rng = np.random.default_rng((seed, 11, index))
        filled = 0
        while filled < rows:
            p = int(rng.integers(len(self.pieces)))
            distortion = self.distortions[int(rng.integers(DISTORTIONS))]
            shape = (len(self.pieces[p]), self.dim)
            if features:
                piece = self.pieces[p] @ self.embed
                piece = piece + piece @ distortion
                piece += FRAME_NOISE * rng.standard_normal(shape, dtype=np.float32)
            else:  # only the draws, so the next piece's are the same as in video()
                piece = rng.standard_normal(shape, dtype=np.float32)
            piece = piece[: rows - filled]
            filled += len(piece)
            yield p, piece

    def text_encoder(self, key: str, spec) -> WorldTexts:
        """The encoder ``bench_query`` asks the worlds' questions through: real prompts, the corpus's text tower."""
        from models.clip_encoder import ClipEncoder, EncoderSpec

        return WorldTexts(ClipEncoder.load(EncoderSpec(*self.encoder_spec), device="cpu"), self.embed, key, spec)

    def questions(self, n: int, seed: int) -> tuple[np.ndarray, list[str], list[list[tuple[int, float, float]]]]:
        """``n`` real questions of the worlds (seeded sample) as 512-d prompt-ensemble vectors, their texts, and
        each one's true answers: (piece, start, end in its seconds) wherever the text was asked."""
        from app.answering.vectors import prompt_vectors
        from models.clip_encoder import ClipEncoder, EncoderSpec
        from models.questions import rewrite_question

        piece_of = {uid: i for i, uid in enumerate(self.origins)}
        truth: dict[str, list[tuple[int, float, float]]] = {}
        for world in dict.fromkeys(self.worlds):
            for v in json.loads(world.read_text())["videos"]:
                for q in v["queries"]:
                    place = (piece_of.get(v["video_uid"], -1), q["video_start_sec"], q["video_end_sec"])
                    truth.setdefault(q["query"], []).append(place)
        texts = sorted(truth)
        rng = np.random.default_rng((seed, 13))
        picked = [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
        encoder = ClipEncoder.load(EncoderSpec(*self.encoder_spec), device="cpu")
        vectors = np.stack(prompt_vectors(encoder, [rewrite_question(t) for t in picked])) @ self.embed
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), picked, [truth[t] for t in picked]


class WorldTexts:
    """A text encoder for the benchmark's library: the corpus encoder's text tower, embedded like the frames.

    Every prompt is encoded once and kept, so a question asked again costs what ``ask`` costs without text
    encoding (measured on its own); the app's grammar, prompt ensembles, anchors ("before I opened the fridge")
    and object prompts run as they would for a user."""

    def __init__(self, encoder, embed: np.ndarray, key: str, spec) -> None:
        self._encoder, self._embed = encoder, embed
        self.key, self.dim, self.spec = key, embed.shape[1], spec
        self._known: dict[str, np.ndarray] = {}

    def encode_text(self, texts) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._known]
        if new:
            vectors = np.asarray(self._encoder.encode_text(new), np.float32) @ self._embed
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            self._known.update(zip(new, vectors))
        return np.stack([self._known[t] for t in texts])


class Copies:
    """Whether two answers are the same moment of one source recording, wherever its copies lie: at 1,000 hours
    every moment has hundreds of copies whose scores differ by their noise alone, so "the same videos and times as
    exact search" is a draw among copies, while "the same moments" is what a user would notice."""

    SAME_IOU = 0.5

    def __init__(self, source: WorldSource, seed: int, rows: int, rate_hz: float) -> None:
        self.source, self.seed, self.rows, self.rate_hz = source, seed, rows, rate_hz
        self.truths: list[list[tuple[int, float, float]]] = []
        """Each asked question's true answers (:meth:`WorldSource.questions`), when they are known."""
        self._starts: dict[int, tuple[np.ndarray, list[int]]] = {}

    def origin(self, video_id: str, start: float, end: float) -> tuple[int, float, float]:
        """(source recording, start, end in its seconds) of a window, placed by the stretch holding its centre."""
        index = int(video_id, 16)
        if index not in self._starts:
            layout = self.source.layout(self.seed, index, self.rows)
            firsts = np.cumsum([0] + [n for _, n in layout[:-1]])
            self._starts[index] = (firsts, [p for p, _ in layout])
        firsts, pieces = self._starts[index]
        at = int(np.searchsorted(firsts, (start + end) / 2 * self.rate_hz, side="right")) - 1
        offset = firsts[at] / self.rate_hz
        return pieces[at], start - offset, end - offset

    def same(self, a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
        (pa, sa, ea), (pb, sb, eb) = self.origin(*a), self.origin(*b)
        return pa == pb and iou(sa, ea, sb, eb) >= self.SAME_IOU

    def answers(self, moment: tuple[str, float, float], truth: list[tuple[int, float, float]], above: float) -> bool:
        """Whether a window is a copy of a true answer (temporal IoU strictly above ``above``, as Ego4D counts)."""
        p, s, e = self.origin(*moment)
        return any(p == tp and iou(s, e, ts, te) > above for tp, ts, te in truth)


def iou(s1: float, e1: float, s2: float, e2: float) -> float:
    union = max(e1, e2) - min(s1, s2)
    return max(0.0, min(e1, e2) - max(s1, s2)) / union if union > 0 else 0.0
