"""What the loader shows on a page where the chat's frame is not open: how many bot
messages came after the newest one the visitor saw (issue 21, "the unread signal across
pages"). The loader remembers that message's id in the host page's storage; the count is
read from the conversation's cached list, so a page view costs no upstream call."""

from __future__ import annotations

from collections.abc import Sequence

from .chatcaptain.models import MessageDto

# A loader asks again this often while its page is open and its frame is not, and sooner
# while a reply is due; a cached list older than REFRESH_AFTER is refreshed in the
# background (one upstream call for every page and tab of the conversation, so at most
# one per REFRESH_AFTER seconds), and the loader asks again soon to see what it brought.
ASK_EVERY_SECONDS = 15
ASK_SOON_SECONDS = 2
REFRESH_AFTER_SECONDS = 5.0
# The badge shows "9+" beyond nine; the count need not be exact beyond that.
MOST = 99


def unread_after(messages: Sequence[MessageDto], seen: str) -> int:
    """Bot messages after the message `seen` (newest first counts back to it); all of
    them in the list when `seen` is not in it (older than the list's window), none when
    `seen` is empty (the visitor never had the chat open where the loader could note it)."""
    if not seen:
        return 0
    count = 0
    for message in reversed(messages):
        if message.id == seen:
            break
        if message.outgoing:
            count += 1
            if count >= MOST:
                break
    return count


def ask_again_in(messages: Sequence[MessageDto], age: float) -> int:
    """When the loader asks next: soon while a reply is due (the visitor's message is the
    newest: they sent it and went on to this page) or while the list older than
    REFRESH_AFTER_SECONDS that this answer came from is being refreshed; else at leisure."""
    reply_due = bool(messages) and not messages[-1].outgoing
    if reply_due or age > REFRESH_AFTER_SECONDS:
        return ASK_SOON_SECONDS
    return ASK_EVERY_SECONDS
