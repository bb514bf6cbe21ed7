"""Telegram's pure parts: captured updates through `to_inbound`, reply targets, splitting long replies; and the
state the adapter keeps (platform_state, new senders written from many chats at once)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from telegram import Update
from telegram_server import BOT_USER

from bots.telegram import business_connection_of, reply_target, split_message, to_edit, to_inbound
from bots.text import utf16_len
from storage.forget import L0Forgetting
from storage.items import NewItem
from storage.memory import MemoryStore
from storage.models import Twin
from storage.state import StateStore
from twin.platforms import telegram_owner_chats

FIXTURES = Path(__file__).parent / "fixtures" / "telegram_updates"
BOT = BOT_USER["username"]


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


EXPECTED: dict[str, dict[str, Any] | None] = {
    "private_text": {"message_id": "222222:10", "chat_id": "222222", "sender_id": "222222",
                     "sender_name": "Eve Rossi", "text": "Hi, is Ada free on Friday?", "to_owner": False},
    "private_photo_caption": {"message_id": "222222:11", "text": "Look at this coral!"},
    "private_sticker": None,
    "private_start": {"message_id": "222222:9", "text": "/help"},
    "group_mention": {"message_id": "-1001234567890:501", "chat_id": "-1001234567890", "chat_title": "Reef divers",
                      "text": "what does Ada work on?"},
    "group_mention_after_emoji": {"text": "\U0001F642 hey, is Ada diving this week?"},
    "group_without_mention": None,
    "group_command_to_bot": {"text": "/help@ada_twin_bot"},
    "group_command_to_other_bot": None,
    "group_bare_command": {"text": "/status"},
    "group_reply_to_bot": {"text": "and on weekends?"},
    "group_from_other_bot": None,
    "edited_message": None,  # an edit is not a new message: see EDITS
    "edited_business_message": None,
    "edited_group_message": None,
    "channel_post": None,
    "business_connection": None,
    "business_connection_disabled": None,
    "business_message": {"message_id": "business:222222:55", "chat_id": "business:222222", "sender_id": "222222",
                         "text": "Are you coming to the dive tonight?", "to_owner": True},
    "business_message_from_owner": {"sender_id": "111111", "to_owner": True},
    "business_message_sent_by_bot": None,
}


def test_every_fixture_has_an_expectation() -> None:
    assert {path.stem for path in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_inbound_on_captured_updates(name: str) -> None:
    message = to_inbound(fixture(name), BOT)
    expected = EXPECTED[name]
    if expected is None:
        assert message is None
        return
    assert message is not None and message.platform == "telegram"
    assert {key: getattr(message, key) for key in expected} == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_updates_parsed_by_ptb_translate_like_the_raw_json(name: str) -> None:
    """The adapter sees `Update.to_dict()`, not the wire JSON: both must give the same message."""
    raw = fixture(name)
    assert to_inbound(Update.de_json(raw, None).to_dict(), BOT) == to_inbound(raw, BOT)
    assert business_connection_of(Update.de_json(raw, None).to_dict()) == business_connection_of(raw)


EDITS: dict[str, dict[str, Any]] = {  # what to_edit makes of the edits: the original's ids, the new text
    "edited_message": {"message_id": "222222:10", "chat_id": "222222", "sender_id": "222222",
                       "text": "Hi, is Ada free on Saturday?", "to_owner": False},
    "edited_business_message": {"message_id": "business:222222:55", "chat_id": "business:222222",
                                "text": "Are you coming to the night dive tonight?", "to_owner": True},
    "edited_group_message": {"message_id": "-1001234567890:501", "text": "what does Ada work on these days?"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_edit_on_captured_updates(name: str) -> None:
    """Only edits translate as edits, with the original's ids, the new text and the edited payload as raw."""
    raw = fixture(name)
    edit = to_edit(raw, BOT)
    assert edit == to_edit(Update.de_json(raw, None).to_dict(), BOT)
    if name not in EDITS:
        assert edit is None
        return
    assert edit is not None and edit.message.platform == "telegram"
    assert {key: getattr(edit.message, key) for key in EDITS[name]} == EDITS[name]
    payload = raw["edited_business_message" if edit.message.to_owner else "edited_message"]
    assert edit.message.raw == payload and edit.edited_at == datetime.fromtimestamp(payload["edit_date"], UTC)


def test_edits_by_bots_and_in_channels_are_not_edits_of_anything_stored() -> None:
    by_bot = fixture("edited_message")
    by_bot["edited_message"]["from"] |= {"is_bot": True}
    in_channel = {"edited_channel_post": fixture("channel_post")["channel_post"]}
    sticker = {"edited_message": fixture("private_sticker")["message"]}
    assert to_edit(by_bot, BOT) is None and to_edit(in_channel, BOT) is None and to_edit(sticker, BOT) is None


def test_reply_targets_quote_in_groups_and_answer_business_chats_as_the_owner() -> None:
    group = reply_target(fixture("group_mention"))
    assert (group.chat_id, group.reply_to, group.business_connection_id) == (-1001234567890, 501, None)
    private = reply_target(fixture("private_text"))
    assert (private.chat_id, private.reply_to) == (222222, None)
    business = reply_target(fixture("business_message"))
    assert (business.chat_id, business.business_connection_id) == (222222, "BCabc123")
    assert reply_target(fixture("business_connection")) is None


def test_business_connection_updates_name_the_user_and_the_state() -> None:
    on = business_connection_of(fixture("business_connection"))
    off = business_connection_of(fixture("business_connection_disabled"))
    assert (on.id, on.user_id, on.enabled, on.can_reply) == ("BCabc123", "111111", True, True)
    assert (off.enabled, off.can_reply) == (False, False)
    assert business_connection_of(fixture("private_text")) is None


def test_long_text_is_split_at_paragraphs_within_the_limit() -> None:
    paragraphs = [f"Paragraph {i}: " + " ".join(["coral reef survey notes"] * 20) for i in range(12)]
    text = "\n\n".join(paragraphs)
    parts = split_message(text)
    assert len(parts) == 2 and all(utf16_len(part) <= 4096 for part in parts)
    assert "\n\n".join(parts) == text  # cut exactly at a paragraph break: nothing lost, nothing cut mid-word
    assert parts[1].startswith("Paragraph ")


def test_text_without_breaks_is_cut_at_words_and_emoji_count_twice() -> None:
    words = split_message("word " * 2000)
    assert len(words) == 3 and all(set(part.split(" ")) == {"word"} for part in words)
    emoji = split_message("\U0001F41F" * 3000)  # 6000 UTF-16 units
    assert [utf16_len(part) for part in emoji] == [4096, 1904]
    assert split_message("short") == ["short"] and split_message("  \n ") == []


def test_owner_chats_come_from_owner_ids() -> None:
    assert telegram_owner_chats(["telegram:111111", "slack:U01", "222", "console:@owner"]) == (111111, 222)


def test_platform_state_is_stored_and_replaced(store: MemoryStore, twin: Twin) -> None:
    state = StateStore(store.engine)
    assert state.get(twin.id, "twin", "autoreply") is None
    state.put(twin.id, "twin", "autoreply", {"mode": "on"})
    state.put(twin.id, "twin", "autoreply", {"mode": "off"})
    assert state.get(twin.id, "twin", "autoreply") == {"mode": "off"}
    assert state.get(twin.id, "telegram", "autoreply") is None


def test_a_new_sender_written_from_many_chats_at_once_lands_every_time(store: MemoryStore, twin: Twin) -> None:
    """Chats are handled in parallel: the twin's first replies in two chats create its identity at once."""
    barrier = threading.Barrier(8)

    def add(chat: int) -> list[int]:
        item = NewItem(source="telegram", source_id=f"{chat}:1", chat=str(chat), sender="Ada's twin",
                       sender_id="twin:self", text=f"reply in chat {chat}", occurred_at=datetime.now(UTC))
        barrier.wait()
        return store.add(twin.id, [item], index=False).added_ids

    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(add, range(8)))
    assert all(len(ids) == 1 for ids in added)
    assert store.count(twin.id) == 8


def test_revise_replaces_a_stored_message_and_never_brings_back_a_forgotten_one(store: MemoryStore, twin: Twin) -> None:
    """MemoryStore.revise, which Telegram edits use: in place for a stored item; None for one never stored, and for
    one forgotten even when a re-import put a row with its source id back (the tombstone decides)."""
    def item(source_id: str, text: str) -> NewItem:
        return NewItem(source="telegram", source_id=source_id, chat="222222", sender="Eve", sender_id="222222",
                       text=text, occurred_at=datetime(2025, 1, 1, tzinfo=UTC))

    store.add(twin.id, [item("222222:1", "free on Friday?"), item("222222:2", "a secret to forget")])
    revised = store.revise(twin.id, "telegram", "222222:1", "free on Saturday?", {"edit_date": 1})
    assert revised is not None and revised.text == "free on Saturday?"
    assert store.by_source(twin.id, "telegram", "222222:1").raw == {"edit_date": 1}  # type: ignore[union-attr]
    assert store.count(twin.id) == 2
    assert store.revise(twin.id, "telegram", "222222:3", "never stored", None) is None
    forgetting = L0Forgetting(store)
    forgetting.remove(twin.id, [store.by_source(twin.id, "telegram", "222222:2")])  # type: ignore[list-item]
    assert store.revise(twin.id, "telegram", "222222:2", "a secret to forget, edited", None) is None
    assert store.by_source(twin.id, "telegram", "222222:2") is None and store.count(twin.id) == 1


LONE = "\ud83d"  # half of a surrogate pair, as a JSON "\ud83d" escape decodes: no encoding can write it


def encodable(value: Any) -> bool:
    """Whether a message or payload can be written as UTF-8 (what the database does with it)."""
    json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    return True


def test_lone_surrogates_are_replaced_in_the_text_and_the_raw_payload() -> None:
    update = fixture("private_text")
    update["message"]["text"] = f"broken {LONE} emoji"
    update["message"]["from"]["first_name"] = f"Eve{LONE}"
    message = to_inbound(update, BOT)
    assert message is not None and message.text == "broken \ufffd emoji" and message.sender_name == "Eve\ufffd Rossi"
    assert encodable(message.raw) and message.raw["text"] == "broken \ufffd emoji"
    edit = fixture("edited_message")
    edit["edited_message"]["text"] = f"edited {LONE}"
    revised = to_edit(edit, BOT)
    assert revised is not None and revised.message.text == "edited \ufffd" and encodable(revised.message.raw)
