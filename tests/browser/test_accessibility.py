"""axe-core (bundled by axe-playwright-python) finds no WCAG 2.1 AA violation on widget or demo."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from .conftest import MESSAGE, WAIT, wait_for

WCAG21AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def violations(page) -> list[str]:
    """Each violated rule with the markup that breaks it."""
    results = Axe().run(page, options=WCAG21AA)
    return [
        f"{v['id']}: {v['help']} -> {[n['html'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_open_widget_with_a_conversation(browser, fresh_site, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    assert violations(page) == []
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)
    page.get_by_label("Your message").fill("help")
    page.keyboard.press("Enter")
    reply = page.locator(f".ww-msg--visitor{MESSAGE} ~ .ww-msg--bot{MESSAGE}")
    try:
        wait_for(page, lambda: reply.count(), "the bot's reply", fresh_site)
    except AssertionError:
        print(page.content())
        raise
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")
    assert violations(page) == []
    context.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo host page in demo mode, on its bundled sandbox."""
    from webwidget import create_app
    from webwidget.sandbox.server import BackgroundServer
    from webwidget.settings import Settings

    instance = tmp_path_factory.mktemp("demo")
    server = BackgroundServer(
        create_app(settings=Settings(_env_file=None), instance_path=str(instance))
    )
    yield server.start().url
    server.stop()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_demo_page_closed_and_open(browser, demo, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(demo + "/")
    launcher = page.get_by_role("button", name="Open chat")
    expect(launcher).to_be_visible()
    assert violations(page) == []
    launcher.click()
    expect(page.frame_locator("iframe").get_by_role("button", name="Start chat")).to_be_visible()
    assert violations(page) == []
    context.close()
