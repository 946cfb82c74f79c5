"""Headless Chromium (Debian's ``chromium``) driven by Playwright's sync API against
pytest-django's ``live_server``.

Playwright's sync API runs an event loop in the test's thread, and Django refuses database
access from a thread with a running loop (``SynchronousOnlyOperation``); the tests only use
the database between browser calls, never concurrently with them, so they allow it.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("TASCADE_CHROMIUM", "/usr/bin/chromium"))


# Module scope: sync Playwright keeps an event loop running in this thread while it is open,
# and the tests after these (anyio, asyncio) need the thread free of it.
@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture
def sign_in(page, live_server):
    from tests.dashboard.scenario import dashboard_user

    def sign_in(username: str = "watcher"):
        dashboard_user(username)
        page.goto(f"{live_server.url}/accounts/login/?next=/projects/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", "pw-" + username)
        page.click("button[type=submit]")
        page.wait_for_url("**/projects/")
        return page

    return sign_in


@pytest.fixture
def screenshot(request):
    """``screenshot(page, name)`` writes ``<dir>/<name>.png`` when ``--screenshots <dir>``
    is given (``docs/screenshots`` in the README), and does nothing otherwise."""
    directory = request.config.getoption("--screenshots")

    def take(page, name: str) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=False)

    return take
