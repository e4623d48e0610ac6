"""The twin's certificate authority: one CA per twin home, leaf certificates issued on demand.

The CA (``ca.crt``, ``ca.key``) is created on first start and reused afterwards, so a kubeconfig
written once stays valid across restarts. Leaf certificates are issued per set of names and cached
for the life of the process. Keys are EC P-256: instant to generate, accepted by Go, OpenSSL and
urllib3 alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

CA_COMMON_NAME = "rhaii-twin-ca"
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Pki:
    """A CA living in ``home`` (``ca.crt`` + ``ca.key``), issuing TLS server certificates."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.ca_cert_path = self.home / "ca.crt"
        self.ca_key_path = self.home / "ca.key"
        self._certs_dir = self.home / "certs"
        self._contexts: dict[tuple[frozenset[str], frozenset[str]], ssl.SSLContext] = {}
        self._client_context: ssl.SSLContext | None = None
        self._ca_cert, self._ca_key = self._load_or_create_ca()

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM-encoded."""
        return self.ca_cert_path.read_bytes()

    def _load_or_create_ca(self):  # -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        if self.ca_cert_path.exists() and self.ca_key_path.exists():
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
            return cert, key
        return self._create_ca()

    def _create_ca(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self.ca_key_path, key_pem)
        self.ca_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def issue(
        self, dns_names: Iterable[str], ip_addresses: Iterable[str] = ("127.0.0.1",)
    ) -> tuple[bytes, bytes]:
        """Issue a server certificate for the names; returns ``(cert_pem, key_pem)``."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        dns = sorted(set(dns_names))
        ips = sorted(set(ip_addresses))
        if not dns and not ips:
            raise ValueError("a server certificate needs at least one DNS name or IP address")
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = (dns or ips)[0][:64]
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def server_ssl_context(
        self, dns_names: Iterable[str], ip_addresses: Iterable[str] = ("127.0.0.1",)
    ) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for the names (cached per name set)."""
        key = (frozenset(dns_names), frozenset(ip_addresses))
        cached = self._contexts.get(key)
        if cached is not None:
            return cached
        cert_pem, key_pem = self.issue(key[0], key[1])
        # ssl.SSLContext loads chains from files only: keep them next to the CA, owner-only.
        self._certs_dir.mkdir(mode=0o700, exist_ok=True)
        digest = hashlib.sha256(repr(sorted(key[0]) + sorted(key[1])).encode()).hexdigest()[:16]
        cert_path = self._certs_dir / f"{digest}.crt"
        key_path = self._certs_dir / f"{digest}.key"
        cert_path.write_bytes(cert_pem + self.ca_pem)
        _write_private(key_path, key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        self._contexts[key] = context
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side TLS context that trusts the twin CA only (for twin-internal HTTPS calls)."""
        if self._client_context is None:
            self._client_context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        return self._client_context
