"""TLS certificates made at test time with ``cryptography``: self-signed, or issued by a test CA."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files of a certificate (with its chain) and its key, and the CA that issued it."""

    cert: Path
    key: Path
    ca: Path  # the issuer's certificate; the certificate itself when self-signed

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alternative_names(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _certificate(
    subject: str, names: list[str], key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None, issuer_key: ec.EllipticCurvePrivateKey | None = None, ca: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer or _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(_alternative_names(names), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def self_signed(directory: Path, names: list[str]) -> CertificateFiles:
    """A self-signed certificate for ``names`` (host names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert, key_path = _write(directory, "self-signed", _certificate(names[0], names, key), key)
    return CertificateFiles(cert, key_path, cert)


def issued_by_test_ca(directory: Path, names: list[str]) -> CertificateFiles:
    """A certificate for ``names`` issued by a fresh test CA (trust ``.ca`` to accept it)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("ModelPulse test CA", [], ca_key, ca=True)
    ca_path, _ = _write(directory, "test-ca", ca_cert, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(names[0], names, key, issuer=ca_cert.subject, issuer_key=ca_key)
    cert_path, key_path = _write(directory, "issued", cert, key)
    return CertificateFiles(cert_path, key_path, ca_path)
