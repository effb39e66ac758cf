"""boochat.inserts.insert_new saves new rows as bulk_create would, in one transaction."""

import pytest
from django.db import IntegrityError
from django.db.models import Value
from django.db.models.functions import Upper
from django.forms.models import model_to_dict

from boochat.inserts import insert_new
from boochat.models import ChatSession, Message, MessageState


@pytest.fixture
def session(django_user_model):
    return ChatSession.objects.create(user=django_user_model.objects.create_user("alice"), model_id="sam-desktop/qwen3-8b")


def turn(session, question, **answer):
    return [Message(session=session, role=Message.Role.USER, content=question),
            Message(session=session, role=Message.Role.ASSISTANT, state=MessageState.STREAMING, **answer)]


def saved(rows):
    return [{k: v for k, v in model_to_dict(row).items() if k != "id"} for row in rows]


@pytest.mark.django_db
def test_rows_are_saved_as_bulk_create_saves_them(session):
    answer = {"model_id": "sam-desktop/qwen3-8b", "provider": "sam-desktop", "wire_model": "qwen3-8b",
              "usage": {"prompt_tokens": 3}, "tool_calls": [{"id": "call_1"}], "tokens_per_second": 12.5}
    ours, django = turn(session, "hello", **answer), turn(session, "hello", **answer)

    insert_new(ours)
    Message.objects.bulk_create(django)

    assert all(row.pk is not None and not row._state.adding for row in ours)
    assert saved(Message.objects.filter(pk__in=[r.pk for r in ours]).order_by("pk")) == \
        saved(Message.objects.filter(pk__in=[r.pk for r in django]).order_by("pk"))
    assert [r.created_at for r in ours] == list(Message.objects.filter(pk__in=[r.pk for r in ours])
                                                 .order_by("pk").values_list("created_at", flat=True))


@pytest.mark.django_db
def test_equal_values_of_different_types_stay_apart(session):
    # Prepared once per distinct value: JSON true and 1 (equal in Python) must not share one.
    rows = [Message(session=session, role="user", usage=value) for value in (True, 1, 1.0, "1", None)]

    insert_new(rows)

    assert [(type(v), v) for v in Message.objects.order_by("pk").values_list("usage", flat=True)] == \
        [(bool, True), (int, 1), (float, 1.0), (str, "1"), (type(None), None)]


@pytest.mark.django_db
def test_more_rows_than_one_statement_takes_keep_their_order(session):
    rows = [row for i in range(150) for row in turn(session, f"question {i}")]  # SQLite: 999 parameters a statement

    insert_new(rows)

    assert Message.objects.count() == 300
    assert [(r.pk, r.content) for r in rows] == list(Message.objects.order_by("pk").values_list("pk", "content"))


@pytest.mark.django_db
def test_an_expression_is_left_to_django(session):
    rows = turn(session, "plain") + [Message(session=session, role="user", content=Upper(Value("shouted")))]

    insert_new(rows)

    assert list(Message.objects.order_by("pk").values_list("content", flat=True)) == ["plain", "", "SHOUTED"]
    assert all(row.pk is not None for row in rows)


@pytest.mark.django_db(transaction=True)
def test_a_row_that_cannot_be_saved_saves_none(session):
    gone = ChatSession.objects.create(user=session.user, model_id="sam-desktop/qwen3-8b")
    rows = turn(session, "kept?") + turn(gone, "lost")
    ChatSession.objects.filter(pk=gone.pk).delete()

    with pytest.raises(IntegrityError):
        insert_new(rows)

    assert Message.objects.count() == 0
