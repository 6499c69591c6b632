"""Throw-away certificates for TLS tests (made with `cryptography`, valid for one day).

`make_certs(directory)` writes a CA, a server certificate for localhost and 127.0.0.1 (with the
serverAuth and clientAuth usages: it is the services' identity both ways in mTLS) and a client
certificate, each with its key, and returns their paths (PEM).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key(kind: str) -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: x509.Certificate, key: PrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)


def _issue(
    subject: str,
    key: PrivateKey,
    issuer: tuple[x509.Name, PrivateKey] | None,
    *,
    ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certs(directory: Path, *, key_type: str = "rsa", prefix: str = "") -> Certs:
    """A CA, a server certificate (`key_type` rsa or ec) and a client certificate, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key("ec")
    ca = _issue(f"{prefix}ossa test CA", ca_key, None, ca=True)
    server_key = _key(key_type)
    server = _issue(
        "localhost",
        server_key,
        (ca.subject, ca_key),
        usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = _key("ec")
    client = _issue("agent-1", client_key, (ca.subject, ca_key), usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
    _write(directory / f"{prefix}ca.crt", ca)
    _write(directory / f"{prefix}server.crt", server, server_key)
    _write(directory / f"{prefix}client.crt", client, client_key)
    return Certs(
        ca=directory / f"{prefix}ca.crt",
        server_cert=directory / f"{prefix}server.crt",
        server_key=directory / f"{prefix}server.key",
        client_cert=directory / f"{prefix}client.crt",
        client_key=directory / f"{prefix}client.key",
    )
