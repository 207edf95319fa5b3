"""Certificates made at test time (with ``cryptography``), and the SSL
contexts built from them: a test CA, a server certificate for localhost /
127.0.0.1 / ::1 signed by it, and a self-signed one nobody trusts."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Certs:
    """Paths of the PEM files of one test PKI."""

    ca: Path                 # the CA certificate clients trust
    cert: Path               # server certificate (localhost, 127.0.0.1, ::1)
    key: Path
    untrusted_cert: Path     # self-signed, same names
    untrusted_key: Path

    def server_context(self, trusted: bool = True) -> ssl.SSLContext:
        """A server-side context with the CA-signed (or the self-signed) certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if trusted:
            context.load_cert_chain(self.cert, self.key)
        else:
            context.load_cert_chain(self.untrusted_cert, self.untrusted_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA and checks host names."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.ca)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey,
                 issuer: Optional[Tuple[str, ec.EllipticCurvePrivateKey]],
                 ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(_name(issuer_name))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certs(directory: Path) -> Certs:
    """Write a fresh test PKI into ``directory``; returns its paths."""
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("gsocket test CA", ca_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("localhost", key, ("gsocket test CA", ca_key), ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("localhost", other_key, None, ca=False)
    certs = Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                  directory / "untrusted.pem", directory / "untrusted.key")
    certs.ca.write_bytes(ca_cert.public_bytes(pem))
    certs.cert.write_bytes(cert.public_bytes(pem))
    _write_key(certs.key, key)
    certs.untrusted_cert.write_bytes(other.public_bytes(pem))
    _write_key(certs.untrusted_key, other_key)
    return certs
