"""A throwaway MinIO server on 127.0.0.1 for tests, optionally with TLS from a test CA."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
from pathlib import Path
from urllib.request import urlopen

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

READY_TIMEOUT = 60  # seconds until a server that has not become ready is given up on
READY_POLL = 0.2  # seconds between two readiness probes
START_ATTEMPTS = 3  # a free port can be taken between probing and binding: retry


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_tls_files(certs_dir: Path, hostname: str = "localhost") -> Path:
    """A test CA plus a server certificate for `hostname` (and 127.0.0.1) in MinIO's layout.

    Writes <certs_dir>/public.crt and <certs_dir>/private.key; returns the CA certificate's path,
    which is kept outside certs_dir so MinIO does not pick it up as a server certificate.
    """
    certs_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = (
        now - datetime.timedelta(hours=1),
        now + datetime.timedelta(days=1),
    )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("lakehouse test CA"))
        .issuer_name(_name("lakehouse test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    (certs_dir / "public.crt").write_bytes(cert.public_bytes(pem))
    (certs_dir / "private.key").write_bytes(_pem_key(key))
    ca_path = certs_dir.parent / "test-ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    return ca_path


class MinioServer:
    """`minio server` on 127.0.0.1 with generated root credentials, data in `workdir`.

    With tls=True it serves https://localhost:<port> with a certificate from a fresh test CA,
    whose path is `ca_path`.
    """

    def __init__(self, binary: Path, workdir: Path, tls: bool = False):
        self.binary = binary
        self.workdir = workdir
        self.tls = tls
        self.root_user = "root-" + secrets.token_hex(4)
        self.root_password = secrets.token_urlsafe(24)
        self.certs_dir = workdir / "certs"
        self.ca_path = write_tls_files(self.certs_dir) if tls else None
        self.log_path = workdir / "minio.log"
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        scheme, host = ("https", "localhost") if self.tls else ("http", "127.0.0.1")
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> MinioServer:
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            if self._launch():
                return self
        tail = self._log_tail()
        raise RuntimeError(f"MinIO did not start in {START_ATTEMPTS} attempts:\n{tail}")

    def _launch(self) -> bool:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # MinIO keeps its config under $HOME/.minio unless told otherwise: keep it here.
            "HOME": str(self.workdir),
            "MINIO_ROOT_USER": self.root_user,
            "MINIO_ROOT_PASSWORD": self.root_password,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binary),
            "server",
            "--address",
            f"127.0.0.1:{self.port}",
            "--console-address",
            f"127.0.0.1:{free_port()}",
            "--certs-dir",
            str(self.certs_dir),
            str(self.workdir / "data"),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self._wait_ready()

    def _wait_ready(self) -> bool:
        """Poll /minio/health/ready, a bounded number of times; False if the server exited."""
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.ca_path))
        url = f"{self.endpoint}/minio/health/ready"
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(int(READY_TIMEOUT / READY_POLL)):
            try:
                with urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or not ready (503)
            if time.monotonic() > deadline:
                break
            try:
                # Doubles as the pause between probes and as the check that MinIO still runs.
                self.process.wait(timeout=READY_POLL)
            except subprocess.TimeoutExpired:
                continue
            return False
        self.stop()
        tail = self._log_tail()
        raise RuntimeError(f"MinIO at {url} not ready in {READY_TIMEOUT}s:\n{tail}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-20:])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
