"""`stead license issue` and `stead license verify`: Ed25519-signed enrollment keys checked offline,
and each way a key is refused, with its code, its exit status and one line that never quotes it."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stead.controlplane.signing import public_key, signing_key
from stead.licenses import InvalidLicense, issue_license, verify_license


def stead(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stead", *args], capture_output=True, text=True, cwd=cwd
    )


def issue(cwd: Path, *args: str) -> str:
    done = stead("license", "issue", "--subject", "acme", "--scope", "data-plane", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def refused(cwd: Path, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = stead("license", "verify", key, *args, cwd=cwd)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert not key or key not in done.stderr
    return done


def test_an_issued_key_verifies_offline_with_the_public_key_alone(tmp_path: Path) -> None:
    key = issue(tmp_path, "--expires", "2099-01-01")
    done = stead("license", "verify", key, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("valid: subject acme, scope data-plane, issued ")
    assert done.stdout.rstrip().endswith("expires 2099-01-01T00:00:00Z")
    # A data plane holds only the public key.
    public = tmp_path / ".stead-control-plane" / "license-public-key.pem"
    elsewhere = tmp_path / "data-plane"
    elsewhere.mkdir()
    assert (
        stead("license", "verify", key, "--public-key", str(public), cwd=elsewhere).returncode == 0
    )
    private = tmp_path / ".stead-control-plane" / "license-signing-key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_a_key_of_another_control_plane_is_invalid(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    forged = issue(other)
    stead("license", "issue", "--subject", "x", "--scope", "data-plane", cwd=tmp_path)
    done = refused(tmp_path, forged)
    assert done.returncode == 3
    assert done.stderr == "stead: INVALID_LICENSE: its signature is not this control plane's\n"


def test_a_key_whose_claims_were_changed_is_invalid(tmp_path: Path) -> None:
    header, payload, signature = issue(tmp_path).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    done = refused(tmp_path, f"{header}.{changed}.{signature}")
    assert done.returncode == 3 and "INVALID_LICENSE: its signature" in done.stderr


def test_an_expired_key_has_its_own_code_and_exit_status(tmp_path: Path) -> None:
    key = issue(tmp_path, "--expires", "2020-01-01T00:00:00+00:00")
    done = refused(tmp_path, key)
    assert done.returncode == 4
    assert done.stderr == "stead: LICENSE_EXPIRED: it expired at 2020-01-01T00:00:00Z\n"


@pytest.mark.parametrize("key", ["garbage", "a.b.c", ""])
def test_a_malformed_key_is_invalid(tmp_path: Path, key: str) -> None:
    issue(tmp_path)
    done = refused(tmp_path, key)
    assert done.returncode == 3 and done.stderr.startswith("stead: INVALID_LICENSE: ")


def test_a_key_for_another_use_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "cp"
    key = issue_license(signing_key(data_dir), "acme", "data-plane")
    assert verify_license(key, public_key(data_dir), scope="data-plane").subject == "acme"
    with pytest.raises(InvalidLicense, match="scope 'data-plane' does not allow this"):
        verify_license(key, public_key(data_dir), scope="control-plane")
    done = stead("license", "issue", "--subject", "a", "--scope", "admin", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        3,
        "stead: INVALID_LICENSE: unknown scope 'admin' (known: data-plane)\n",
    )


def test_a_bad_expiry_is_one_line(tmp_path: Path) -> None:
    done = stead(
        "license", "issue", "--subject", "a", "--scope", "data-plane", "--expires", "soon",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "stead: error: --expires must be an ISO-8601 date or time, got 'soon'\n"
