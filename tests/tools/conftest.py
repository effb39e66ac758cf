from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for `localhost` and its key: trusted by nothing unless a test says so
    (SSL_CERT_FILE in a child process)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )
    return tmp_path / "cert.pem", tmp_path / "key.pem"
