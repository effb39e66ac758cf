import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from providers.models import ModelOverride, Provider, ProviderSource
from providers.provider_file import (
    ProviderFileError,
    export_document,
    load_provider_file,
    parse_provider_file,
)
from providers.routing import resolve
from providers.sync import LEGACY_SLUG, plan_from_environment, sync_from_environment
from tests.boochat.test_attachments import STREAM, chat, send
from tests.factories import make_provider
from tests.files import png

EXAMPLE = Path(settings.BASE_DIR) / "data" / "llama-providers.example.json"


def entry(**fields):
    return {"slug": "sam-desktop", "kind": "llama_swap", "base_url": "http://sam-desktop:8080", **fields}


def write(tmp_path, document):
    path = tmp_path / "llama-providers.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def snapshot():
    return [
        (p.slug, p.name, p.kind, p.base_url, p.sidecar_url, p.enabled, p.is_default, p.source)
        for p in Provider.objects.order_by("slug")
    ] + [(str(o), o.display_name, o.context_size, o.hidden) for o in ModelOverride.objects.order_by("model")]


def test_the_example_file_is_valid_and_names_the_documented_providers():
    specs = load_provider_file(EXAMPLE)
    assert [s.slug for s in specs] == ["sam-desktop", "embedding", "deepseek"]
    assert [s.slug for s in specs if s.is_default] == ["sam-desktop"]
    deepseek = specs[2]
    assert deepseek.kind == "deepseek" and deepseek.api_key_env == "DEEPSEEK_API_KEY"
    assert specs[0].overrides["box2/gpt-oss-20b"].display_name == "gpt-oss 20B (via box2)"
    assert specs[1].sidecar_url == ""


def test_defaults_fill_optional_fields(tmp_path):
    (spec,) = load_provider_file(write(tmp_path, {"providers": [entry()]}))
    assert spec.name == "sam-desktop"
    assert spec.enabled and not spec.is_default
    assert (spec.connect_timeout, spec.read_timeout, spec.models_timeout) == (3.0, 600.0, 2.0)


@pytest.mark.parametrize(
    "document, entry_name, field, reason",
    [
        ('{"providers": [', None, None, "invalid JSON at line 1"),
        ({"providers": []}, None, "providers", "non-empty list"),
        ([entry()], None, None, "must hold a JSON object"),
        ({"providers": [entry(kind="llamaswap")]}, "providers[0] ('sam-desktop')", "kind", "unknown kind 'llamaswap'"),
        ({"providers": [entry(), entry(name="again")]}, "providers[1] ('sam-desktop')", "slug", "duplicate slug; providers[0]"),
        ({"providers": [entry(slug="sam/desktop")]}, "providers[0] ('sam/desktop')", "slug", "no '/'"),
        ({"providers": [entry(slug="llama-swap")]}, "providers[0] ('llama-swap')", "slug", "reserved"),
        ({"providers": [entry(default=True), entry(slug="b", default=True)]}, "providers[1] ('b')", "default", "two defaults"),
        ({"providers": [entry(base_url="ftp://x")]}, "providers[0] ('sam-desktop')", "base_url", "http:// or https://"),
        ({"providers": [entry(base_url="http://")]}, "providers[0] ('sam-desktop')", "base_url", "no host name"),
        ({"providers": [entry(base_url="http://h:99999")]}, "providers[0] ('sam-desktop')", "base_url", "not a valid URL"),
        ({"providers": [entry(sidecar_url="nope")]}, "providers[0] ('sam-desktop')", "sidecar_url", "http:// or https://"),
        ({"providers": [entry(base_url=None)]}, "providers[0] ('sam-desktop')", "base_url", "is required"),
        ({"providers": [entry(api_key_env="my key")]}, "providers[0] ('sam-desktop')", "api_key_env", "environment variable name"),
        ({"providers": [entry(enabled="yes")]}, "providers[0] ('sam-desktop')", "enabled", "true or false"),
        ({"providers": [entry(default=True, enabled=False)]}, "providers[0] ('sam-desktop')", "default", "must be enabled"),
        ({"providers": [entry(timeouts={"read": -1})]}, "providers[0] ('sam-desktop')", "timeouts.read", "positive number"),
        ({"providers": [entry(timeouts={"reed": 5})]}, "providers[0] ('sam-desktop')", "timeouts.reed", "unknown field"),
        ({"providers": [entry(sidecar="http://x")]}, "providers[0] ('sam-desktop')", "sidecar", "unknown field"),
        ({"providers": [entry(models={"a b": {}})]}, "providers[0] ('sam-desktop')", "models.a b", "character ' '"),
        ({"providers": [entry(models={"m": {"context_size": "big"}})]}, "providers[0] ('sam-desktop')", "models.m.context_size", "positive whole number"),
        ({"providers": [entry(models={"m": {"hiden": True}})]}, "providers[0] ('sam-desktop')", "models.m.hiden", "unknown field"),
        ({"providers": [entry(models={"m": {"purpose": "embed"}})]}, "providers[0] ('sam-desktop')", "models.m.purpose",
         'must be "chat" or "embedding"'),
        ({"providers": ["sam-desktop"]}, "providers[0]", None, "must be an object"),
        ({"version": 2, "providers": [entry()]}, None, "version", "unsupported version 2"),
        ({"provider": [entry()]}, None, None, "unknown top-level field 'provider'"),
    ],
)
def test_a_malformed_file_names_the_path_entry_field_and_reason(tmp_path, document, entry_name, field, reason):
    path = write(tmp_path, document)
    with pytest.raises(ProviderFileError) as excinfo:
        load_provider_file(path)
    error = excinfo.value
    assert error.entry == entry_name
    assert error.field == field
    assert reason in error.reason
    message = str(error)
    assert message.startswith(str(path))
    for part in (entry_name, field, reason):
        assert part is None or part in message


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(ProviderFileError, match="cannot be read"):
        load_provider_file(tmp_path)  # a directory


def test_parse_keeps_the_file_order_and_overrides():
    specs = parse_provider_file("x.json", json.dumps({"providers": [
        entry(slug="b", models={"qwen3-8b": {"context_size": 8192, "hidden": True, "purpose": "embedding"}}),
        entry(slug="a", default=True),
    ]}))
    assert [s.slug for s in specs] == ["b", "a"]
    assert specs[0].overrides["qwen3-8b"].context_size == 8192
    assert specs[0].overrides["qwen3-8b"].hidden
    assert specs[0].overrides["qwen3-8b"].purpose == "embedding"


@pytest.mark.django_db
class TestSync:
    def test_file_present_gives_its_providers(self, tmp_path, settings):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        sync_from_environment()

        rows = {p.slug: p for p in Provider.objects.all()}
        assert set(rows) == {"sam-desktop", "embedding", "deepseek"}
        assert all(p.source == ProviderSource.FILE for p in rows.values())
        assert Provider.objects.default().slug == "sam-desktop"
        assert rows["sam-desktop"].overrides.get(model="qwen3-30b").context_size == 32768
        assert rows["embedding"].models_timeout == 1.5

    def test_a_second_sync_changes_nothing(self, settings):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        sync_from_environment()
        before = snapshot()
        plan = sync_from_environment()
        assert not plan.has_changes
        assert snapshot() == before

    def test_file_missing_falls_back_to_the_legacy_env_provider(self, tmp_path, settings):
        settings.LLAMA_PROVIDERS_PATH = str(tmp_path / "absent.json")
        settings.LLAMA_SWAP_URL = "http://gpu-box:8080/"
        settings.LLAMA_SIDECAR_URL = "http://gpu-box:8090"
        sync_from_environment()

        provider = Provider.objects.get()
        assert (provider.slug, provider.source, provider.is_default) == (LEGACY_SLUG, ProviderSource.ENV, True)
        assert provider.base_url == "http://gpu-box:8080"
        route = resolve("llama-swap/qwen3-8b")
        assert route.chat_completions_url == "http://gpu-box:8090/v1/chat/completions"
        assert resolve("qwen3-8b").api_url("models") == "http://gpu-box:8080/v1/models"

    def test_no_file_and_no_env_configures_nothing(self):
        assert sync_from_environment() is None
        assert not Provider.objects.exists()

    def test_legacy_env_vars_follow_changes_while_they_are_the_source(self, settings):
        settings.LLAMA_SWAP_URL = "http://old-host:8080"
        sync_from_environment()
        settings.LLAMA_SWAP_URL = "http://new-host:8080"
        sync_from_environment()
        assert Provider.objects.get().base_url == "http://new-host:8080"

    def test_legacy_env_vars_are_ignored_once_admin_rows_exist(self, settings):
        make_provider(slug="sam-desktop", is_default=True)
        settings.LLAMA_SWAP_URL = "http://gpu-box:8080"
        assert sync_from_environment() is None
        assert list(Provider.objects.values_list("slug", flat=True)) == ["sam-desktop"]

    def test_a_bad_legacy_url_fails_loudly(self, settings):
        settings.LLAMA_SWAP_URL = "gpu-box:8080"
        with pytest.raises(Exception, match="LLAMA_SWAP_URL"):
            sync_from_environment()
        assert not Provider.objects.exists()

    def test_a_file_takes_over_from_the_legacy_provider(self, settings):
        settings.LLAMA_SWAP_URL = "http://gpu-box:8080"
        sync_from_environment()
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        sync_from_environment()

        legacy = Provider.objects.get(slug=LEGACY_SLUG)
        assert not legacy.enabled and not legacy.is_default
        assert Provider.objects.default().slug == "sam-desktop"
        # Ids the single-host install stored keep working: they now mean the new default.
        assert resolve("llama-swap/qwen3-8b").provider == "sam-desktop"

    def test_an_entry_removed_from_the_file_is_disabled_not_deleted(self, tmp_path, settings):
        path = write(tmp_path, {"providers": [entry(default=True), entry(slug="old-box")]})
        settings.LLAMA_PROVIDERS_PATH = str(path)
        sync_from_environment()
        write(tmp_path, {"providers": [entry(default=True)]})
        sync_from_environment()

        old = Provider.objects.get(slug="old-box")
        assert not old.enabled
        assert old.source == ProviderSource.FILE

    def test_without_a_marked_default_the_first_entry_becomes_default(self, tmp_path, settings):
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(slug="a"), entry(slug="b")]}))
        sync_from_environment()
        assert Provider.objects.default().slug == "a"

    def test_an_admin_default_stays_when_the_file_marks_none(self, tmp_path, settings):
        make_provider(slug="mine", is_default=True)
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(slug="a")]}))
        sync_from_environment()
        assert Provider.objects.default().slug == "mine"

    def test_the_files_default_wins(self, tmp_path, settings):
        make_provider(slug="mine", is_default=True)
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(slug="a", default=True)]}))
        sync_from_environment()
        assert Provider.objects.default().slug == "a"
        assert Provider.objects.get(slug="mine").source == ProviderSource.ADMIN

    def test_file_overrides_replace_the_previous_ones(self, tmp_path, settings):
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(models={"a": {"hidden": True}, "b": {}})]}))
        sync_from_environment()
        write(tmp_path, {"providers": [entry(models={"b": {"display_name": "Bee"}})]})
        sync_from_environment()
        assert [(o.model, o.display_name) for o in ModelOverride.objects.all()] == [("b", "Bee")]

    @pytest.mark.parametrize("document", [
        "{not json",
        {"providers": [entry(default=True), entry(slug="b", default=True)]},
        {"providers": [entry(kind="unknown")]},
        {"providers": [entry(), entry()]},
    ])
    def test_a_bad_file_changes_no_row(self, tmp_path, settings, document):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        sync_from_environment()
        before = snapshot()

        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, document))
        with pytest.raises(ProviderFileError, match=str(tmp_path)):
            sync_from_environment()
        assert snapshot() == before


@pytest.mark.django_db
class TestCommands:
    def test_dry_run_prints_the_diff_and_changes_nothing(self, settings, capsys):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        call_command("sync_providers", "--dry-run")
        out = capsys.readouterr().out
        assert "+ create sam-desktop: llama_swap at http://sam-desktop.lan:8080; default" in out
        assert "+ create deepseek" in out
        assert "Dry run" in out
        assert not Provider.objects.exists()

    def test_dry_run_shows_field_changes(self, tmp_path, settings, capsys):
        path = write(tmp_path, {"providers": [entry(default=True)]})
        call_command("sync_providers", "--path", str(path))
        write(tmp_path, {"providers": [entry(default=True, base_url="http://new:8080")]})
        call_command("sync_providers", "--path", str(path), "--dry-run")
        out = capsys.readouterr().out
        assert "~ update sam-desktop: base_url: 'http://sam-desktop:8080' -> 'http://new:8080'" in out
        assert Provider.objects.get().base_url == "http://sam-desktop:8080"

    def test_sync_applies(self, settings, capsys):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        call_command("sync_providers")
        assert Provider.objects.count() == 3
        assert "Providers synced." in capsys.readouterr().out

    def test_a_bad_file_is_a_command_error_naming_it(self, tmp_path):
        path = write(tmp_path, {"providers": [entry(kind="nope")]})
        with pytest.raises(CommandError, match=rf"{path}: providers\[0\] \('sam-desktop'\): field 'kind'"):
            call_command("sync_providers", "--path", str(path))

    def test_export_round_trips(self, tmp_path, settings):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        sync_from_environment()
        make_provider(slug="lab", name="Lab", sidecar_url="http://lab:9000", read_timeout=120)
        before = snapshot()
        out = tmp_path / "exported.json"
        call_command("export_providers", "--output", str(out))

        exported = load_provider_file(out)
        assert {s.slug for s in exported} == {"sam-desktop", "embedding", "deepseek", "lab"}
        Provider.objects.all().delete()
        call_command("sync_providers", "--path", str(out))
        after = [row[:-1] for row in snapshot()[:4]]
        assert after == [row[:-1] for row in before[:4]]
        assert snapshot()[4:] == before[4:]
        assert Provider.objects.get(slug="lab").read_timeout == 120

    def test_export_with_nothing_to_export_says_so(self):
        with pytest.raises(CommandError, match="no providers"):
            call_command("export_providers")

    def test_plan_from_environment_reads_the_configured_file(self, settings):
        settings.LLAMA_PROVIDERS_PATH = str(EXAMPLE)
        plan = plan_from_environment()
        assert plan.origin == str(EXAMPLE)
        assert [c.action for c in plan.changes] == ["create", "create", "create"]


def test_the_server_syncs_the_provider_file_when_it_starts(app_process):
    app_process(LLAMA_PROVIDERS_PATH=str(EXAMPLE))
    assert sorted(Provider.objects.values_list("slug", flat=True)) == ["deepseek", "embedding", "sam-desktop"]


def test_a_bad_provider_file_stops_the_server_from_starting(app_process, tmp_path):
    path = write(tmp_path, {"providers": [entry(kind="nope")]})
    _, process = app_process(wait=False, LLAMA_PROVIDERS_PATH=str(path))
    assert process.wait(30) != 0
    log = process.log_path.read_text()
    assert "Could not sync the providers" in log and str(path) in log and "field 'kind'" in log
    assert not Provider.objects.exists()


@pytest.mark.django_db
class TestEveryOverrideInTheFile:
    """The file carries every per-model setting admin has; its rows stay read-only in admin."""

    def test_takes_images_and_default_for_new_chats_are_read_synced_and_exported(self, tmp_path, settings):
        models = {"qwen3-vl": {"accepts_images": True, "default_for_new_chats": True},
                  "qwen3-8b": {"accepts_images": False, "calls_tools": True, "purpose": "chat", "display_name": "Qwen3 8B"}}
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(default=True, models=models)]}))
        sync_from_environment()
        rows = {o.model: o for o in ModelOverride.objects.all()}
        assert rows["qwen3-vl"].accepts_images is True and rows["qwen3-vl"].new_chats
        assert rows["qwen3-8b"].accepts_images is False and not rows["qwen3-8b"].new_chats
        assert rows["qwen3-8b"].display_name == "Qwen3 8B" and rows["qwen3-8b"].purpose == "chat"
        assert (rows["qwen3-8b"].calls_tools, rows["qwen3-vl"].calls_tools) == (True, None)

        exported = json.loads(export_document(list(Provider.objects.all())))
        assert exported["providers"][0]["models"] == models
        assert not plan_from_environment().has_changes  # synced: nothing left to do

    def test_left_out_is_as_the_host_says(self, tmp_path, settings):
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(models={"qwen3-vl": {"accepts_images": True}})]}))
        sync_from_environment()
        write(tmp_path, {"providers": [entry(models={"qwen3-vl": {"display_name": "VL"}})]})
        sync_from_environment()
        assert ModelOverride.objects.get().accepts_images is None

    @pytest.mark.parametrize(("models", "field", "reason"), [
        ({"m": {"accepts_images": "yes"}}, "models.m.accepts_images", "must be true, false or null"),
        ({"m": {"calls_tools": 1}}, "models.m.calls_tools", "must be true, false or null"),
        ({"m": {"default_for_new_chats": 1}}, "models.m.default_for_new_chats", "must be true or false"),
        ({"m": {"default_for_new_chats": True}, "n": {"default_for_new_chats": True}}, "models.n.default_for_new_chats",
         "a second default for new chats; sam-desktop/m is already"),
    ])
    def test_bad_values_are_refused_naming_the_field(self, tmp_path, models, field, reason):
        with pytest.raises(ProviderFileError) as caught:
            load_provider_file(write(tmp_path, {"providers": [entry(models=models)]}))
        assert caught.value.field == field and reason in caught.value.reason

    def test_the_files_default_for_new_chats_replaces_one_marked_in_admin(self, tmp_path, settings):
        mine = make_provider(slug="mine")
        ModelOverride.objects.create(provider=mine, model="llama3", new_chats=True)
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(models={"m": {"default_for_new_chats": True}})]}))
        sync_from_environment()
        assert [str(o) for o in ModelOverride.objects.filter(new_chats=True)] == ["sam-desktop/m"]

    def test_admin_shows_the_files_rows_read_only(self, tmp_path, settings, admin_client):
        settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [entry(models={"m": {"accepts_images": True}})]}))
        sync_from_environment()
        override = ModelOverride.objects.get()
        page = admin_client.get(f"/admin/providers/modeloverride/{override.pk}/change/").content.decode()
        assert 'name="accepts_images"' not in page and 'name="new_chats"' not in page
        assert "Takes images" in page and "Default for new chats" in page


@pytest.mark.django_db
def test_a_file_model_that_takes_images_is_sent_an_image(tmp_path, settings, user_client, deepseek_host, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", deepseek_host.api_key)
    settings.LLAMA_PROVIDERS_PATH = str(write(tmp_path, {"providers": [
        {"slug": "deepseek", "kind": "deepseek", "base_url": deepseek_host.url, "api_key_env": "DEEPSEEK_API_KEY",
         "default": True, "models": {"deepseek-v4-flash": {"accepts_images": True}}}]}))
    sync_from_environment()
    session = chat(user_client, "deepseek/deepseek-v4-flash")
    assert send(user_client, session, SimpleUploadedFile("a.png", png()), headers=STREAM).status_code == 200
