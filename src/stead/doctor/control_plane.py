"""Data-plane mode (DEPLOYMENT_TYPE=self_hosted_data_plane): the enrollment key is well formed,
not expired or near it, and the control plane answers and accepts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt

from stead.config import Settings
from stead.doctor.findings import Finding, failed, ok, warning
from stead.licenses import LicenseError, refusal, require_well_formed

_NEAR_EXPIRY = timedelta(days=14)
_FIX_KEY = "ask the control plane's operator for a new key (stead license issue)"


def check_enrollment(settings: Settings) -> list[Finding]:
    link = settings.control_plane
    if link is None:
        return [ok("enrollment", "standalone: no control plane to report to")]
    try:
        require_well_formed(link.license_key)
    except LicenseError as exc:
        return [failed("enrollment", f"{exc.code}: {exc}", _FIX_KEY)]
    try:
        response = httpx.post(
            f"{link.url.rstrip('/')}/v1/data-plane/keys/check",
            headers={"Authorization": f"Bearer {link.license_key}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        return [
            failed(
                "control-plane",
                f"{link.url} does not answer ({exc})",
                "check CONTROL_PLANE_URL and the way out to it",
            )
        ]
    if response.status_code in (401, 403):
        refused = refusal(str(response.json().get("detail")))
        return [
            ok("control-plane", f"{link.url} answers"),
            failed("enrollment", f"{refused.code}: {refused}", _FIX_KEY),
        ]
    if response.status_code != 200:
        return [
            failed(
                "control-plane",
                f"{link.url} answered {response.status_code}",
                "check that CONTROL_PLANE_URL is a Stead control plane",
            )
        ]
    return [ok("control-plane", f"{link.url} answers"), _expiry(link.license_key)]


def _expiry(key: str) -> Finding:
    # The control plane verified the signature; the claims are read here only for the date.
    expires = jwt.decode(key.strip(), options={"verify_signature": False}).get("exp")
    if expires is None:
        return ok("enrollment", "the key is accepted and does not expire")
    at = datetime.fromtimestamp(expires, UTC)
    message = f"the key is accepted and expires at {at:%Y-%m-%dT%H:%M:%SZ}"
    if at - datetime.now(UTC) < _NEAR_EXPIRY:
        return warning("enrollment", message + ", within 14 days", _FIX_KEY)
    return ok("enrollment", message)
