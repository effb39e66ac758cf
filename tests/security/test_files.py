"""What BooChat writes to its data directory is readable by its owner only."""

import os
import stat
import subprocess
import sys

from django.conf import settings


def test_the_secret_key_and_the_database_are_private(tmp_path):
    data = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if key not in ("BOOCHAT_SECRET_KEY", "DATABASE_URL")}
    env["BOOCHAT_DATA_DIR"] = str(data)
    script = ("import os; os.umask(0o022); import django; django.setup(); "
              "from django.core.management import call_command; call_command('migrate', verbosity=0)")
    subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, env={**env, "DJANGO_SETTINGS_MODULE": "boochat.settings"},
                   check=True)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}
    assert modes["secret_key"] == 0o600 and modes["db.sqlite3"] == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert len((data / "secret_key").read_text()) > 40
    assert not [name for name in modes if name.startswith(".")]  # no temporary file left behind
