"""A chat and its words survive what ends sessions and what refuses them (issue 20): the
chat ended in another tab, and ChatCaptain refusing every call for a while. What the
visitor sees, and the sandbox's stored messages for what arrived."""

from __future__ import annotations

from conftest import faults, heal
from playwright.sync_api import expect

from .conftest import WAIT, wait_for
from .test_sending import open_chat, pending, said, stored, type_and_send, unique


def test_a_send_after_the_chat_ended_in_another_tab_keeps_the_words_for_a_new_chat(
    page, fresh_site, sandbox_server
):
    site = fresh_site
    open_chat(page, site)
    # The same visitor ends the chat in another tab (same browser, same cookie).
    other = page.context.new_page()
    other.goto(f"{site.widget}/w/default")
    expect(other.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    other.locator(".ww-end summary").click()
    other.get_by_role("button", name="Yes, end chat").click()
    expect(other.get_by_role("button", name="Start chat")).to_be_visible(timeout=WAIT * 1000)
    other.close()

    words = unique("where is my parcel")
    type_and_send(page, words)
    draft = page.locator("#ww-draft")
    expect(draft).to_have_value(words, timeout=WAIT * 1000)
    expect(page.locator("#ww-status")).to_contain_text("no longer available")
    assert stored(sandbox_server, words) == []  # nothing pretended
    page.get_by_role("button", name="Start a new chat and send").click()
    expect(said(page, words)).to_have_count(1, timeout=WAIT * 1000)
    expect(pending(page, words)).to_have_count(0)
    assert stored(sandbox_server, words) == [words]


def test_a_refusal_blip_keeps_the_chat_and_the_words_arrive_once_after_it(
    page, fresh_site, sandbox_server
):
    site = fresh_site
    open_chat(page, site)
    before = page.locator("[data-message-id]").count()
    faults(site.sandbox, error_status=401,
           operations=["list_messages", "send_message", "create_conversation"])
    words = unique("is anybody there")
    type_and_send(page, words)
    expect(page.locator("#ww-status")).to_contain_text("can't be reached right now",
                                                       timeout=WAIT * 1000)
    # Not acknowledged, not dropped: the words wait (in the box or a refused bubble).
    # The notice may come from a poll while the send is still on its way, so wait for
    # the send's own refusal, not only for a bubble.
    refused = pending(page, words).and_(page.locator('[data-ww-pending="failed"]'))
    wait_for(page, lambda: page.get_by_label("Your message").input_value() == words
             or refused.count() == 1, "the send to be refused and its words to wait")
    assert stored(sandbox_server, words) == []
    heal(site.sandbox)
    # The chat was kept: the same conversation, and the retry stores the words once.
    if refused.count():
        refused.get_by_role("button", name="Retry now").click()
    else:
        page.get_by_label("Your message").press("Enter")
    expect(said(page, words)).to_have_count(1, timeout=WAIT * 1000)
    assert page.locator("[data-message-id]").count() > before
    assert stored(sandbox_server, words) == [words]
    expect(page.get_by_role("button", name="Start chat")).to_have_count(0)


def test_the_visitor_may_leave_an_unreachable_chat_for_a_new_one(page, fresh_site,
                                                                 sandbox_server):
    site = fresh_site
    open_chat(page, site)
    faults(site.sandbox, error_status=404, operations=["list_messages"])
    page.locator("#ww-poller").dispatch_event("ww:visible")
    leave = page.get_by_role("button", name="Start a new chat")
    expect(leave).to_be_visible(timeout=WAIT * 1000)
    words = unique("let us begin again")
    page.get_by_label("Your message").fill(words)
    # No poll may recover the old chat before the visitor's click (it would take the
    # notice, and its button, away): the choice is the visitor's.
    clicked = []
    page.route("**/w/default/messages*",
               lambda route: route.continue_() if clicked else route.abort())
    heal(site.sandbox)
    leave.click()
    clicked.append(True)
    expect(said(page, words)).to_have_count(1, timeout=WAIT * 1000)
    assert stored(sandbox_server, words) == [words]
    expect(page.get_by_label("Your message")).to_have_value("")
