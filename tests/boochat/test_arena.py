import json

import pytest
from django.urls import reverse

from boochat.models import ArenaAnswer, ArenaRun, ChatSession, MessageState
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


def start(client, prompt="Which is faster?", **models):
    return client.post(reverse("arena_new"), {"prompt": prompt, **models})


def run_all(client, run):
    for answer in run.answers.all():
        client.post(reverse("arena_answer_stream", args=[answer.pk]))


def chat_bodies(host):
    return [r.json() for r in host.requests_to("/v1/chat/completions")]


def test_the_same_model_on_two_hosts_reaches_two_hosts(user_client, hosts):
    response = start(user_client, model_1="sam-desktop/qwen3-8b", model_2="embedding/qwen3-8b",
                     analyzer="deepseek/deepseek-v4-flash")
    run = ArenaRun.objects.get()
    assert response["Location"] == run.get_absolute_url()
    run_all(user_client, run)

    assert [b["model"] for b in chat_bodies(hosts["sam-desktop"])] == ["qwen3-8b"]
    assert [b["model"] for b in chat_bodies(hosts["embedding"])] == ["qwen3-8b"]
    desktop, small_box = run.answers.all()
    assert (desktop.provider, small_box.provider) == ("sam-desktop", "embedding")
    assert desktop.state == small_box.state == MessageState.COMPLETE
    assert desktop.ttft_ms is not None and desktop.duration_ms >= desktop.ttft_ms
    assert desktop.tokens_per_second and desktop.usage["completion_tokens"] == 18

    response = user_client.post(reverse("arena_analyze", args=[run.pk]), headers={"HX-Request": "true"})
    assert response.template_name == "arena.html#analysis"
    run.refresh_from_db()
    assert (run.analysis_state, run.analysis) == (MessageState.COMPLETE, "Hello!")
    (analyzer_request,) = hosts["deepseek"].chat_bodies()
    assert analyzer_request["model"] == "deepseek-v4-flash"
    report = analyzer_request["messages"][1]["content"]
    assert "sam-desktop/qwen3-8b (host sam-desktop" in report and "embedding/qwen3-8b (host embedding" in report
    assert "Which is faster?" in report


def test_a_down_host_fails_only_its_column(user_client, hosts):
    make_provider(slug="gone", name="Gone box", base_url="http://127.0.0.1:9")
    start(user_client, model_1="gone/qwen3-8b", model_2="sam-desktop/qwen3-30b", model_3="embedding/qwen3-8b")
    run = ArenaRun.objects.get()
    run_all(user_client, run)
    states = {a.model_id: (a.state, a.error) for a in run.answers.all()}
    assert states["gone/qwen3-8b"] == (MessageState.FAILED, "Gone box (gone) is unreachable (connection refused or host down).")
    assert states["sam-desktop/qwen3-30b"][0] == states["embedding/qwen3-8b"][0] == MessageState.COMPLETE
    page = user_client.get(run.get_absolute_url()).content.decode()
    assert "Gone box (gone) is unreachable" in page


def test_the_analyzer_defaults_to_the_task_model(user_client, hosts, settings):
    settings.BOOCHAT_TASK_MODEL = "embedding/nomic-embed"
    start(user_client, model_1="sam-desktop/qwen3-8b", model_2="sam-desktop/qwen3-30b")
    run = ArenaRun.objects.get()
    assert run.analyzer_model_id == "embedding/nomic-embed"
    run_all(user_client, run)
    user_client.post(reverse("arena_analyze", args=[run.pk]))
    assert [b["model"] for b in chat_bodies(hosts["embedding"])] == ["nomic-embed"]


def test_a_failing_analyzer_is_reported_not_raised(user_client, hosts):
    start(user_client, model_1="sam-desktop/qwen3-8b", model_2="embedding/qwen3-8b", analyzer="sam-desktop/not-served")
    run = ArenaRun.objects.get()
    run_all(user_client, run)
    user_client.post(reverse("arena_analyze", args=[run.pk]))
    run.refresh_from_db()
    assert run.analysis_state == MessageState.FAILED and "does not serve 'not-served'" in run.analysis_error


@pytest.mark.parametrize("fields, error", [
    ({"model_1": "sam-desktop/qwen3-8b"}, "Choose 2 to 4 models; 1 chosen."),
    ({"prompt": " ", "model_1": "sam-desktop/a", "model_2": "sam-desktop/b"}, "The prompt is empty."),
    ({"model_1": "sam-desktop/a", "model_2": "nowhere/b"}, "unknown provider"),
])
def test_bad_runs_are_refused_with_the_reason(user_client, hosts, fields, error):
    response = user_client.post(reverse("arena_new"), {"prompt": "p", **fields})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not ArenaRun.objects.exists()


def test_an_answer_streams_once(user_client, hosts):
    start(user_client, model_1="sam-desktop/qwen3-8b", model_2="embedding/qwen3-8b")
    answer = ArenaAnswer.objects.first()
    user_client.post(reverse("arena_answer_stream", args=[answer.pk]))
    again = user_client.post(reverse("arena_answer_stream", args=[answer.pk]), headers={"X-BooChat-Stream": "1"})
    assert again.status_code == 409
    assert len(chat_bodies(hosts["sam-desktop"])) == 1


def test_export_is_the_whole_run_as_json(user_client, hosts):
    start(user_client, model_1="sam-desktop/qwen3-8b", model_2="deepseek/deepseek-v4-flash")
    run = ArenaRun.objects.get()
    run_all(user_client, run)
    response = user_client.get(reverse("arena_export", args=[run.pk]))
    assert response["Content-Disposition"] == f'attachment; filename="arena-{run.pk}.json"'
    data = json.loads(response.content)
    assert data["prompt"] == "Which is faster?"
    assert [a["model"] for a in data["answers"]] == ["sam-desktop/qwen3-8b", "deepseek/deepseek-v4-flash"]
    deepseek = data["answers"][1]
    assert (deepseek["content"], deepseek["reasoning"], deepseek["provider"]) == ("Hello!", "The user greets.", "deepseek")
    assert deepseek["time_to_first_token_ms"] is not None


def test_an_answer_continues_as_a_chat(user_client, hosts):
    start(user_client, model_1="sam-desktop/qwen3-8b", model_2="embedding/qwen3-8b")
    run = ArenaRun.objects.get()
    run_all(user_client, run)
    second = run.answers.get(position=1)
    response = user_client.post(reverse("arena_continue", args=[second.pk]))
    session = ChatSession.objects.get()
    assert response["Location"] == session.get_absolute_url()
    assert session.model_id == "embedding/qwen3-8b"
    user_message, answer = session.messages.all()
    assert (user_message.content, answer.content, answer.provider) == ("Which is faster?", second.content, "embedding")
    shown = user_client.get(session.get_absolute_url()).context_data["history"]
    assert shown == [user_message, answer]  # one branch: the answer follows the prompt


def test_runs_are_private_and_listed(user_client, client, django_user_model, hosts):
    start(user_client, model_1="sam-desktop/qwen3-8b", model_2="embedding/qwen3-8b")
    run = ArenaRun.objects.get()
    assert "Which is faster?" in user_client.get(reverse("arena_index")).content.decode()
    client.force_login(django_user_model.objects.create_user("mallory"))
    assert client.get(run.get_absolute_url()).status_code == 404
    assert client.get(reverse("arena_export", args=[run.pk])).status_code == 404
    assert client.post(reverse("arena_answer_stream", args=[run.answers.first().pk])).status_code == 404
    assert "Which is faster?" not in client.get(reverse("arena_index")).content.decode()
