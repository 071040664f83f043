"""Re-run the answer checks on recorded model replies, without the model.

    python bench/replay.py record --index DIR --out FILE.pkl [--half even|odd] [--instructions FILE] [--ask-all] QUESTIONS.jsonl...
    python bench/replay.py score FILE.pkl [--without STEP,STEP]

`record` asks every question as `qa eval` does, and keeps what the model was shown and what it
replied (a pickle: local scratch, load only your own). `score` runs the checks of `qa/grounding.py`
on those replies again, all of them or without the named steps, and prints the `qa eval` figures for
each set (and its even and odd halves, when the whole set was recorded). A change to the checks is
then measured in seconds instead of an hour of generation; a change to the prompt, the retrieval or
the model needs a new recording; `--instructions` records with another system message than
`qa.prompt.SYSTEM` (e.g. `bench/instructions/three-examples.txt`); `--ask-all` puts every question to
the model, also those `grounding.could_answer` refuses before asking (the checks refuse whatever it
replies to them: that step only saves asking).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from qa import grounding, prompt  # noqa: E402
from qa.assistant import Assistant, checked_answer  # noqa: E402
from qa import evaluation  # noqa: E402

FIGURES = ("answer_accuracy", "fact_recall", "citation_precision", "citation_coverage", "multi_source",
           "unanswerable_refused", "answerable_refused")


def record(bot: Assistant, files: Sequence[str | Path], half: str = "all", ask_all: bool = False) -> list[dict]:
    """For each question of `files` (or of one half of each), what the model was shown and replied; with
    `ask_all`, also for the questions `grounding.could_answer` refuses without asking the model."""
    seen: dict = {}

    def keep(question, reply, passages, sentences):
        seen.update(asked=question, reply=reply, passages=passages, sentences=sentences)
        return checked_answer(question, reply, passages, sentences)

    records = []
    checks, bot.check = bot.check, keep
    could_answer = grounding.could_answer
    if ask_all:
        grounding.could_answer = lambda *_: True
    try:
        for path in files:
            for q in evaluation.half(evaluation.load_questions(path), half):
                answer, _ = evaluation.ask(bot, q)
                if seen.get("asked") != answer.question:  # nothing retrieved: the reply kept is an earlier turn's
                    seen.clear()
                records.append({"file": str(path), "half": half, "question": q, "answer": answer, **seen})
    finally:
        bot.check = checks
        grounding.could_answer = could_answer
    return records


def rescore(records: Sequence[dict], without: Sequence[str] = ()) -> dict[str, dict]:
    """The `qa eval` summary of each recorded set, its answers checked again without the steps named."""
    names = {step.__name__ for step in grounding.STEPS}
    unknown = set(without) - names
    if unknown:
        raise SystemExit(f"no check named {', '.join(sorted(unknown))}; the checks are {', '.join(sorted(names))}")
    steps = tuple(step for step in grounding.STEPS if step.__name__ not in without)
    half = records[0]["half"] if records else "all"
    out = {}
    for file in dict.fromkeys(r["file"] for r in records):
        results = []
        for r in (r for r in records if r["file"] == file):
            answer = r["answer"]
            if "reply" in r:  # no reply was recorded when nothing was retrieved
                answer = checked_answer(r["asked"], r["reply"], r["passages"], r["sentences"], steps)
            results.append(evaluation.score(r["question"], answer))
        out[file] = evaluation.by_half(results) if half == "all" else {half: evaluation.summarize(results)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="ask the questions with the model and keep its replies")
    rec.add_argument("files", nargs="+")
    rec.add_argument("--index", required=True, help="the index the questions are asked against")
    rec.add_argument("--out", required=True, type=Path)
    rec.add_argument("--half", choices=["all", "even", "odd"], default="all")
    rec.add_argument("--instructions", type=Path, help="a file holding the system message to record with")
    rec.add_argument("--ask-all", action="store_true",
                     help="ask the model also what grounding.could_answer refuses unasked")
    sc = commands.add_parser("score", help="check the recorded replies again and print the figures")
    sc.add_argument("recording", type=Path)
    sc.add_argument("--without", default="", help="checks to leave out, comma-separated (qa/grounding.py STEPS)")
    args = parser.parse_args()
    if args.command == "record":
        if args.instructions:
            prompt.SYSTEM = args.instructions.read_text(encoding="utf-8").strip()
        bot = Assistant.load(args.index, progress=True)
        bot.warm_up()
        args.out.write_bytes(pickle.dumps(record(bot, args.files, args.half, args.ask_all)))
        print(f"recorded in {args.out}")
        return
    records = pickle.loads(args.recording.read_bytes())
    for file, halves in rescore(records, [s for s in args.without.split(",") if s]).items():
        for half, summary in halves.items():
            figures = {k: f"{summary[k]['n']}/{summary[k]['of']}" if isinstance(summary[k], dict) else summary[k]
                       for k in FIGURES}
            print(f"{Path(file).name} {half}: {json.dumps(figures)}")


if __name__ == "__main__":
    main()
