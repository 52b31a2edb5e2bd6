"""An approval signed by an independent producer (Debian's openssl, jq) verifies here, and ours
verifies there: the canonical form and the signature encoding are the documented ones.

The shell in PRODUCER_RECIPE is the upstream producer's recipe, step by step (the README's);
it publishes with kcat only when KAFKA_TOPIC is set, which these tests do not do.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretBytes

from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.signatures import (
    KeyEntry,
    KeyRing,
    Verified,
    public_key_from_text,
    public_key_pem,
    sign,
    verify,
)
from jax_exec.keys import add_hmac_key, add_public_key, load_keyring
from schemas.canonical import dumps, signing_input

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None,
                       reason="openssl is not installed (apt-get install -y openssl)"),
]

NOW = datetime(2026, 11, 21, 14, 31, tzinfo=UTC)
TIMEOUT = 60

# The producer's approval exactly as typed: the seed's numbers (150.00 ...), any key order.
APPROVAL = """{
  "signal": {"id": "123e4567-e89b-12d3-a456-426614174000", "symbol": "AAPL",
             "signal_type": "BUY", "entry_price": 150.00, "stop_loss": 145.00,
             "take_profit": 160.00, "confidence": 0.85, "strategy_id": "ma_crossover_v1"},
  "decision": "approved", "approved_by": "strategy-desk",
  "decided_at": "2026-11-21T14:30:00Z", "expires_at": "2026-11-21T14:45:00Z",
  "key_id": "KEY_ID", "algorithm": "ALGORITHM"
}"""

# Inputs: approval.json; ALGORITHM (ed25519 | hmac-sha256); KEY (private key PEM file) or
# SECRET_FILE (hex); CANON (jq | python). Output: signed.json (and canonical.json).
PRODUCER_RECIPE = r"""
set -euo pipefail
# 1. The canonical form: RFC 8785 of the approval without "signature", no trailing newline.
if [ "$CANON" = jq ]; then
  jq -jcS 'del(.signature)' approval.json > canonical.json
else
  "$PYTHON" -c 'import json, sys, rfc8785
d = json.load(sys.stdin); d.pop("signature", None); sys.stdout.buffer.write(rfc8785.dumps(d))' \
    < approval.json > canonical.json
fi
# 2. Sign it; the signature is standard base64.
if [ "$ALGORITHM" = ed25519 ]; then
  openssl pkeyutl -sign -rawin -inkey "$KEY" -in canonical.json -out signature.bin
else
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(cat "$SECRET_FILE")" -binary \
    -out signature.bin canonical.json
fi
SIGNATURE=$(openssl base64 -A -in signature.bin)
# 3. Attach it; publish one message (kcat -P sends a whole file as one message).
jq -c --arg sig "$SIGNATURE" '. + {signature: $sig}' approval.json > signed.json
if [ -n "${KAFKA_TOPIC:-}" ]; then
  kcat -P -b "$KAFKA_BOOTSTRAP" -t "$KAFKA_TOPIC" -k "$(jq -r .signal.id approval.json)" signed.json
fi
"""


def jq_version() -> str:
    return subprocess.run(["jq", "--version"], capture_output=True, text=True, check=True,
                          timeout=TIMEOUT).stdout.strip()


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          check=True, timeout=TIMEOUT)


def produce(work: Path, algorithm: str, key_id: str, canon: str, **env: str) -> bytes:
    """Run the producer's recipe; the bytes it would publish."""
    if canon == "jq" and shutil.which("jq") is None:
        pytest.skip("jq is not installed (apt-get install -y jq)")
    if canon == "jq" and jq_version() != "jq-1.6":
        pytest.skip(f"{jq_version()} keeps number literals as typed (150.00 stays 150.00), so "
                    "its -cS output is JCS only when numbers are written in shortest form")
    text = APPROVAL.replace("KEY_ID", key_id).replace("ALGORITHM", algorithm)
    (work / "approval.json").write_text(text)
    run(["bash", "-c", PRODUCER_RECIPE], work, ALGORITHM=algorithm, CANON=canon,
        PYTHON=sys.executable, **env)
    canonical = (work / "canonical.json").read_bytes()
    print(f"{canon} canonical form ({len(canonical)} bytes): {canonical.decode()}")
    assert canonical == signing_input(text), "the shell's canonical form is not ours"
    return (work / "signed.json").read_bytes()


@pytest.mark.parametrize("canon", ["jq", "python"])
def test_an_openssl_ed25519_signature_verifies(tmp_path: Path, canon: str) -> None:
    run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", "producer.pem"], tmp_path)
    run(["openssl", "pkey", "-in", "producer.pem", "-pubout", "-out", "producer.pub.pem"],
        tmp_path)
    ring_path = tmp_path / "keys" / "keyring.json"
    add_public_key(ring_path, "desk-2026", (tmp_path / "producer.pub.pem").read_text(),
                   ["strategy-desk"])
    raw = produce(tmp_path, "ed25519", "desk-2026", canon, KEY="producer.pem")
    ring = load_keyring(ring_path)
    outcome = verify(raw, ring, NOW)
    assert isinstance(outcome, Verified), outcome
    assert outcome.key_id == "desk-2026"
    tampered = raw.replace(b'"stop_loss":145', b'"stop_loss":140')
    assert tampered != raw
    refusal = verify(tampered, ring, NOW)
    assert isinstance(refusal, Refusal)
    assert refusal.code is ReasonCode.BAD_SIGNATURE


@pytest.mark.parametrize("canon", ["jq", "python"])
def test_an_openssl_hmac_signature_verifies(tmp_path: Path, canon: str) -> None:
    ring_path = tmp_path / "keys" / "keyring.json"
    secret_file = add_hmac_key(ring_path, "upstream-1", ["strategy-desk"])
    raw = produce(tmp_path, "hmac-sha256", "upstream-1", canon, SECRET_FILE=str(secret_file))
    outcome = verify(raw, load_keyring(ring_path), NOW)
    assert isinstance(outcome, Verified), outcome
    assert outcome.algorithm == "hmac-sha256"
    late = verify(raw, load_keyring(ring_path), NOW + timedelta(hours=1))
    assert isinstance(late, Refusal)
    assert late.code is ReasonCode.APPROVAL_EXPIRED


def test_openssl_verifies_what_the_project_signs(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "pub.pem").write_text(public_key_pem(key))
    approval = sign(json.loads(APPROVAL.replace("ALGORITHM", "ed25519")), key, "ours-1")
    (tmp_path / "canonical.json").write_bytes(signing_input(approval))
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(approval["signature"]))
    out = run(["openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", "pub.pem",
               "-in", "canonical.json", "-sigfile", "sig.bin"], tmp_path)
    assert b"Signature Verified Successfully" in out.stdout
    ring = KeyRing.of(KeyEntry.ed25519("ours-1", key.public_key(), ["strategy-desk"]))
    assert isinstance(verify(json.dumps(approval), ring, NOW), Verified)
    secret = bytes(range(32))
    hmac_signed = sign(json.loads(APPROVAL), SecretBytes(secret), "ours-2")
    (tmp_path / "canonical2.json").write_bytes(signing_input(hmac_signed))
    mac = run(["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{secret.hex()}",
               "-binary", "canonical2.json"], tmp_path)
    assert base64.b64encode(mac.stdout).decode() == hmac_signed["signature"]


JQ_CASES: dict[str, Any] = {
    "seed numbers": {"p": 150.00, "c": 0.85, "n": -3},
    "tiny number": {"p": 1e-7},
    "huge number": {"p": 1e21},
    "DEL in a string": {"s": "a\x7fb"},
    "key beyond the BMP": {"\U0001f600": 1, "\uffff": 2},
}


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_where_jq_differs_from_rfc8785() -> None:
    """`jq -jcS` is JCS for the seed's content; these are where it is not (printed)."""
    version = jq_version()
    differs = []
    for name, value in JQ_CASES.items():
        jq = subprocess.run(["jq", "-jcS", "."], input=json.dumps(value).encode(),
                            capture_output=True, check=True, timeout=TIMEOUT).stdout
        if jq != dumps(value):
            differs.append(name)
            print(f"{version}: {name}: jq {jq.decode()!r} != RFC 8785 {dumps(value).decode()!r}")
    print(f"{version} differs from RFC 8785 on: {', '.join(differs) or 'nothing tried'}")
    if version == "jq-1.6":
        assert "seed numbers" not in differs


NODE_SIGNER = r"""
// Sign an approval (RFC 8785 + Ed25519) with Node's standard library only.
import { createPrivateKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";

// RFC 8785: JSON.stringify already writes numbers and strings the JCS way, and
// Array.prototype.sort orders keys by UTF-16 code units, as JCS does.
const jcs = (v) =>
  v === null || typeof v !== "object" ? JSON.stringify(v)
  : Array.isArray(v) ? `[${v.map(jcs).join(",")}]`
  : `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(",")}}`;

const approval = JSON.parse(readFileSync("approval.json", "utf8"));
delete approval.signature;
const key = createPrivateKey(readFileSync("producer.pem"));
approval.signature = sign(null, Buffer.from(jcs(approval)), key).toString("base64");
process.stdout.write(JSON.stringify(approval));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_ed25519_signature_verifies(tmp_path: Path) -> None:
    """The README's other language: Node's standard library, no package."""
    run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", "producer.pem"], tmp_path)
    key = run(["openssl", "pkey", "-in", "producer.pem", "-pubout"], tmp_path).stdout.decode()
    (tmp_path / "approval.json").write_text(
        APPROVAL.replace("KEY_ID", "desk-node").replace("ALGORITHM", "ed25519"))
    (tmp_path / "sign.mjs").write_text(NODE_SIGNER)
    raw = run(["node", "sign.mjs"], tmp_path).stdout
    ring = KeyRing.of(KeyEntry.ed25519("desk-node", public_key_from_text(key),
                                       ["strategy-desk"]))
    outcome = verify(raw, ring, NOW)
    assert isinstance(outcome, Verified), outcome
