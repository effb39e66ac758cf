"""web_search over a fake SearXNG's JSON API, called through the MCP protocol."""

from __future__ import annotations

import pytest

from tests.fakes.searxng import FakeSearXNG, result
from tests.tools.websearch_client import call, list_tools, text


@pytest.fixture
def searxng(settings):
    with FakeSearXNG() as fake:
        settings.BOOCHAT_SEARXNG_URL = fake.url
        yield fake


def test_both_tools_are_listed_with_their_arguments():
    tools = {tool.name: tool for tool in list_tools().tools}
    assert tools.keys() == {"web_search", "read_page"}
    assert tools["web_search"].input_schema["required"] == ["query"]
    assert tools["web_search"].input_schema["properties"].keys() == {"query", "count"}
    assert tools["read_page"].input_schema["required"] == ["url"]
    assert tools["read_page"].input_schema["properties"].keys() == {"url", "start"}
    assert "\n    " not in tools["read_page"].description  # the docstring's indentation is not sent
    assert all(tool.annotations.read_only_hint for tool in tools.values())


def test_results_come_back_as_titles_addresses_and_snippets(searxng):
    searxng.results = [
        result(1, title="Kettles  explained", content="How a kettle\nboils water."),
        result(2, url="https://example.net/b", content=""),
        {"title": "no address: skipped"},
        result(3, title="", url="https://example.com/untitled"),
    ]
    answer = call("web_search", query="  how do kettles work ")
    assert not answer.is_error
    assert text(answer) == (
        "Results for 'how do kettles work':\n\n"
        "1. Kettles explained\n   https://example.org/page-1\n   How a kettle boils water.\n\n"
        "2. Result 2\n   https://example.net/b\n\n"
        "3. https://example.com/untitled\n   https://example.com/untitled\n   Snippet of result 3."
    )
    assert searxng.queries() == [{"q": ["how do kettles work"], "format": ["json"]}]


def test_the_count_is_capped(searxng):
    assert text(call("web_search", query="tea", count=2)).count("https://example.org/page-") == 2
    assert text(call("web_search", query="tea", count=50)).count("https://example.org/page-") == 10
    assert text(call("web_search", query="tea")).count("https://example.org/page-") == 5


def test_no_results_says_so(searxng):
    searxng.results = []
    answer = call("web_search", query="zzqx")
    assert (answer.is_error, text(answer)) == (False, "No results for 'zzqx'.")


def test_searxng_refusing_json_is_named(searxng):
    searxng.json_enabled = False
    answer = call("web_search", query="tea")
    assert answer.is_error
    assert f"SearXNG at {searxng.url} refused format=json (HTTP 403)" in text(answer)
    assert "search.formats" in text(answer)


def test_searxng_down_is_named(settings):
    with FakeSearXNG() as fake:
        url = fake.url
    settings.BOOCHAT_SEARXNG_URL = url  # stopped: nothing listens there any more
    answer = call("web_search", query="tea")
    assert answer.is_error and f"SearXNG at {url} cannot be reached" in text(answer)


def test_searxng_answering_something_else_is_named(searxng):
    searxng.json_enabled = True
    searxng.results = "not a list"  # type: ignore[assignment]
    answer = call("web_search", query="tea")
    assert answer.is_error and "did not answer a JSON result list" in text(answer)


def test_without_searxng_web_search_says_it_is_not_set_up(settings):
    settings.BOOCHAT_SEARXNG_URL = ""
    answer = call("web_search", query="tea")
    assert answer.is_error and "BOOCHAT_SEARXNG_URL is empty" in text(answer)


def test_an_empty_query_is_refused(searxng):
    answer = call("web_search", query="   ")
    assert answer.is_error and "The query is empty" in text(answer)
    assert searxng.requests == []


@pytest.mark.django_db
def test_boochat_offers_the_built_in_server_to_every_user(searxng, django_user_model):
    from asgiref.sync import async_to_sync

    from tools import catalog

    user = django_user_model.objects.create_user("alice")
    async_to_sync(catalog.servers_for)(user)
    catalog.wait_for_background_refreshes(30)
    web = {server.slug: server for server in async_to_sync(catalog.servers_for)(user)}["web"]
    assert web.up and [tool.function_name for tool in web.tools] == ["web__web_search", "web__read_page"]
    assert all(tool.needs_approval for tool in web.tools)

    answer = async_to_sync(catalog.call_tool)(user, "web__web_search", {"query": "tea", "count": 1})
    assert (answer.is_error, answer.text) == (
        False, "Results for 'tea':\n\n1. Result 1\n   https://example.org/page-1\n   Snippet of result 1.")
