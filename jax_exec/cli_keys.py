"""`jax-exec keys ...`: the approval keyring (public keys and upstream HMAC secrets) and the
approvers' own signing keys under JAX_HOME/keys. No secret is ever printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jax_exec.settings import Settings

keys_app = typer.Typer(help="Approval keys: who may approve (public keys only in the pipeline)",
                       no_args_is_help=True)
console = Console()


def _where() -> tuple[Path, Path | None]:
    settings = Settings()
    return settings.jax_home, settings.approval_keyring


@keys_app.command("add")
def add(name: str) -> None:
    """An Ed25519 signing key for approver NAME (kept in JAX_HOME/keys/approvers, 0600), its
    public key in the keyring."""
    from jax_exec.keys import ensure_approver_key, private_key_path

    home, ring = _where()
    key_id = ensure_approver_key(home, name, ring)
    console.print(f"approver {name}: key {key_id} (private key {private_key_path(home, name)})")


@keys_app.command("add-public")
def add_public(
    key_id: str,
    pem: Annotated[Path, typer.Option("--pem", help="The producer's Ed25519 public key (PEM)")],
    signs_for: Annotated[list[str], typer.Option("--signs-for", help="Approver names")],
) -> None:
    """Accept approvals signed by an upstream producer's Ed25519 key."""
    from jax_exec.keys import add_public_key, keyring_path

    home, ring = _where()
    add_public_key(keyring_path(home, ring), key_id, pem.read_text(), signs_for)
    console.print(f"key {key_id} may sign for {', '.join(signs_for)}")


@keys_app.command("add-hmac")
def add_hmac(
    key_id: str,
    signs_for: Annotated[list[str], typer.Option("--signs-for", help="Approver names")],
) -> None:
    """A shared HMAC-SHA256 secret for an upstream system that cannot hold a private key; the
    secret is written to a 0600 file whose path is printed (hand it over out of band)."""
    from jax_exec.keys import add_hmac_key, keyring_path

    home, ring = _where()
    path = add_hmac_key(keyring_path(home, ring), key_id, signs_for)
    console.print(f"key {key_id} (hmac-sha256): secret in {path}")


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Refuse every approval signed with KEY_ID from now on (restart the workers)."""
    from jax_exec.keys import keyring_path, revoke_key

    home, ring = _where()
    revoke_key(keyring_path(home, ring), key_id)
    console.print(f"key {key_id} revoked; restart the workers to apply it")


@keys_app.command("list")
def list_keys() -> None:
    """The keyring: key ids, algorithms, whom each may sign for, revoked or not."""
    from jax_exec.keys import keyring_path, read_document

    home, ring = _where()
    path = keyring_path(home, ring)
    table = Table("key id", "algorithm", "signs for", "revoked", title=str(path))
    for key in read_document(path)["keys"] if path.exists() else []:
        table.add_row(key["key_id"], key["algorithm"], ", ".join(key["signs_for"]),
                      "yes" if key.get("revoked") else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
