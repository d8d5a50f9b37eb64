"""Push an OCI image layout archive to a registry over the distribution API v2, in plain Python.

Enough of the protocol for a user's registry: Basic and Bearer-token authentication, blobs that
the registry already holds are skipped, monolithic blob uploads, the manifest put by tag with the
exact bytes of the archive (so the registry's digest is ours). Used by library/lakehouse_image.py.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import tarfile
import urllib.error
import urllib.parse
import urllib.request

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TIMEOUT = 60


class RegistryError(Exception):
    """The registry refused or failed a request."""


def split_repository(url: str) -> tuple[str, str]:
    """ "https://reg.example:5000/lakehouse/minio" -> ("https://reg.example:5000", "lakehouse/minio");
    without a scheme, https."""
    if "://" not in url:
        url = "https://" + url
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.strip("/")


class Registry:
    def __init__(
        self,
        base: str,
        repository: str,
        username: str = "",
        password: str = "",
        ca_path: str = "",
        validate_certs: bool = True,
    ):
        if not base.startswith(("https://", "http://")):
            raise RegistryError(f"the registry {base!r} is not an http(s) URL")
        self.base, self.repository = base.rstrip("/"), repository
        self.username, self.password = username, password
        if validate_certs:
            self.context = ssl.create_default_context(cafile=ca_path or None)
        else:
            self.context = ssl._create_unverified_context()  # noqa: S323 (the user asked for it)
        self.auth = None  # the Authorization header value once a challenge was answered

    def request(self, method: str, url: str, data=None, headers: dict | None = None, ok=(200,)):
        """One request; answers a 401 challenge once and retries. Returns (status, headers, body)."""
        if not url.startswith(("http://", "https://")):
            url = urllib.parse.urljoin(self.base, url)
        for attempt in (1, 2):
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310
            if self.auth:
                request.add_header("Authorization", self.auth)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.context) as response:  # noqa: S310
                    return response.status, response.headers, response.read()
            except urllib.error.HTTPError as e:
                body = e.read()
                if e.code == 401 and attempt == 1 and self._answer(e.headers.get("WWW-Authenticate", "")):
                    if hasattr(data, "seek"):
                        data.seek(0)
                    continue
                if e.code in ok:
                    return e.code, e.headers, body
                raise RegistryError(f"{method} {url}: HTTP {e.code} {body[:500].decode(errors='replace')}") from e
            except (urllib.error.URLError, OSError) as e:
                raise RegistryError(f"{method} {url}: {e}") from e
        raise RegistryError(f"{method} {url}: the registry refused the credentials")

    def _answer(self, challenge: str) -> bool:
        scheme, _, params = challenge.partition(" ")
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if scheme.lower() == "basic":
            self.auth = f"Basic {basic}"
            return bool(self.username)
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", ""), "scope": f"repository:{self.repository}:pull,push"}
        url = fields["realm"] + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        headers = {"Authorization": f"Basic {basic}"} if self.username else {}
        if not url.startswith(("https://", "http://")):
            raise RegistryError(f"the token realm {fields['realm']!r} is not an http(s) URL")
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked above)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.context) as response:  # noqa: S310
                answer = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise RegistryError(f"token request to {fields['realm']} failed: {e}") from e
        self.auth = "Bearer " + (answer.get("token") or answer.get("access_token", ""))
        return True

    def manifest_digest(self, tag: str) -> str | None:
        status, headers, _ = self.request(
            "HEAD", f"/v2/{self.repository}/manifests/{tag}", headers={"Accept": MEDIA_MANIFEST}, ok=(200, 404)
        )
        return headers.get("Docker-Content-Digest") if status == 200 else None

    def has_blob(self, digest: str) -> bool:
        status, _, _ = self.request("HEAD", f"/v2/{self.repository}/blobs/{digest}", ok=(200, 404))
        return status == 200

    def put_blob(self, digest: str, size: int, data):
        _, headers, _ = self.request("POST", f"/v2/{self.repository}/blobs/uploads/", data=b"", ok=(202,))
        location = urllib.parse.urljoin(self.base, headers["Location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        self.request(
            "PUT",
            location,
            data=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            ok=(201,),
        )

    def put_manifest(self, tag: str, manifest: bytes) -> str:
        _, headers, _ = self.request(
            "PUT",
            f"/v2/{self.repository}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": MEDIA_MANIFEST},
            ok=(201,),
        )
        return headers.get("Docker-Content-Digest", "")


def push(archive: str, registry: Registry, tag: str, digest: str, check_mode: bool = False) -> dict:
    """Push the archive's image as `tag` unless the registry already serves `digest` for it.
    Returns pushed (bool) and blobs (the digests uploaded, or that would be)."""
    if registry.manifest_digest(tag) == digest:
        return {"pushed": False, "blobs": []}
    with tarfile.open(archive, mode="r:") as tar:
        index = json.load(tar.extractfile("index.json"))
        if index["manifests"][0]["digest"] != digest:
            raise RegistryError(f"{archive} holds {index['manifests'][0]['digest']}, not {digest}")
        manifest_bytes = tar.extractfile("blobs/sha256/" + digest[7:]).read()
        manifest = json.loads(manifest_bytes)
        uploaded = []
        for blob in [manifest["config"], *manifest["layers"]]:
            if registry.has_blob(blob["digest"]):
                continue
            uploaded.append(blob["digest"])
            if not check_mode:
                member = tar.getmember("blobs/sha256/" + blob["digest"][7:])
                registry.put_blob(blob["digest"], member.size, tar.extractfile(member))
    if not check_mode:
        answered = registry.put_manifest(tag, manifest_bytes)
        if answered and answered != digest:
            raise RegistryError(f"the registry stored the manifest as {answered}, not {digest}")
    return {"pushed": True, "blobs": uploaded}
