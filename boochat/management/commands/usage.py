"""`manage.py usage --since 7d --format csv`: usage records on stdout, for a spreadsheet or a script."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from boochat.models import UsageRecord
from boochat.usage import reports
from boochat.usage.recording import prune

_AGO = re.compile(r"(\d+)([hd])")


def parse_since(value: str) -> datetime:
    """`24h`, `7d`, a date (2026-12-01) or a date and time, as an aware datetime."""
    if match := _AGO.fullmatch(value.strip()):
        amount, unit = int(match[1]), match[2]
        return timezone.now() - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))
    moment = parse_datetime(value)
    if moment is None and (day := parse_date(value)) is not None:
        moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise CommandError(f"--since {value!r}: write 24h, 7d, a date (2026-12-01) or a date and time.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = "Print usage records (gateway requests, chat and arena answers) since a moment, as CSV or JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", default="24h", help="24h, 7d, a date or a date and time (default 24h).")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")
        parser.add_argument("--user", help="Only this user's records (a username).")
        parser.add_argument("--prune", action="store_true",
                            help="First delete records older than BOOCHAT_USAGE_DAYS (done daily by the app too).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["prune"]:
            self.stderr.write(f"Deleted {prune()} records past the retention.")
        records = UsageRecord.objects.filter(at__gte=parse_since(options["since"]))
        if options["user"]:
            records = records.filter(user__username=options["user"])
        if options["format"] == "csv":
            for line in reports.csv_lines(records):
                self.stdout.write(line, ending="")
            return
        self.stdout.write("[", ending="")
        for index, row in enumerate(reports.export_rows(records)):
            self.stdout.write(("," if index else "") + "\n" + json.dumps(dict(zip(reports.CSV_FIELDS, row, strict=True))),
                              ending="")
        self.stdout.write("\n]")
