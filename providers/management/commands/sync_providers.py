from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from providers.models import ProviderSource
from providers.provider_file import ProviderFileError, load_provider_file
from providers.sync import SyncPlan, apply_plan, plan_from_environment, plan_sync


class Command(BaseCommand):
    help = (
        "Sync the provider registry from LLAMA_PROVIDERS_PATH (or --path), falling back to "
        "LLAMA_SWAP_URL / LLAMA_SIDECAR_URL when there is no file."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print the diff and change nothing.")
        parser.add_argument("--path", help="Read this provider file instead of LLAMA_PROVIDERS_PATH.")

    def handle(self, *args: Any, dry_run: bool, path: str | None, **options: Any) -> None:
        plan: SyncPlan | None
        try:
            if path:
                plan = plan_sync(load_provider_file(path), source=ProviderSource.FILE, origin=path)
            else:
                plan = plan_from_environment()
        except (ProviderFileError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        if plan is None:
            self.stdout.write("Nothing to sync: neither LLAMA_PROVIDERS_PATH nor LLAMA_SWAP_URL is set.")
            return
        self.stdout.write(plan.describe())
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
        elif plan.has_changes:
            apply_plan(plan)
            self.stdout.write(self.style.SUCCESS("Providers synced."))
