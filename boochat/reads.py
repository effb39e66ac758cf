"""The reads a chat send makes in its batch, compiled once: a queryset whose only varying part is the
`IN (...)` list of one field, its last condition.

Django builds and compiles a queryset's SQL each time it is evaluated: 210-370 µs for each of the
one-row reads of a lone chat send (its session, its user, its chat session, its history), which
SQLite then runs in 25 µs. A batch of sends makes each of those reads once, and a lone send is a
batch of one: compiled once, the four cost 0.85 ms less, and a lone send's time to first byte went
from 5.9 to 3.8 ms over direct's (bench/chat_relay.py, medians of 7 and 6 runs taking turns).

`InList(queryset, field)(values)` returns what `queryset.filter(field__in=values)` would, model
instances alike, in its order (within each part, where a long list is split), and sends the same
SQL: compiled by Django on first use for each database and size of list, and kept if, and only if,
the list's values are its last parameters, as Django prepared them. After that each call prepares
its values with the field's own get_db_prep_value and runs the SQL through Django's raw(), which
builds the instances with the converters the ORM applies to model fields; annotations get theirs
here. Lists of up to 64 values are prepared so, one statement for each size: a larger batch pays
Django's compiling once for all its sends. Lists are split where the backend limits a query's
parameters, as in_bulk() splits them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)

PREPARED_UP_TO = 64  # values in a list; at most as many statements kept per read and database


class InList(Generic[M]):
    def __init__(self, queryset: QuerySet[M], field: str):
        self.queryset, self.lookup = queryset, f"{field}__in"
        meta = queryset.model._meta
        self.field = meta.pk if field == "pk" else meta.get_field(field)
        # (database, size of list) -> (SQL, the parameters before the list, the annotations), or None
        # where the list's values are not the last parameters as given (then the ORM runs).
        self._compiled: dict[tuple[str, int], tuple[str, list[Any], dict[str, Any]] | None] = {}

    def __call__(self, values: Iterable[Any]) -> list[M]:
        wanted = list(dict.fromkeys(values))  # as Django's IN: each value once
        connection = connections[self.queryset.db]
        limit = connection.features.max_query_params
        part_size = max(len(wanted), 1) if limit is None else max(limit - 64, 1)  # room for the other parameters
        found: list[M] = []
        for start in range(0, len(wanted), part_size):
            found += self._read(connection, wanted[start:start + part_size])
        return found

    def _read(self, connection: BaseDatabaseWrapper, values: list[Any]) -> list[M]:
        db, compiled = connection.alias, None
        if len(values) <= PREPARED_UP_TO:
            params = [self.field.get_db_prep_value(value, connection, prepared=False) for value in values]
            key = (db, len(values))
            if key not in self._compiled:
                self._compiled[key] = self._compile(db, values, params)
            compiled = self._compiled[key]
        if compiled is None:  # a long list, or SQL this cannot keep: the ORM runs
            return list(self.queryset.filter(**{self.lookup: values}))
        sql, before, annotations = compiled
        rows = list(self.queryset.model._default_manager.db_manager(db).raw(sql, [*before, *params]))
        # raw() converts model fields only; annotations as the compiler would, with this thread's connection.
        for name, expression in annotations.items():
            converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
            for row in rows:
                value = getattr(row, name)
                for convert in converters:
                    value = convert(value, expression, connection)
                setattr(row, name, value)
        return rows

    def _compile(self, db: str, values: list[Any], params: list[Any]) -> tuple[str, list[Any], dict[str, Any]] | None:
        query = self.queryset.filter(**{self.lookup: values}).query
        sql, compiled_params = query.get_compiler(using=db).as_sql()
        before = list(compiled_params[:len(compiled_params) - len(params)])
        if list(compiled_params[len(before):]) != params:
            return None
        return sql, before, dict(query.annotation_select)
