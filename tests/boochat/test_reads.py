"""boochat.reads.InList reads what queryset.filter(field__in=values) reads, with SQL compiled once."""

import math

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boochat.models import ChatSession, Compaction, Message, MessageState
from boochat.reads import InList


@pytest.fixture
def sessions(django_user_model):
    user = django_user_model.objects.create_user("alice")
    made = [ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title=f"chat {i}") for i in range(3)]
    for session in made:
        Message.objects.create(session=session, role="user", content=f"hello {session.pk}")
        Message.objects.create(session=session, role="assistant", content="hi", tool_calls=[{"id": "call_1", "n": 1.5}],
                               reasoning="thought")
        Message.objects.create(session=session, role="assistant", state=MessageState.STREAMING)
    first = made[0].messages.first()
    Compaction.objects.create(session=made[0], through_message=first, summary="earlier", model_id="sam-desktop/qwen3-8b")
    return made


def same(ours, django):
    """Field by field, with the same types, annotations and deferred fields."""
    assert [type(row) for row in ours] == [type(row) for row in django]
    assert [row.get_deferred_fields() for row in ours] == [row.get_deferred_fields() for row in django]
    for a, b in zip(ours, django, strict=True):
        loaded = [f.attname for f in type(a)._meta.concrete_fields if f.attname not in a.get_deferred_fields()]
        assert [(type(getattr(a, n)), getattr(a, n)) for n in loaded] == [(type(getattr(b, n)), getattr(b, n)) for n in loaded]


@pytest.mark.django_db
def test_annotated_rows_are_the_orms_with_their_annotations_converted(sessions):
    queryset = ChatSession.objects.with_compacted()
    pks = [s.pk for s in sessions]

    ours, django = InList(queryset, "pk")(pks), list(queryset.filter(pk__in=pks))

    same(ours, django)
    assert [s.compacted for s in ours] == [s.compacted for s in django] == [False, False, True]  # newest first
    assert all(type(s.compacted) is bool for s in ours)
    assert ours[0].created_at.tzinfo is not None


@pytest.mark.django_db
def test_deferred_fields_json_and_order_are_the_orms(sessions):
    queryset = (Message.objects.exclude(state__in=(MessageState.FAILED, MessageState.STREAMING))
                .only("id", "session_id", "role", "content", "tool_calls"))
    ids = [s.pk for s in sessions]

    ours, django = InList(queryset, "session_id")(ids), list(queryset.filter(session_id__in=ids))

    same(ours, django)
    assert len(ours) == 6 and [m.pk for m in ours] == sorted(m.pk for m in ours)
    assert ours[1].tool_calls == [{"id": "call_1", "n": 1.5}]
    assert "reasoning" in ours[0].get_deferred_fields()


@pytest.mark.django_db
def test_text_keys_unknown_values_and_repeats(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("bob"))
    key = client.session.session_key

    found = InList(Session.objects.all(), "pk")([key, "no-such-key", key])

    assert [s.session_key for s in found] == [key]
    assert found[0].expire_date > timezone.now()
    assert InList(Session.objects.all(), "pk")([]) == []


@pytest.mark.django_db
def test_each_size_of_list_is_compiled_once_and_each_read_is_one_query(sessions):
    reads = InList(ChatSession.objects.with_compacted(), "pk")
    pks = [s.pk for s in sessions]

    for size in (1, 2, 3, 3, 2):
        with CaptureQueriesContext(connection) as queries:
            found = reads(pks[:size] + pks[:1])  # a repeat is read once, as by the ORM
        assert sorted(s.pk for s in found) == sorted(pks[:size])
        assert len(queries) == 1
    assert sorted(size for _, size in reads._compiled) == [1, 2, 3]
    assert None not in reads._compiled.values()


@pytest.mark.django_db
def test_a_large_list_is_read_through_the_orm(sessions):
    reads = InList(ChatSession.objects.all(), "pk")
    wanted = [s.pk for s in sessions] + list(range(10_000, 10_100))

    assert sorted(s.pk for s in reads(wanted)) == sorted(s.pk for s in sessions)
    assert reads._compiled == {}


@pytest.mark.django_db
def test_a_list_longer_than_the_backend_takes_is_read_in_parts(sessions):
    wanted = [s.pk for s in sessions] + list(range(10_000, 10_600))  # 603 values, 600 of them unknown
    limit = connection.features.max_query_params

    with CaptureQueriesContext(connection) as queries:
        found = InList(ChatSession.objects.all(), "pk")(wanted)

    assert sorted(s.pk for s in found) == sorted(s.pk for s in sessions)
    assert len(queries) == (1 if limit is None else math.ceil(603 / (limit - 64)))


@pytest.mark.django_db
def test_a_query_whose_list_is_not_its_last_parameter_is_left_to_the_orm(sessions):
    # The ORDER BY's parameter comes after the list's: compiled SQL would get them in the wrong order.
    queryset = ChatSession.objects.order_by(Coalesce("title", Value("untitled")), "pk")
    reads = InList(queryset, "pk")
    pks = [s.pk for s in sessions]

    found = reads(pks)

    assert [model_to_dict(s) for s in found] == [model_to_dict(s) for s in queryset.filter(pk__in=pks)]
    assert list(reads._compiled.values()) == [None]
