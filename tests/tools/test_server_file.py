"""The provider file's tool_servers: validation that names path, entry and field, and the sync."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import Provider
from providers.provider_file import ProviderFileError, parse_provider_file
from providers.sync import sync_from_environment as sync_providers
from tests.factories import make_tool_server
from tools.models import ToolServer
from tools.server_file import parse_tool_servers, sync_from_environment

PROVIDERS = [{"slug": "sam-desktop", "kind": "llama_swap", "base_url": "http://127.0.0.1:9"}]
SEARCH = {"slug": "search", "name": "Web search", "url": "http://127.0.0.1:8808/mcp", "transport": "streamable_http"}


def document(*tool_servers, **extra):
    return json.dumps({"version": 1, "providers": PROVIDERS, "tool_servers": list(tool_servers), **extra})


def error_of(*tool_servers):
    with pytest.raises(ProviderFileError) as caught:
        parse_tool_servers("/etc/boochat/providers.json", document(*tool_servers))
    return str(caught.value)


def test_the_issue_example_reads_with_its_defaults():
    (spec,) = parse_tool_servers("p.json", document(SEARCH))
    assert (spec.slug, spec.name, spec.url, spec.transport, spec.approval, spec.groups, spec.enabled) == (
        "search", "Web search", "http://127.0.0.1:8808/mcp", "streamable_http", "ask", (), True)
    (old,) = parse_tool_servers("p.json", document({**SEARCH, "transport": "sse", "approval": "never",
                                                     "api_key_env": "SEARCH_TOKEN", "groups": ["lab", "lab"]}))
    assert (old.transport, old.approval, old.api_key_env, old.groups) == ("sse", "never", "SEARCH_TOKEN", ("lab",))


def test_the_providers_part_of_the_file_still_reads_beside_tool_servers():
    assert [spec.slug for spec in parse_provider_file("p.json", document(SEARCH))] == ["sam-desktop"]


@pytest.mark.parametrize(("entry", "field", "reason"), [
    ({**SEARCH, "transport": "stdio"}, "transport", 'must be one of "streamable_http", "sse", not "stdio"'),
    ({**SEARCH, "approval": "sometimes"}, "approval", 'must be one of "ask", "never"'),
    ({**SEARCH, "url": "ftp://x/mcp"}, "url", "must start with http:// or https://"),
    ({**SEARCH, "url": "http://user:pw@x/mcp"}, "url", "must not carry credentials"),
    ({k: v for k, v in SEARCH.items() if k != "url"}, "url", "is required"),
    ({**SEARCH, "slug": "Web Search"}, "slug", "is not a tool server slug"),
    ({**SEARCH, "slug": "a__b"}, "slug", "is not a tool server slug"),
    ({**SEARCH, "slug": "web"}, "slug", "built-in web search"),
    ({**SEARCH, "groups": "lab"}, "groups", "must be a list of group names"),
    ({**SEARCH, "headers": {"Bad Name": "x"}}, "headers", "is not a header name"),
    ({**SEARCH, "api_key_env": "my-token"}, "api_key_env", "is not an environment variable name"),
    ({**SEARCH, "enabled": "yes"}, "enabled", "must be true or false"),
    ({**SEARCH, "secret": "hunter2"}, "secret", "unknown field"),
])
def test_a_bad_entry_names_path_entry_and_field(entry, field, reason):
    message = error_of({"slug": "ok", "url": "http://127.0.0.1:1/mcp"}, entry)
    assert message.startswith(f"/etc/boochat/providers.json: tool_servers[1] ('{entry['slug']}'): field {field!r}: ")
    assert reason in message


def test_duplicates_and_a_non_list_are_refused():
    assert "tool_servers[1] ('search'): field 'slug': duplicate slug; tool_servers[0] uses it already" in error_of(
        SEARCH, SEARCH)
    with pytest.raises(ProviderFileError, match="field 'tool_servers': must be a list of tool servers"):
        parse_tool_servers("p.json", json.dumps({"version": 1, "providers": PROVIDERS, "tool_servers": {}}))
    assert "tool_servers[0]: must be an object" in error_of("search")


@pytest.mark.django_db
def test_the_sync_creates_updates_and_disables_file_rows(tmp_path, settings):
    path = tmp_path / "providers.json"
    settings.LLAMA_PROVIDERS_PATH = str(path)
    admin_row = make_tool_server("http://127.0.0.1:7/mcp", slug="admin-made")
    path.write_text(document(SEARCH, {"slug": "lab", "url": "http://127.0.0.1:8809/sse", "transport": "sse",
                                      "groups": ["lab-members"], "approval": "never"}))
    plan = sync_from_environment()
    assert "+ create search: streamable_http at http://127.0.0.1:8808/mcp" in plan.describe()
    lab = ToolServer.objects.get(slug="lab")
    assert lab.from_file and lab.transport == "sse" and lab.approval == "never"
    assert [g.name for g in lab.groups.all()] == ["lab-members"]
    assert Group.objects.filter(name="lab-members").exists()

    path.write_text(document({**SEARCH, "name": "Search"}))
    plan = sync_from_environment()
    assert "~ update search: name: 'Web search' -> 'Search'" in plan.describe()
    assert "- disable lab: no longer in" in plan.describe()
    assert not ToolServer.objects.get(slug="lab").enabled  # kept, never deleted
    assert ToolServer.objects.get(slug="search").name == "Search"
    assert ToolServer.objects.get(pk=admin_row.pk).enabled and not ToolServer.objects.get(pk=admin_row.pk).from_file
    assert not sync_from_environment().has_changes


@pytest.mark.django_db
def test_a_bad_file_changes_nothing_and_the_command_names_the_problem(tmp_path, settings):
    path = tmp_path / "providers.json"
    settings.LLAMA_PROVIDERS_PATH = str(path)
    path.write_text(document(SEARCH))
    sync_from_environment()
    path.write_text(document({**SEARCH, "name": "Renamed"}, {**SEARCH, "slug": "two", "transport": "carrier pigeon"}))
    with pytest.raises(CommandError, match=r"tool_servers\[1\] \('two'\): field 'transport'"):
        call_command("sync_tool_servers")
    assert ToolServer.objects.get(slug="search").name == "Web search"
    assert not ToolServer.objects.filter(slug="two").exists()


@pytest.mark.django_db
def test_the_command_dry_run_changes_nothing(tmp_path, capsys):
    path = tmp_path / "providers.json"
    path.write_text(document(SEARCH))
    call_command("sync_tool_servers", "--path", str(path), "--dry-run")
    out = capsys.readouterr().out
    assert "+ create search" in out and "Dry run: nothing was changed." in out
    assert not ToolServer.objects.exists()
    call_command("sync_tool_servers", "--path", str(path))
    assert ToolServer.objects.get(slug="search").from_file


@pytest.mark.django_db
def test_the_provider_sync_reads_a_file_with_tool_servers(tmp_path, settings):
    path = tmp_path / "providers.json"
    settings.LLAMA_PROVIDERS_PATH = str(path)
    path.write_text(document(SEARCH))
    sync_providers()
    assert list(Provider.objects.values_list("slug", flat=True)) == ["sam-desktop"]


def test_the_example_file_shows_a_tool_server():
    from pathlib import Path

    from tools.server_file import load_tool_servers

    path = Path(__file__).resolve().parents[2] / "data" / "llama-providers.example.json"
    (files,) = load_tool_servers(path)
    assert (files.slug, files.transport, files.api_key_env, files.groups) == ("files", "streamable_http",
                                                                              "FILES_MCP_TOKEN", ("lab",))
