"""Tool servers in admin and on /models/: the secret never shown, health and tools, a down server."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Group

from tests.factories import make_tool_server
from tests.fakes.mcp_server import FakeMcpServer
from tests.fakes.server import FakeHost, Response
from tools import catalog
from tools.models import ToolServer

pytestmark = pytest.mark.django_db

SECRET = "sk-tool-7f3a9c1e55"


class Unanswering(FakeHost):
    """Accepts the connection, reads the request, never answers."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = True

    async def handle(self, request):
        return Response(404)


@pytest.fixture(scope="module")
def mcp_server():
    with FakeMcpServer() as server:
        yield server


def poll(condition, what):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"waited 30 s for {what}"
        time.sleep(0.02)


def test_admin_takes_a_bearer_secret_and_never_shows_it_back(admin_client, mcp_server):
    page = admin_client.get("/admin/tools/toolserver/add/")
    assert page.status_code == 200 and 'name="new_bearer_secret"' in page.content.decode()
    response = admin_client.post("/admin/tools/toolserver/add/", {
        "slug": "lab", "name": "Lab", "url": mcp_server.url, "transport": "streamable_http", "headers": "{}",
        "new_bearer_secret": SECRET, "api_key_env": "", "approval": "ask", "enabled": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    server = ToolServer.objects.get(slug="lab")
    assert server.bearer_secret == SECRET

    change = admin_client.get(f"/admin/tools/toolserver/{server.pk}/change/").content.decode()
    listing = admin_client.get("/admin/tools/toolserver/").content.decode()
    assert SECRET not in change and SECRET not in listing
    assert "stored (not shown)" in change

    # Saving the form again without typing a secret keeps it; the clear box removes it.
    fields = {"slug": "lab", "name": "Lab 2", "url": mcp_server.url, "transport": "streamable_http", "headers": "{}",
              "new_bearer_secret": "", "api_key_env": "", "approval": "ask", "enabled": "on"}
    assert admin_client.post(f"/admin/tools/toolserver/{server.pk}/change/", fields).status_code == 302
    server.refresh_from_db()
    assert (server.name, server.bearer_secret) == ("Lab 2", SECRET)
    admin_client.post(f"/admin/tools/toolserver/{server.pk}/change/", {**fields, "clear_bearer_secret": "on"})
    server.refresh_from_db()
    assert server.bearer_secret == ""


def test_admin_refuses_a_bad_slug_and_bad_headers(admin_client):
    response = admin_client.post("/admin/tools/toolserver/add/", {
        "slug": "web", "name": "Mine", "url": "http://127.0.0.1:1/mcp", "transport": "sse",
        "headers": '{"Bad Name": "x"}', "approval": "ask",
    })
    body = response.content.decode()
    assert response.status_code == 200 and "built-in web search" in body and "is not a header name" in body
    assert not ToolServer.objects.exists()


def test_a_row_from_the_file_is_read_only_in_admin(admin_client):
    server = make_tool_server("http://127.0.0.1:1/mcp", slug="filed", from_file=True)
    page = admin_client.get(f"/admin/tools/toolserver/{server.pk}/change/").content.decode()
    assert "comes from the provider file" in page
    assert 'name="url"' not in page and 'name="new_bearer_secret"' not in page and 'name="enabled"' not in page
    admin_client.post(f"/admin/tools/toolserver/{server.pk}/change/", {"url": "http://127.0.0.1:2/mcp", "name": "x"})
    server.refresh_from_db()
    assert server.url == "http://127.0.0.1:1/mcp"
    assert admin_client.post(f"/admin/tools/toolserver/{server.pk}/delete/", {"post": "yes"}).status_code == 403


def test_admin_checks_servers_and_shows_health_and_tools(admin_client, mcp_server, settings):
    settings.BOOCHAT_TOOL_TIMEOUT = 2
    lab = make_tool_server(mcp_server.url, slug="lab")
    with Unanswering() as host:
        stuck = make_tool_server(f"{host.url}/mcp", slug="stuck")
        response = admin_client.post("/admin/tools/toolserver/", {
            "action": "check_now", "_selected_action": [lab.pk, stuck.pk]}, follow=True)
    body = response.content.decode()
    assert "Lab: up, 5 tool(s): echo, add, slow, fail, huge" in body
    assert "Stuck: down: no answer within 2 s" in body
    listing = admin_client.get("/admin/tools/toolserver/").content.decode()
    assert "down: no answer within 2 s" in listing and "echo, add, slow, fail, huge" in listing


def test_models_page_shows_the_servers_a_user_may_use_with_their_tools(user_client, mcp_server, django_user_model):
    lab_group = Group.objects.create(name="lab")
    make_tool_server(mcp_server.url, slug="open", name="Open tools")
    make_tool_server(mcp_server.url, slug="closed", name="Closed tools", groups=[lab_group], approval="never")
    user_client.get("/models/")
    catalog.wait_for_background_refreshes(30)
    page = user_client.get("/models/").content.decode()
    assert "Open tools" in page and "<code>add</code> · Add two integers." in page
    assert "Closed tools" not in page

    django_user_model.objects.get(username="alice").groups.add(lab_group)
    user_client.get("/models/")
    catalog.wait_for_background_refreshes(30)
    page = user_client.get("/models/").content.decode()
    assert "Closed tools" in page and "calls run without asking" in page


@pytest.mark.django_db(transaction=True)  # the page is asked from another thread, which must see the rows
def test_models_page_answers_while_a_server_never_answers_and_shows_it_down(user_client, mcp_server, settings):
    settings.BOOCHAT_TOOL_TIMEOUT = 600  # a page that waited on the server would wait ten minutes
    make_tool_server(mcp_server.url, slug="lab", name="Lab tools")
    with Unanswering() as host:
        make_tool_server(f"{host.url}/mcp", slug="stuck", name="Stuck tools")
        pages = []
        first = threading.Thread(target=lambda: pages.append(user_client.get("/models/")))
        first.start()
        first.join(60)
        assert not first.is_alive(), "the page waited on a server that never answers"
        poll(lambda: host.requests, "the list request to reach the server")
        poll(lambda: catalog.cached_servers([catalog.connection_for(ToolServer.objects.get(slug="lab"))])[0].up,
             "the other server's list")
        page = user_client.get("/models/")
        assert not host.disconnects and len(host.requests) == 1  # still waiting for its answer
    body = page.content.decode()
    assert page.status_code == 200
    assert "Stuck tools" in body and "checking" in body and "Its tools are being listed." in body
    assert "Lab tools" in body and "<code>echo</code>" in body

    settings.BOOCHAT_TOOL_TIMEOUT = 1
    with Unanswering() as host:
        ToolServer.objects.filter(slug="stuck").update(url=f"{host.url}/mcp")
        catalog.refresh_now([catalog.connection_for(ToolServer.objects.get(slug="stuck"))])
        body = user_client.get("/models/").content.decode()
    assert '<span class="state state-down">down</span>' in body and "Last error: no answer within 1 s" in body


def test_admin_and_models_page_show_the_built_in_web_search(admin_client, settings):
    from tests.fakes.searxng import FakeSearXNG

    with FakeSearXNG() as searxng:
        settings.BOOCHAT_SEARXNG_URL = searxng.url
        admin_client.get("/admin/tools/toolserver/")
        catalog.wait_for_background_refreshes(30)
        listing = admin_client.get("/admin/tools/toolserver/").content.decode()
        page = admin_client.get("/models/").content.decode()
    assert "Built in: Web search (web), for every user, each call asked: up; tools: web_search, read_page." in listing
    assert 'id="tool-server-web"' in page and "<code>read_page</code>" in page
