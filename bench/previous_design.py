"""An earlier design of the assistant on today's question sets, scored by today's judge.

    git worktree add --detach ../prev c17ae3e     # stop 9: the model copies one sentence of one passage
    PYTHONPATH=../prev python bench/previous_design.py ask --index DIR --out prev.json [--half odd] QUESTIONS.jsonl...
    python bench/previous_design.py score prev.json

`ask` runs with the old commit's `qa` package first on the path (build its index with
`PYTHONPATH=../prev python -m qa.cli ingest --index DIR ARTICLES` when it cannot read today's;
c17ae3e reads them) and keeps each answer as the old `Answer.to_dict()` gives it, follow-up turns asked after
their conversation. `score` reads those answers into today's `Answer` and prints the `qa eval`
figures of each set and its halves, with the wrong answers counted apart from the refusals. Older
question formats (`expect_all`, `min_sources`) did not exist then; today's judge scores them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def ask(index: str, out: Path, files: list[str], half: str = "all") -> None:
    from qa.assistant import Assistant  # the old commit's, from PYTHONPATH

    bot = Assistant.load(index)
    rows = []
    for path in files:
        lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        for line in lines if half == "all" else lines[0 if half == "even" else 1::2]:
            q = json.loads(line)
            history: list[tuple[str, str]] = []
            for turn in (q.get("conversation") or [q["question"]])[:-1]:
                history.append((turn, bot.ask(turn, history).text))
            answer = bot.ask(q["question"], history)
            rows.append({"file": path, "half": half, "id": q.get("id"), "answer": answer.to_dict()})
            print(len(rows), q["question"][:60], "->", answer.text[:80], flush=True)
    out.write_text(json.dumps(rows), encoding="utf-8")
    print(f"kept in {out}")


def score(recording: Path) -> None:
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]
    from qa import evaluation
    from qa.answer import Answer, Citation, Timings
    from replay import FIGURES  # bench/replay.py: the figures `qa eval` prints

    def known(cls, values: dict) -> dict:
        return {k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(cls)}}

    answers: dict[str, list[Answer]] = {}
    rows = json.loads(recording.read_text(encoding="utf-8"))
    for row in rows:
        a = row["answer"]
        timings = a.get("timings") or {}
        timings.setdefault("first_text", timings.get("first_token", 0.0))  # no evidence stage then
        answers.setdefault(row["file"], []).append(Answer(
            a["question"], a["text"], tuple(Citation(**known(Citation, c)) for c in a["citations"]),
            refused=a["refused"], timings=Timings(**known(Timings, timings))))
    for file, given in answers.items():
        asked = next(row.get("half", "all") for row in rows if row["file"] == file)
        questions = evaluation.half(evaluation.load_questions(file), asked)
        results = [evaluation.score(q, a) for q, a in zip(questions, given, strict=True)]
        halves = evaluation.by_half(results) if asked == "all" else {asked: evaluation.summarize(results)}
        for half, summary in halves.items():
            chosen = results if half == asked else evaluation.half(results, half)
            wrong = sum(1 for r in chosen if r.question.answerable and not r.correct and not r.answer.refused)
            figures = {k: f"{summary[k]['n']}/{summary[k]['of']}" if isinstance(summary[k], dict) else summary[k]
                       for k in FIGURES}
            figures.update(wrong=wrong, first_text_p50=summary["first_visible_s"]["p50"],
                           total_p50=summary["total_s"]["p50"])
            print(f"{Path(file).name} {half}: {json.dumps(figures)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser("ask", help="ask with the old commit's qa package (on PYTHONPATH)")
    a.add_argument("files", nargs="+")
    a.add_argument("--index", required=True)
    a.add_argument("--out", required=True, type=Path)
    a.add_argument("--half", choices=["all", "even", "odd"], default="all")
    s = commands.add_parser("score", help="score kept answers with today's judge")
    s.add_argument("recording", type=Path)
    args = parser.parse_args()
    if args.command == "ask":
        ask(args.index, args.out, args.files, args.half)
    else:
        score(args.recording)


if __name__ == "__main__":
    main()
