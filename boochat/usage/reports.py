"""Usage summed up for the pages, the CSV export and `manage.py usage`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from boochat.models import UsageRecord

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_PERIOD = "24h"
CSV_FIELDS = ["at", "user", "key", "source", "endpoint", "model_id", "served_by", "prompt_tokens",
              "completion_tokens", "cached_tokens", "ttfb_ms", "duration_ms", "status"]


def period_start(period: str) -> datetime:
    return timezone.now() - PERIODS.get(period, PERIODS[DEFAULT_PERIOD])


def _sums() -> dict[str, Any]:
    return {"requests": Count("id"), "prompt": Coalesce(Sum("prompt_tokens"), 0),
            "completion": Coalesce(Sum("completion_tokens"), 0), "cached": Coalesce(Sum("cached_tokens"), 0)}


def totals(records: QuerySet[UsageRecord]) -> dict[str, int]:
    return records.aggregate(**_sums())


def by(records: QuerySet[UsageRecord], field: str) -> list[dict[str, Any]]:
    """Sums per value of `field` (model_id, served_by, user__username, key__name...), most requests first."""
    rows = records.values(field).annotate(**_sums()).order_by("-requests", field)
    return [{**row, "name": row[field]} for row in rows]


def by_host(records: QuerySet[UsageRecord]) -> list[dict[str, Any]]:
    """Sums per host: the provider of the member that served each request."""
    hosts: dict[str, dict[str, Any]] = {}
    for row in by(records, "served_by"):
        name = (row["served_by"] or "").partition("/")[0] or "(not served)"
        total = hosts.setdefault(name, {"name": name, "requests": 0, "prompt": 0, "completion": 0, "cached": 0})
        for figure in ("requests", "prompt", "completion", "cached"):
            total[figure] += row[figure]
    return sorted(hosts.values(), key=lambda row: (-row["requests"], row["name"]))


@dataclass(frozen=True)
class Bar:
    label: str
    requests: int
    tokens: int


def chart(records: QuerySet[UsageRecord], period: str) -> list[Bar]:
    """Requests and tokens per hour (24 h) or per day, oldest first, empty buckets included."""
    hourly = period == "24h"
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    truncate = TruncHour("at") if hourly else TruncDay("at")
    rows = records.annotate(bucket=truncate).values("bucket").annotate(
        requests=Count("id"), tokens=Coalesce(Sum("prompt_tokens"), 0) + Coalesce(Sum("completion_tokens"), 0))
    found = {row["bucket"]: row for row in rows}
    now = timezone.now()
    current = now.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        current = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    count = 24 if hourly else PERIODS[period].days
    bars = []
    for index in range(count - 1, -1, -1):
        bucket = current - index * step
        row = found.get(bucket, {"requests": 0, "tokens": 0})
        label = timezone.localtime(bucket).strftime("%H:00" if hourly else "%b %d")
        bars.append(Bar(label, row["requests"], row["tokens"]))
    return bars


def export_rows(records: QuerySet[UsageRecord]) -> Iterator[list[Any]]:
    for record in records.select_related("user", "key").order_by("at").iterator(chunk_size=2000):
        yield [record.at.isoformat(), record.user.get_username() if record.user else "",
               record.key.prefix if record.key else "", record.source, record.endpoint, record.model_id,
               record.served_by, record.prompt_tokens, record.completion_tokens, record.cached_tokens,
               record.ttfb_ms, record.duration_ms, record.status]


def csv_lines(records: QuerySet[UsageRecord]) -> Iterator[str]:
    """The records as CSV, a line at a time (a header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    yield buffer.getvalue()
    for row in export_rows(records):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_inert(cell) for cell in row])
        yield buffer.getvalue()


def _inert(cell: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (a model id a client sent, "=HYPERLINK(...)"),
    quoted so it is shown as text."""
    return f"'{cell}" if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
