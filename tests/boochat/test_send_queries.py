"""What a chat send costs the database: the number of queries is pinned, so it cannot grow unseen."""

import pytest

from boochat.models import Message, MessageState
from tests.boochat.test_chat import new_session, send

pytestmark = pytest.mark.django_db

# The session and the user (the login check), the chat, its tree, the question and the answer
# (INSERTs), the latest compaction, the history's files, and the answer's save: the answer and the
# chat's time in one transaction (a savepoint and its release here, in the test's transaction).
SEND_QUERIES = 12


def test_a_send_to_a_chat_without_tools_makes_its_queries_and_no_more(user_client, hosts, django_assert_max_num_queries):
    hosts["sam-desktop"].reply = ["Hello", " there."]
    send(user_client, new_session(user_client, "sam-desktop/qwen3-8b", title="Warm-up"))  # the hosts and access rules, cached
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="Greetings")

    with django_assert_max_num_queries(SEND_QUERIES):
        response = send(user_client, session)

    assert response.status_code == 302
    answer = session.messages.get(role=Message.Role.ASSISTANT)
    assert (answer.state, answer.content) == (MessageState.COMPLETE, "Hello there.")
