"""`python -m app evaluate` and `python -m app naq`: exit codes, output and one-line errors.

The commands run in this process through ``app.cli.main`` (what ``python -m app`` calls), which spares each
test a new interpreter and torch import; one test runs the real ``python -m app`` to cover the entry point."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from nlq_samples import gt_windows, make_nlq, make_predictions, write

ROOT = Path(__file__).resolve().parents[1]


def run_app(*args: str) -> subprocess.CompletedProcess:
    from app.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing the command line
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def run_python_m_app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture()
def files(tmp_path):
    data = make_nlq(seed=21, videos=3, clips_per_video=2)
    ann = write(tmp_path / "nlq_val.json", data)
    pred = write(tmp_path / "pred.json", make_predictions(data, seed=22, fraction=0.75))
    return data, ann, pred


def test_evaluate_json_is_one_object_with_the_metrics(files):
    data, ann, pred = files
    proc = run_python_m_app("evaluate", "--annotations", ann, "--predictions", pred, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in (
        "R1@0.3",
        "R5@0.3",
        "R1@0.5",
        "R5@0.5",
        "mean_R1",
        "mean_R5",
        "num_queries",
        "per_template",
        "mIoU",
        "num_predicted",
    ):
        assert key in out
    assert out["num_queries"] == len(gt_windows(data)) == 48
    assert out["num_predicted"] == len(json.loads(Path(pred).read_text())["results"]) < 48
    assert out["mean_R1"] == pytest.approx((out["R1@0.3"] + out["R1@0.5"]) / 2)
    assert sum(t["num_queries"] for t in out["per_template"].values()) == 48


def test_evaluate_table_is_readable(files):
    _, ann, pred = files
    proc = run_app("evaluate", "--annotations", ann, "--predictions", pred)
    assert proc.returncode == 0, proc.stderr
    assert "IoU > 0.3" in proc.stdout and "R@5" in proc.stdout and "(no template)" in proc.stdout
    assert "48 with ground truth" in proc.stdout


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("{oops", "not valid JSON"),
        (
            '{"results": [{"clip_uid": "c", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[3, 1]]}]}',
            "after it ends",
        ),
        (
            '{"results": [{"clip_uid": "nope", "annotation_uid": "a", "query_idx": 0, "predicted_times": [[1, 3]]}]}',
            "does not contain",
        ),
    ],
)
def test_evaluate_bad_predictions_give_one_line_errors(files, tmp_path, content, fragment):
    _, ann, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    _assert_one_line_error(run_app("evaluate", "--annotations", ann, "--predictions", bad), fragment, str(bad))


def test_evaluate_bad_or_missing_annotations(files, tmp_path):
    _, _, pred = files
    missing = tmp_path / "nope.json"
    _assert_one_line_error(run_app("evaluate", "--annotations", missing, "--predictions", pred), "does not exist")
    bad = write(tmp_path / "ann.json", {"videos": "many"})
    _assert_one_line_error(run_app("evaluate", "--annotations", bad, "--predictions", pred), "videos")


def test_naq_command_writes_a_file_and_reports(tmp_path):
    data = make_nlq(seed=3, videos=2, clips_per_video=2, split="train")
    ann = write(tmp_path / "nlq_train.json", data)
    clip = data["videos"][0]["clips"][0]
    vid, vs = data["videos"][0]["video_uid"], clip["video_start_sec"]
    rows = [
        "video_uid\tnarration_source\tnarration_time\tclip_start\tclip_end\tclip_text",
        f"{vid}\tnarration_pass_1\t{vs + 10}\t{vs + 9.5}\t{vs + 10.5}\t#C C picks a cup",
        f"{vid}\tnarration_pass_1\t{vs + 10}\t{vs - 1}\t{vs + 1}\t#C C crosses the start",
        "unknown\tnarration_pass_1\t5\t4.5\t5.5\t#C C elsewhere",
        f"{vid}\tnarration_pass_1\t{vs + 20}\t{vs + 19.5}\t{vs + 20.5}\t#unsure",
    ]
    narr = tmp_path / "egoclip.csv"
    narr.write_text("\n".join(rows) + "\n")
    out = tmp_path / "naq.json"
    proc = run_app("naq", "--annotations", ann, "--narrations", narr, "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["narrations_read"] == 4 and report["kept"] == 1
    assert report["dropped"]["window crosses a clip boundary"] == 1
    assert report["dropped"]["video not in any training clip"] == 1
    assert report["dropped"]["empty text after normalisation"] == 1
    written = json.loads(out.read_text())
    naq_ann = [
        a
        for v in written["videos"]
        for c in v["clips"]
        for a in c["annotations"]
        if a["annotation_uid"].startswith("naq-")
    ]
    assert len(naq_ann) == 1 and naq_ann[0]["language_queries"][0]["query"] == "picks a cup"
    text = run_app("naq", "--annotations", ann, "--narrations", narr, "--out", out, "--nlq-fraction", "0")
    assert text.returncode == 0 and "kept: 1" in text.stdout and "NLQ queries kept: 0" in text.stdout


def test_naq_command_bad_inputs_give_one_line_errors(tmp_path):
    ann = write(tmp_path / "nlq_train.json", make_nlq(seed=3))
    junk = tmp_path / "junk.tsv"
    junk.write_text("a\tb\n1\t2\n")
    _assert_one_line_error(
        run_app("naq", "--annotations", ann, "--narrations", junk, "--out", tmp_path / "o.json"), "clip_text"
    )
    _assert_one_line_error(
        run_app("naq", "--annotations", ann, "--narrations", junk, "--out", tmp_path / "o.json", "--nlq-fraction", "2"),
        "--nlq-fraction",
    )
    assert not (tmp_path / "o.json").exists()
    narr = tmp_path / "narration.json"
    narr.write_text("{}")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_one_line_error(
        run_app("naq", "--annotations", ann, "--narrations", narr, "--out", blocker / "o.json"), "Cannot write"
    )
