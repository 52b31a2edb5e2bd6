"""The live-trading guard: a live account starts only when named by LIVE_TRADING_ACCOUNT, and
trades only on an admin's signed go-live decision, at its ramp (agents.decisions.rollout.
live_settings, called by the sizing stage before decide(); `live_guard` here then sees the
grant's settings)."""

from __future__ import annotations

from agents.decisions.config import RiskSettings
from agents.decisions.exceptions import LiveTradingRefused
from agents.decisions.reasons import ReasonCode, Refusal
from brokers.port import AccountKind, AccountSnapshot

IB_PAPER_PREFIX = "D"


def account_kind_from_id(account_id: str) -> AccountKind:
    """Interactive Brokers paper accounts start with 'D' (e.g. DU1234567); all else is live."""
    if account_id.strip().upper().startswith(IB_PAPER_PREFIX):
        return AccountKind.PAPER
    return AccountKind.LIVE


def live_enabled(account_id: str, kind: AccountKind, settings: RiskSettings) -> bool:
    """Paper always; live only for the one account named by LIVE_TRADING_ACCOUNT."""
    if kind is not AccountKind.LIVE:
        return True
    enabled = settings.live_trading_account.strip()
    return bool(enabled) and enabled == account_id.strip()


def check_account_mode(account_id: str, kind: AccountKind | None, settings: RiskSettings) -> None:
    """Fail fast at start-up rather than place a live order by accident."""
    resolved = account_kind_from_id(account_id) if kind is None else kind
    if not live_enabled(account_id, resolved, settings):
        raise LiveTradingRefused(account_id, settings.live_trading_account)


def live_guard(account: AccountSnapshot, settings: RiskSettings) -> Refusal | None:
    """The same guard per decision, as a Refusal so the refusal is on record."""
    if live_enabled(account.account_id, account.kind, settings):
        return None
    return Refusal.of(
        ReasonCode.LIVE_TRADING_NOT_ENABLED,
        f"account {account.account_id} is live and LIVE_TRADING_ACCOUNT does not enable it",
        "live_guard",
        account_id=account.account_id,
        kind=account.kind,
        live_trading_account=settings.live_trading_account,
    )
