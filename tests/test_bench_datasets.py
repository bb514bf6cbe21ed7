"""The retrieval benchmarks' datasets turned into imports and questions (no model, no store: milliseconds)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

from bench.datasets import load


def longmemeval_entry(question_id: str, answer_turn: bool = True) -> dict:
    filler = [{"role": "user", "content": "Any tips for a rainy weekend?"},
              {"role": "assistant", "content": "Board games and soup."}]
    evidence = [{"role": "user", "content": "Hi!", "has_answer": False},
                {"role": "assistant", "content": "Hello, how can I help?", "has_answer": False},
                {"role": "user", "content": "I adopted a greyhound called Pixel.", "has_answer": answer_turn}]
    return {"question_id": question_id, "question_type": "single-session-user", "question": "What is my dog's name?",
            "answer": "Pixel", "question_date": "2023/06/01 (Thu) 10:00",
            "haystack_session_ids": ["sharegpt_x_0", "answer_4be1b6b4_1", "sharegpt_x_0"],
            "haystack_dates": ["2023/05/20 (Sat) 01:05", "2023/05/21 (Sun) 16:30", "2023/05/22 (Mon) 18:06"],
            "haystack_sessions": [filler, evidence, filler], "answer_session_ids": ["answer_4be1b6b4_1"]}


def test_longmemeval_indexes_user_turns_one_chat_per_session_and_counts_gold_turns(tmp_path: Path) -> None:
    path = tmp_path / "lme.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump([longmemeval_entry("q1"), longmemeval_entry("q2", answer_turn=False), longmemeval_entry("q3")],
                  handle)

    dataset = load(path, limit=2)

    assert dataset.source == "longmemeval" and len(dataset.questions) == 1  # q2 has no gold turn, q3 is past 2
    [question] = dataset.questions
    assert question.chats == ("q1/0", "q1/1", "q1/2")  # the repeated filler session is two chats
    assert question.evidence == frozenset({"answer_4be1b6b4_1_3"})  # 1-based, assistant turns counted
    assert [(m["chat"], m["id"]) for m in dataset.messages] == [
        ("q1/0", "sharegpt_x_0_1"), ("q1/1", "answer_4be1b6b4_1_1"), ("q1/1", "answer_4be1b6b4_1_3"),
        ("q1/2", "sharegpt_x_0_1")]
    assert dataset.messages[2]["timestamp"] == "2023-05-21T16:30:15+00:00"
    assert question.asked_at == datetime(2023, 6, 1, 10, 0, tzinfo=UTC)  # "5 days ago" is read from here
    assert dataset.note == "1 questions without a gold user turn skipped"


def test_locomo_is_detected_and_keeps_categories_one_to_four(tmp_path: Path) -> None:
    sample = {"sample_id": "conv-1", "conversation": {
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [{"speaker": "Caroline", "dia_id": "D1:1", "text": "I went to a support group."},
                      {"speaker": "Mel", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a sunset"}]},
        "qa": [{"question": "What did Caroline go to?", "answer": "a support group", "evidence": ["D1:1"],
                "category": 4},
               {"question": "Adversarial?", "evidence": ["D1:2"], "category": 5}]}
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([sample]), encoding="utf-8")

    dataset = load(path)

    assert dataset.source == "locomo"
    assert [(q.chats, q.category, q.evidence) for q in dataset.questions] == [
        (("conv-1",), "single-hop", frozenset({"D1:1"}))]
    # no time is given for LoCoMo's questions: they are asked a day after the conversation's last message
    assert dataset.questions[0].asked_at == datetime(2023, 5, 9, 13, 56, 5, tzinfo=UTC)
    assert dataset.messages[1]["text"] == "Nice! [shared a photo: a sunset]"


def test_the_synthetic_owners_indirect_questions_never_name_their_topic_nor_give_the_answer() -> None:
    import json

    from bench.training import DATA
    from storage.models import Fact, Visibility
    from training.cards import card_for, names_topic

    data = json.loads(DATA.read_text(encoding="utf-8"))
    for at, row in enumerate(data["facts"]):
        card = card_for(Fact(id=at, twin_id=1, text=row["text"], visibility=Visibility(row["visibility"])))
        assert card is not None and len(row["indirect"]) >= 2, row
        for question in row["indirect"]:  # else the "indirect" figure counts topic questions
            assert not names_topic(question, card, data["owner"]), question
            assert card.key.casefold() not in question.casefold(), question
