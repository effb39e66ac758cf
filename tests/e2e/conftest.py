"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server."""

import os
import shutil

import pytest

CHROMIUM = os.environ.get("BOOCHAT_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_playwright():
    # Playwright's sync API runs an event loop in the test thread; the ORM calls made by the tests
    # and by pytest-django's fixtures are still plain synchronous code.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests are marked e2e and run last: Playwright's sync API keeps an event loop running in
    the main thread for the rest of the session, where asyncio.run() and async_to_sync() then fail."""
    browser_tests = [item for item in items if "/e2e/" in str(item.fspath)]
    for item in browser_tests:
        item.add_marker(pytest.mark.e2e)
    items[:] = [item for item in items if item not in browser_tests] + browser_tests


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-packages` (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        # The machine has no network but loopback: keep Chromium from trying to phone home.
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }


def log_in(page, base_url, django_user_model):
    django_user_model.objects.create_user("alice", password="correct horse battery staple")
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    return page


@pytest.fixture
def logged_in_page(page, live_server, django_user_model):
    return log_in(page, live_server.url, django_user_model)


@pytest.fixture
def asgi_page(page, asgi_server, django_user_model):
    """A logged-in page on the ASGI server (streams need it; live_server is WSGI)."""
    return log_in(page, asgi_server.url, django_user_model)
