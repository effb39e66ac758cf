"""Importing exports of BooChat (round trip), Open WebUI and ChatGPT; bad files import nothing."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from boochat.models import ChatSession, Message
from tests.boochat.test_chat import new_session
from tests.factories import add_message

pytestmark = pytest.mark.django_db

# Shapes as the two apps write them: Open WebUI's chat-export-<time>.json (a list of its chat rows,
# the conversation a tree under chat.history with the shown branch ending at currentId), and
# ChatGPT's conversations.json (a tree of nodes in `mapping`, the shown branch ending at current_node).
OPEN_WEBUI = [{
    "id": "5b0c", "user_id": "u1", "title": "Tides", "created_at": 1733300000, "updated_at": 1733300100,
    "archived": False, "pinned": False, "share_id": None, "folder_id": None, "meta": {},
    "chat": {
        "id": "", "title": "Tides", "models": ["qwen3-30b"], "params": {}, "tags": [], "timestamp": 1733300000000,
        "history": {"currentId": "a2", "messages": {
            "q1": {"id": "q1", "parentId": None, "childrenIds": ["a1", "a2"], "role": "user",
                   "content": "Why tides?", "timestamp": 1733300000, "models": ["qwen3-30b"]},
            "a1": {"id": "a1", "parentId": "q1", "childrenIds": [], "role": "assistant", "content": "Old branch",
                   "model": "qwen3-30b", "timestamp": 1733300010},
            "a2": {"id": "a2", "parentId": "q1", "childrenIds": [], "role": "assistant", "content": "The Moon.",
                   "model": "qwen3-30b", "modelName": "Qwen3 30B", "timestamp": 1733300020},
        }},
        "messages": [],
    },
}]
CHATGPT = [{
    "title": "Pasta", "create_time": 1733300000.5, "update_time": 1733300100.5, "current_node": "n3",
    "mapping": {
        "root": {"id": "root", "message": None, "parent": None, "children": ["n0"]},
        "n0": {"id": "n0", "parent": "root", "children": ["n1"], "message": {
            "id": "n0", "author": {"role": "system", "name": None, "metadata": {}}, "create_time": None,
            "content": {"content_type": "text", "parts": [""]}, "status": "finished_successfully", "metadata": {}}},
        "n1": {"id": "n1", "parent": "n0", "children": ["n3"], "message": {
            "id": "n1", "author": {"role": "user", "name": None, "metadata": {}}, "create_time": 1733300001.0,
            "content": {"content_type": "text", "parts": ["How long to boil pasta?"]}, "metadata": {}}},
        "n3": {"id": "n3", "parent": "n1", "children": [], "message": {
            "id": "n3", "author": {"role": "assistant", "name": None, "metadata": {}}, "create_time": 1733300002.0,
            "content": {"content_type": "text", "parts": ["About ten minutes."]},
            "metadata": {"model_slug": "gpt-4o"}}},
    },
}]


def upload(client, data, name="export.json"):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.post(reverse("chat_import"), {"file": SimpleUploadedFile(name, raw, "application/json")}, follow=True)


def test_open_webui_export_keeps_every_branch_shows_its_current_one_and_finds_the_model(user_client, hosts):
    page = upload(user_client, OPEN_WEBUI).content.decode()
    assert "Imported 1 chat with 3 messages." in page and "qwen3-30b → sam-desktop/qwen3-30b" in page
    chat = ChatSession.objects.get(title="Tides")
    assert chat.model_id == "sam-desktop/qwen3-30b"
    shown = user_client.get(chat.get_absolute_url())
    assert [(m.role, m.content, m.model_id) for m in shown.context_data["history"]] == [
        ("user", "Why tides?", ""), ("assistant", "The Moon.", "sam-desktop/qwen3-30b")]
    assert '<span class="branch-position">2/2</span>' in shown.content.decode()  # the regenerated answer
    assert chat.messages.get(content="Old branch").parent.content == "Why tides?"


def test_chatgpt_export_with_a_model_no_host_serves(user_client, hosts):
    page = upload(user_client, CHATGPT, "conversations.json").content.decode()
    assert "Imported 1 chat with 2 messages." in page and "Kept as text (no host serves them): gpt-4o." in page
    chat = ChatSession.objects.get(title="Pasta")
    answer = chat.messages.get(role="assistant")
    assert (answer.content, answer.model_id, answer.provider) == ("About ten minutes.", "gpt-4o", "")


def test_chatgpt_branches_are_kept_and_system_nodes_skipped(user_client, hosts):
    import copy

    branched = copy.deepcopy(CHATGPT)
    mapping = branched[0]["mapping"]
    mapping["n1"]["children"] = ["n2", "n3"]
    mapping["n2"] = {**copy.deepcopy(mapping["n3"]), "id": "n2"}
    mapping["n2"]["message"]["content"]["parts"] = ["Twenty minutes."]
    assert "Imported 1 chat with 3 messages." in upload(user_client, branched).content.decode()
    chat = ChatSession.objects.get()
    question = chat.messages.get(role="user")
    assert question.parent is None  # the empty system node before it is skipped
    assert sorted(question.replies.values_list("content", flat=True)) == ["About ten minutes.", "Twenty minutes."]
    shown = user_client.get(chat.get_absolute_url()).context_data["history"]
    assert [m.content for m in shown] == ["How long to boil pasta?", "About ten minutes."]  # current_node


def test_a_boochat_export_round_trips(user_client, hosts):
    original = new_session(user_client, "embedding/qwen3-8b", title="Round trip")
    add_message(session=original, role="user", content="Hello")
    add_message(session=original, role="assistant", content="Hi there", model_id="embedding/qwen3-8b",
                           provider="embedding", wire_model="qwen3-8b")
    exported = user_client.get(reverse("chat_export_all")).content
    original.delete()
    assert "Imported 1 chat with 2 messages." in upload(user_client, exported).content.decode()
    chat = ChatSession.objects.get()
    assert (chat.title, chat.model_id) == ("Round trip", "embedding/qwen3-8b")
    assert [(m.role, m.content, m.model_id) for m in chat.messages.all()] == [
        ("user", "Hello", ""), ("assistant", "Hi there", "embedding/qwen3-8b")]


def test_branches_round_trip(user_client, hosts):
    original = new_session(user_client, "embedding/qwen3-8b", title="Branches")
    question = add_message(session=original, role="user", content="Hello")
    add_message(session=original, role="assistant", content="First answer")
    second = add_message(session=original, role="assistant", content="Second answer", parent=question)
    add_message(session=original, role="assistant", content="Third answer", parent=question)
    original.shown_leaf = second
    original.save()
    exported = user_client.get(reverse("chat_export_all")).content
    original.delete()
    assert "Imported 1 chat with 4 messages." in upload(user_client, exported).content.decode()
    chat = ChatSession.objects.get()
    page = user_client.get(chat.get_absolute_url())
    assert [m.content for m in page.context_data["history"]] == ["Hello", "Second answer"]
    assert '<span class="branch-position">2/3</span>' in page.content.decode()


def test_a_branch_that_follows_nothing_known_is_refused(user_client):
    chat = {"format": "boochat.chat/1", "title": "x", "model": "a/b", "messages": [
        {"id": 1, "parent": None, "role": "user", "content": "hi"},
        {"id": 2, "parent": 7, "role": "assistant", "content": "lost"}]}
    page = upload(user_client, chat).content.decode()
    assert "Nothing was imported" in page and "Message 2 follows a message that is not before it" in page
    assert not ChatSession.objects.exists()


@pytest.mark.parametrize("data, error", [
    (b"{not json", "The file is not JSON."),
    ([{"some": "thing"}], "This is not an export of BooChat, Open WebUI"),
    ([*CHATGPT, {"title": "Empty", "mapping": {}, "current_node": None}], "Chat 2 (Empty) has no messages."),
])
def test_a_bad_file_imports_nothing_and_says_why(user_client, data, error):
    page = upload(user_client, data).content.decode()
    assert "Nothing was imported" in page and error in page
    assert not ChatSession.objects.exists() and not Message.objects.exists()


def test_a_file_past_the_limit_is_refused(user_client, settings):
    settings.BOOCHAT_MAX_IMPORT_BYTES = 1000
    page = upload(user_client, [*CHATGPT] * 20).content.decode()
    assert "The file is larger than 1000 bytes" in page and not ChatSession.objects.exists()


def branched_export(turns):
    """One BooChat chat of `turns` questions and answers, every seventh answer regenerated and every
    eleventh question edited (siblings listed later in the file, as BooChat exports them)."""
    messages, parent, later = [], None, []
    for turn in range(turns):
        question = {"id": f"q{turn}", "parent": parent, "role": "user", "content": f"question {turn}"}
        answer = {"id": f"a{turn}", "parent": f"q{turn}", "role": "assistant", "content": f"answer {turn}"}
        messages += [question, answer]
        if turn % 7 == 3:
            later.append({"id": f"r{turn}", "parent": f"q{turn}", "role": "assistant", "content": f"again {turn}"})
        if turn % 11 == 5:
            later.append({"id": f"e{turn}", "parent": parent, "role": "user", "content": f"edited {turn}"})
        parent = f"a{turn}"
    messages += later
    return {"format": "boochat.chat/1", "title": "Long", "model": "a/b", "messages": messages, "shown": parent}


def test_a_large_import_keeps_every_parent_in_few_statements(user_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    data = branched_export(1500)
    with CaptureQueriesContext(connection) as queries:
        page = upload(user_client, data).content.decode()
    count = len(data["messages"])
    assert f"Imported 1 chat with {count} messages." in page
    chat = ChatSession.objects.get()
    content = {m["id"]: m["content"] for m in data["messages"]}
    expected = {m["content"]: content.get(m["parent"]) for m in data["messages"]}
    saved = dict(chat.messages.values_list("content", "parent__content"))
    assert saved == expected and len(saved) == count
    assert chat.shown_leaf.content == "answer 1499"
    # Neither an UPDATE per row nor one statement listing every row: a few statements per batch of rows.
    assert len(queries) < count / 20, len(queries)
    assert max(q["sql"].count(" WHEN ") for q in queries.captured_queries) <= 500
    # Rows are written once, with their parent: none is written again through a CASE of every row.
    assert sum(q["sql"].count(" WHEN ") for q in queries.captured_queries) < count / 2


def test_a_file_past_the_message_cap_is_refused_before_anything_is_written(user_client, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.BOOCHAT_MAX_IMPORT_MESSAGES = 30
    with CaptureQueriesContext(connection) as queries:
        response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile(
            "export.json", json.dumps([*CHATGPT] * 16).encode(), "application/json")})
    assert response.status_code == 400
    assert ("Nothing was imported: The file holds 32 messages; one import takes at most 30 "
            "(BOOCHAT_MAX_IMPORT_MESSAGES).") in response.content.decode()
    assert not any(q["sql"].startswith(("INSERT", "UPDATE")) and "boochat_" in q["sql"] for q in queries.captured_queries)
    assert not ChatSession.objects.exists() and not Message.objects.exists()
    settings.BOOCHAT_MAX_IMPORT_MESSAGES = 32
    assert "Imported 16 chats with 32 messages." in upload(user_client, [*CHATGPT] * 16).content.decode()


def test_an_import_past_its_time_is_refused_and_keeps_nothing(user_client, settings):
    settings.BOOCHAT_IMPORT_TIMEOUT = 1e-9  # over before the first batch is written
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile(
        "export.json", json.dumps(branched_export(400)).encode(), "application/json")})
    assert response.status_code == 503
    assert "Nothing was imported: The database did not finish the import within" in response.content.decode()
    assert "(BOOCHAT_IMPORT_TIMEOUT)" in response.content.decode()
    assert not ChatSession.objects.exists() and not Message.objects.exists()


def test_chatgpt_messages_in_a_cycle_are_reported_as_left_out(user_client, hosts):
    import copy

    cyclic = copy.deepcopy(CHATGPT)
    mapping = cyclic[0]["mapping"]
    for key, parent, role in (("c1", "c2", "user"), ("c2", "c1", "assistant")):
        mapping[key] = {**copy.deepcopy(mapping["n1"]), "id": key, "parent": parent, "children": []}
        mapping[key]["message"]["author"]["role"] = role
    page = upload(user_client, cyclic).content.decode()
    assert "Imported 1 chat with 2 messages." in page
    assert "2 messages in a cycle were left out" in page
    assert ChatSession.objects.get().messages.count() == 2
    only_cycle = [{"title": "Loop", "current_node": "c1", "mapping": {key: mapping[key] for key in ("c1", "c2")}}]
    page = upload(user_client, only_cycle).content.decode()
    assert "Chat 1 (Loop) has no messages outside a cycle" in page


def test_many_answers_to_one_question_keep_their_parent(user_client):
    messages = [{"id": 0, "parent": None, "role": "user", "content": "Why?"}]
    messages += [{"id": n, "parent": n - 1 if n % 2 == 0 else 0, "role": "assistant" if n % 2 else "user",
                  "content": f"reply {n}"} for n in range(1, 60)]
    page = upload(user_client, {"format": "boochat.chat/1", "title": "Wide", "model": "", "messages": messages})
    assert "Imported 1 chat with 60 messages." in page.content.decode()
    saved = dict(ChatSession.objects.get().messages.values_list("content", "parent__content"))
    content = {m["id"]: m["content"] for m in messages}
    assert saved == {m["content"]: content.get(m["parent"]) for m in messages}


def test_open_webuis_system_prompt_becomes_the_chats(user_client, hosts):
    import copy

    data = copy.deepcopy(OPEN_WEBUI)
    data[0]["chat"]["system"] = "You are an oceanographer.\n  Be brief."
    upload(user_client, data)
    assert ChatSession.objects.get().system_prompt == "You are an oceanographer.\n  Be brief."
    data[0]["chat"].pop("system")
    data[0]["chat"]["params"] = {"system": "From the params."}
    upload(user_client, data)
    assert ChatSession.objects.latest("id").system_prompt == "From the params."


def test_chatgpts_system_message_becomes_the_chats_system_prompt(user_client, hosts):
    import copy

    data = copy.deepcopy(CHATGPT)
    data[0]["mapping"]["n0"]["message"]["content"]["parts"] = ["You are a chef."]
    upload(user_client, data)
    chat = ChatSession.objects.get()
    assert chat.system_prompt == "You are a chef."
    assert [m.role for m in chat.messages.all()] == ["user", "assistant"]  # not a message of its own
    data[0]["mapping"]["n0"]["message"]["content"] = {"content_type": "user_editable_context",
                                                      "user_profile": "I cook for four.", "user_instructions": "Metric units."}
    upload(user_client, data)
    assert ChatSession.objects.latest("id").system_prompt == "I cook for four.\n\nMetric units."


def test_a_boochat_export_keeps_the_system_prompt(user_client, hosts):
    original = new_session(user_client, "embedding/qwen3-8b", title="Prompted")
    ChatSession.objects.filter(pk=original.pk).update(system_prompt="Answer in French.")
    add_message(session=original, role="user", content="Hello")
    exported = user_client.get(reverse("chat_export_all")).content
    original.delete()
    upload(user_client, exported)
    assert ChatSession.objects.get().system_prompt == "Answer in French."


def test_a_model_not_served_here_continues_with_the_model_chosen(user_client, hosts):
    page = user_client.get(reverse("chat_index")).content.decode()
    assert '<select name="continue_with" id="import-model"' in page
    raw = json.dumps(CHATGPT).encode()
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile("c.json", raw, "application/json"),
                                                         "continue_with": "deepseek/deepseek-v4-flash"}, follow=True)
    assert "1 chat continue with deepseek/deepseek-v4-flash." in response.content.decode()
    chat = ChatSession.objects.get()
    assert chat.model_id == "deepseek/deepseek-v4-flash"
    answer = chat.messages.get(role="assistant")
    assert (answer.model_id, answer.provider) == ("gpt-4o", "")  # the answer keeps who wrote it
    html = user_client.get(chat.get_absolute_url()).content.decode()
    assert '<span title="gpt-4o">gpt-4o</span>' in html and "gpt-4o · " not in html  # no dangling "·"


def test_by_default_an_unserved_model_continues_with_the_model_a_new_chat_starts_with(user_client, hosts, settings):
    settings.BOOCHAT_DEFAULT_MODEL = "embedding/qwen3-8b"
    assert user_client.get(reverse("chat_index")).context_data["import_model"] == "embedding/qwen3-8b"
    upload(user_client, CHATGPT)
    assert ChatSession.objects.get().model_id == "embedding/qwen3-8b"
    upload(user_client, OPEN_WEBUI)  # its model is served here: it stays
    assert ChatSession.objects.get(title="Tides").model_id == "sam-desktop/qwen3-30b"


def test_a_model_to_continue_with_that_cannot_be_used_imports_nothing(user_client, hosts):
    raw = json.dumps(CHATGPT).encode()
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile("c.json", raw, "application/json"),
                                                         "continue_with": "nowhere/model"})
    assert response.status_code == 400
    assert "The model to continue with cannot be used" in response.content.decode() and "nowhere" in response.content.decode()
    assert not ChatSession.objects.exists()
