"""Bounded by construction (issue 23, item 6): every per-request cost that grows with the
upstream's data has a stated bound (README, Security), and these tests hold it.

- bytes read: UPSTREAM_MAX_LIST_BYTES (test_client.py::test_a_list_may_be_larger_than_
  other_answers_but_not_unbounded);
- messages validated and shown: WIDGET_MESSAGES_SHOWN (test_client.py::test_a_window_
  validates_and_returns_only_the_newest_messages);
- characters rendered per message: RENDER_LIMIT (test_rendering.py);
- bytes remembered per worker: the coalescer's LISTINGS_BYTES and STATES_BYTES (here,
  measured with tracemalloc against the memory the process really keeps).
"""

from __future__ import annotations

import gc
import re
import json
import tracemalloc
from pathlib import Path

import pytest
from conftest import message_payload

from webwidget import coalesce
from webwidget.chatcaptain.models import ListWidgetConversationMessagesResponseDto
from webwidget.coalesce import Coalescer, Listing

MiB = 1024 * 1024


def validated(payloads: list[dict]) -> list:
    """The messages as the client hands them over: parsed from JSON, then validated."""
    raw = json.dumps({"messages": payloads})
    return ListWidgetConversationMessagesResponseDto.model_validate(json.loads(raw)).messages


def big_messages(conversation: int, count: int = 200, chars: int = 100_000) -> list[dict]:
    """`count` messages of `chars` characters each, distinct per conversation."""
    return [
        message_payload(f"c{conversation}-m{i}", {"text": f"{conversation}:{i} " + "x" * chars})
        for i in range(count)
    ]


def traced(build):
    """What `build()` returns and the bytes it keeps allocated (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = build()
        gc.collect()
        return value, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


# --- the estimate a cached list is counted at -------------------------------------------

SHAPES = {
    "short texts": lambda i: message_payload(f"m{i}", {"text": "Hello, how can I help?"}),
    "100 KB texts": lambda i: message_payload(f"m{i}", {"text": "x" * 100_000}),
    "an emoji in 10 KB": lambda i: message_payload(f"m{i}", {"text": "\U0001f600" + "x" * 10_000}),
    "accented text": lambda i: message_payload(f"m{i}", {"text": "é" * 5_000}),
    "200 buttons": lambda i: message_payload(f"m{i}", {"buttons": {"buttons": [
        {"label": f"{j}", "type": "postback", "value": f"v{j}"} for j in range(200)]}}),
    "2,000 tags": lambda i: message_payload(f"m{i}", {"text": "x"},
                                            tags=[f"t{j}" for j in range(2000)]),
    "1,000 headers": lambda i: message_payload(f"m{i}", {"voiceHangup": {
        "reason": "r", "headers": {f"k{j}": f"v{j}" for j in range(1000)}}}),
    "a file": lambda i: message_payload(f"m{i}", {"file": {
        "name": "a.pdf", "url": "https://files.example/a.pdf", "type": "document",
        "mimeType": "application/pdf", "size": 1234, "attachmentRef": "ref"}}),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_list_is_counted_at_no_less_than_the_memory_it_keeps(shape):
    payloads = [SHAPES[shape](i) for i in range(50)]
    raw = json.dumps({"messages": payloads})

    def build():
        messages = ListWidgetConversationMessagesResponseDto.model_validate(
            json.loads(raw)).messages
        return Listing.of(messages, 0.0)

    listing, kept = traced(build)
    assert kept <= listing.size <= 2.5 * kept, (kept, listing.size)

    # The same list read back from Redis is counted before it is parsed, as parsed.
    _, stored = Listing.decode(listing.encode(1))
    del listing
    parsed, kept = traced(lambda: (stored, stored.messages, stored.states))
    assert parsed[0].size >= kept, (kept, parsed[0].size)


# --- what a worker remembers ---------------------------------------------------------------


def test_cached_lists_stay_within_their_byte_budget_whatever_the_conversations():
    """8 conversations whose newest 200 messages are 100 KB texts (20 MB each): before,
    the coalescer kept them all (it counted lists, up to 4096: 80 GB of them); now at most
    LISTINGS_BYTES and the list just fetched."""
    coalescer = Coalescer(clock=lambda: 1000.0)
    fetched: list[int] = []
    one_list = Listing.of(validated(big_messages(99)), 0.0).size

    def read(n: int) -> Listing:
        def fetch():
            fetched.append(n)
            return validated(big_messages(n))

        return coalescer.get(f"conversation-{n}", fetch, max_age=60)

    def fill():
        for n in range(8):
            listing = read(n)
            coalescer.remember_states(f"conversation-{n}", listing.version, listing.states)

    _, kept = traced(fill)
    bound = coalesce.LISTINGS_BYTES + one_list + coalesce.STATES_BYTES
    assert kept <= bound, f"kept {kept / MiB:.0f} MiB, bound {bound / MiB:.0f} MiB"
    lists, states = coalescer.remembered_bytes
    assert lists <= coalesce.LISTINGS_BYTES + one_list
    assert states <= coalesce.STATES_BYTES
    # The newest lists still answer without an upstream call; the oldest was let go.
    assert fetched == list(range(8))
    read(7)
    assert fetched == list(range(8))
    read(0)
    assert fetched == [*range(8), 0]


def test_the_list_just_fetched_stays_even_past_the_budget(monkeypatch):
    """A list larger than the whole budget still answers its polls (else every poll of
    that conversation would fetch, or find nothing cached)."""
    monkeypatch.setattr(coalesce, "LISTINGS_BYTES", 1 * MiB)
    coalescer = Coalescer(clock=lambda: 1000.0)
    fetched: list[int] = []

    def read(n: int) -> None:
        coalescer.get(f"c{n}", lambda: fetched.append(n) or validated(big_messages(n, 20)),
                      max_age=60)

    read(1)
    read(2)  # 2 MB: the first goes, this one stays
    read(2)
    assert fetched == [1, 2]
    read(1)
    assert fetched == [1, 2, 1]
    assert coalescer.remembered_bytes[0] == Listing.of(validated(big_messages(1, 20)), 0).size


def test_remembered_states_stay_within_their_byte_budget():
    """Versions' states (ids and digests, kept for deltas) are counted in bytes too: 2,000
    versions of 200 messages with 1 KB ids (400 MB of ids) keep at most STATES_BYTES."""
    coalescer = Coalescer(clock=lambda: 1000.0)
    one_version = coalesce.states_size([["i" * 1024 + "0" * 6, "d" * 12]] * 200)

    def remember_all():
        for v in range(2000):
            states = [[f"{'i' * 1024}{v:03d}{m:03d}", f"{v:06d}digest"] for m in range(200)]
            coalescer.remember_states("conversation", f"version-{v}", states)

    _, kept = traced(remember_all)
    assert kept <= coalesce.STATES_BYTES + one_version, f"kept {kept / MiB:.0f} MiB"
    assert coalescer.remembered_bytes[1] <= coalesce.STATES_BYTES
    assert coalescer.recall_states("conversation", "version-1999") is not None
    assert coalescer.recall_states("conversation", "version-0") is None


# --- the README states them ------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def stated_mib(name: str) -> float:
    """The figure the README's Security table gives for `name`, as `N MiB (`name`)`."""
    security = README.read_text().split("## Security", 1)[1].split("\n## ", 1)[0]
    found = re.findall(rf"([\d.]+) MiB \(`{name}`\)", security)
    assert found, f"the README's Security table states no bound for {name}"
    return float(found[0])


@pytest.mark.parametrize("name", ["LISTINGS_BYTES", "STATES_BYTES"])
def test_the_readme_states_the_bounds_the_code_keeps(name):
    assert stated_mib(name) * MiB == getattr(coalesce, name)
