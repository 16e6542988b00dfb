"""The server's TLS files are checked before binding: a garbage certificate, a garbage or encrypted key, a
key that is not the certificate's, an expired certificate or a bad CA file are each reported naming the
flag, the file and the reason (never "cannot bind host:port")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

import throttlekit as tk
from tests._support.certs import Pki, make_pki
from tests._support.server import EXAMPLE
from throttlekit.cli import main
from throttlekit.server import check_tls_files, server_credentials


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_good_files_pass(pki: Pki) -> None:
    cert, _key, ca = check_tls_files(pki.server_cert, pki.server_key, pki.ca)
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----") and ca is not None
    server_credentials(pki.server_cert, pki.server_key, pki.ca)


def test_a_garbage_certificate_names_the_file(tmp_path: Path, pki: Pki) -> None:
    bad = _file(tmp_path, "cert.pem", b"this is not a certificate\n")
    with pytest.raises(tk.ConfigError, match=rf"--tls-cert {bad}: not a PEM certificate"):
        server_credentials(bad, pki.server_key)


def test_a_truncated_certificate_names_the_file(tmp_path: Path, pki: Pki) -> None:
    text = pki.server_cert.read_bytes()
    bad = _file(tmp_path, "cut.pem", text[: len(text) // 2])
    with pytest.raises(tk.ConfigError, match=r"--tls-cert .*cut.pem: not a PEM certificate"):
        server_credentials(bad, pki.server_key)


def test_a_garbage_key_names_the_file(tmp_path: Path, pki: Pki) -> None:
    bad = _file(tmp_path, "server.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(tk.ConfigError, match=rf"--tls-key {bad}: not a PEM private key"):
        server_credentials(pki.server_cert, bad)


def test_a_certificate_given_as_the_key_names_the_key_file(pki: Pki) -> None:
    with pytest.raises(tk.ConfigError, match=r"--tls-key .*server.pem: not a PEM private key"):
        server_credentials(pki.server_cert, pki.server_cert)


def test_a_key_that_is_not_the_certificates_says_so(pki: Pki) -> None:
    with pytest.raises(
        tk.ConfigError, match=r"--tls-key .*client.key does not match --tls-cert .*server.pem"
    ):
        server_credentials(pki.server_cert, pki.client_key)


def test_an_encrypted_key_is_refused_with_the_reason(tmp_path: Path, pki: Pki) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), password=None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    bad = _file(tmp_path, "locked.key", locked)
    with pytest.raises(tk.ConfigError, match=r"--tls-key .*locked.key: the private key is encrypted"):
        server_credentials(pki.server_cert, bad)


def test_an_expired_or_not_yet_valid_certificate_says_when(pki: Pki) -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    with pytest.raises(tk.ConfigError, match=r"--tls-cert .*server.pem: the certificate expired on 20"):
        check_tls_files(pki.server_cert, pki.server_key, now=later)
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    with pytest.raises(tk.ConfigError, match=r"the certificate is not valid before 20"):
        check_tls_files(pki.server_cert, pki.server_key, now=earlier)


def test_a_garbage_ca_names_the_file(tmp_path: Path, pki: Pki) -> None:
    bad = _file(tmp_path, "ca.pem", b"\x00\x01garbage")
    with pytest.raises(tk.ConfigError, match=rf"--tls-ca {bad}: not a PEM certificate"):
        server_credentials(pki.server_cert, pki.server_key, bad)


def test_the_cli_reports_the_file_and_exits_1(tmp_path: Path, pki: Pki) -> None:
    bad = _file(tmp_path, "cert.pem", b"garbage")
    args = ["serve", "--config", str(EXAMPLE), "--port", "0", "--tls-cert", str(bad)]
    res = CliRunner().invoke(main, [*args, "--tls-key", str(pki.server_key)])
    assert res.exit_code == 1, res.output
    assert f"--tls-cert {bad}: not a PEM certificate" in res.output
    assert "cannot bind" not in res.output
    res = CliRunner().invoke(
        main,
        [
            "serve",
            "--config",
            str(EXAMPLE),
            "--port",
            "0",
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.client_key),
        ],
    )
    assert res.exit_code == 1 and "does not match" in res.output, res.output
