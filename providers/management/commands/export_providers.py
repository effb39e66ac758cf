from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from providers.models import Provider
from providers.provider_file import export_document


class Command(BaseCommand):
    help = "Write the provider registry in the llama-providers.json format (stdout, or --output FILE)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args: Any, output: str | None, **options: Any) -> None:
        providers = list(Provider.objects.prefetch_related("overrides"))
        if not providers:
            raise CommandError("The registry has no providers to export.")
        text = export_document(providers)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {len(providers)} provider(s) to {output}.")
        else:
            self.stdout.write(text, ending="")
