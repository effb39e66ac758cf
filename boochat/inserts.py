"""Many new rows of one model in one INSERT, for the rows a burst of chat sends saves together
(chat.new_turns: each send's question and its answer, streaming).

bulk_create() compiles its batches of rows one after the other inside its transaction: on SQLite the
write lock is taken at the first batch's INSERT and held while the others are compiled, about 20 ms
for the 600 rows of 300 sends, and the other workers' writes wait for it in SQLite's busy sleeps (1,
2, 5, 10, 15... ms). It also prepares every field of every row on its own: 38 us a row here. This
prepares all the rows first, each field's distinct values once (the rows of a batch repeat most of
them: the role, the state, the model, empty texts), and then only runs the INSERTs: the lock is held
for a few milliseconds, and a row costs 27 us. What is saved is the same, field by field (Django's own
pre_save and get_db_prep_save), and so is how: one transaction, in batches of the backend's
bulk_batch_size, the new primary keys read back with RETURNING. Where any of that does not hold (a
backend that cannot return the keys, a field with its own placeholder, a generated field, a row with
its primary key set, a value that is an expression), bulk_create() does the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Model


def insert_new(objs: Sequence[Model]) -> None:
    """Save `objs` (new, of one model, without primary keys) as bulk_create(objs) would; their pk
    set afterwards. All or none are saved."""
    if not objs:
        return
    model = type(objs[0])
    opts = model._meta
    connection = connections[router.db_for_write(model)]
    fields = [f for f in opts.concrete_fields if not f.primary_key]
    if (not connection.features.can_return_rows_from_bulk_insert or any(obj.pk is not None for obj in objs)
            or any(hasattr(f, "get_placeholder") or getattr(f, "generated", False) for f in fields)):
        model._default_manager.bulk_create(objs)
        return
    prepared: list[dict[tuple[type, Any], Any]] = [{} for _ in fields]
    rows = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        row = []
        for field, seen in zip(fields, prepared, strict=True):
            value = field.pre_save(obj, True)
            try:
                row.append(seen[type(value), value])  # the type too: JSON true and 1 are equal in Python
                continue
            except KeyError:
                pass
            except TypeError:  # unhashable (a dict for a JSON field): prepared each time
                row.append(field.get_db_prep_save(value, connection))
                continue
            if hasattr(value, "as_sql"):  # an expression (a database default, F()...): Django compiles it
                model._default_manager.bulk_create(objs)
                return
            seen[type(value), value] = db_value = field.get_db_prep_save(value, connection)
            row.append(db_value)
        rows.append(row)
    quote = connection.ops.quote_name
    head = (f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES ")
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    size = connection.ops.bulk_batch_size(fields, objs) or len(objs)
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            cursor.execute(head + ", ".join([one] * len(batch)) + f" RETURNING {quote(opts.pk.column)}",
                           [value for row in batch for value in row])
            for obj, (pk,) in zip(objs[start:start + size], cursor.fetchall(), strict=True):
                obj.pk = pk
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
