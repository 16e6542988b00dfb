"""TLS and mutual TLS with certificates generated for the test; a client without a certificate is
refused under mTLS."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

import throttlekit as tk
from tests._support.certs import Pki, make_pki
from tests._support.server import Starter
from throttlekit.server import server_credentials

POLICIES = {"api": {"strategy": "gcra", "limit": 100, "period": "1s"}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _channel_creds(pki: Pki, *, client_cert: bool, ca: Path | None = None) -> grpc.ChannelCredentials:
    root = (ca or pki.ca).read_bytes()
    if client_cert:
        return grpc.ssl_channel_credentials(root, pki.client_key.read_bytes(), pki.client_cert.read_bytes())
    return grpc.ssl_channel_credentials(root)


def test_tls_serves_a_client_that_trusts_the_ca(start_server: Starter, pki: Pki) -> None:
    served = start_server(POLICIES, credentials=server_credentials(pki.server_cert, pki.server_key))
    with tk.ServiceBackend(served.target, credentials=_channel_creds(pki, client_cert=False), timeout=5) as c:
        assert c.check("api", "k").allowed
    with (
        tk.ServiceBackend(
            served.target, credentials=_channel_creds(pki, client_cert=False, ca=pki.other_ca), timeout=2
        ) as c,
        pytest.raises(tk.ServiceUnavailableError),
    ):
        c.check("api", "k")  # the server's certificate does not verify against another CA
    with tk.ServiceBackend(served.target, timeout=2) as plain, pytest.raises(tk.ServiceUnavailableError):
        plain.check("api", "k")  # plaintext client against a TLS port


def test_mtls_requires_a_client_certificate(start_server: Starter, pki: Pki) -> None:
    creds = server_credentials(pki.server_cert, pki.server_key, pki.ca)
    served = start_server(POLICIES, credentials=creds)
    with tk.ServiceBackend(served.target, credentials=_channel_creds(pki, client_cert=True), timeout=5) as c:
        assert c.check("api", "k").allowed
        assert c.check_many("api", ["a", "b"])[1].allowed
    no_cert = _channel_creds(pki, client_cert=False)
    with (
        tk.ServiceBackend(served.target, credentials=no_cert, timeout=2) as c,
        pytest.raises(tk.ServiceUnavailableError),
    ):
        c.check("api", "k")
    closed = tk.ServiceBackend(
        served.target, credentials=_channel_creds(pki, client_cert=False), timeout=2, fail="closed"
    )
    assert not closed.check("api", "k").allowed  # refused handshake settles by the client's fail mode
    closed.close()


def test_unreadable_certificate_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(tk.ConfigError, match="--tls-cert: cannot read"):
        server_credentials(tmp_path / "nope.pem", tmp_path / "nope.key")
