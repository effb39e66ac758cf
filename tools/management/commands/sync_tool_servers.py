from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from providers.provider_file import ProviderFileError
from tools.server_file import (
    ToolServerPlan,
    apply_tool_servers,
    load_tool_servers,
    plan_from_environment,
    plan_tool_servers,
)


class Command(BaseCommand):
    help = "Sync the tool server registry from the tool_servers of LLAMA_PROVIDERS_PATH (or --path)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print the diff and change nothing.")
        parser.add_argument("--path", help="Read this provider file instead of LLAMA_PROVIDERS_PATH.")

    def handle(self, *args: Any, dry_run: bool, path: str | None, **options: Any) -> None:
        plan: ToolServerPlan | None
        try:
            plan = plan_tool_servers(load_tool_servers(path), origin=path) if path else plan_from_environment()
        except ProviderFileError as exc:
            raise CommandError(str(exc)) from None
        if plan is None:
            self.stdout.write("Nothing to sync: LLAMA_PROVIDERS_PATH is not set or names no file.")
            return
        self.stdout.write(plan.describe())
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
        elif plan.has_changes:
            apply_tool_servers(plan)
            self.stdout.write(self.style.SUCCESS("Tool servers synced."))
