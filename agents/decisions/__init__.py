"""Pure decision logic: validate a signal, size it by risk, check pre-trade limits.

No I/O, no clock: the caller passes the account, positions and `now`. One entry point,
`decide`, turns an approval into an OrderIntent or a Rejection with a reason code.
"""

from agents.decisions.config import RiskSettings, settings_table
from agents.decisions.decide import decide, reject_approval, reject_signal, rejection_from
from agents.decisions.exceptions import LiveTradingRefused
from agents.decisions.instruments import (
    Instrument,
    InstrumentBook,
    round_price_to_tick,
    round_qty_down,
)
from agents.decisions.limits import check_limits
from agents.decisions.live import account_kind_from_id, check_account_mode
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.sizing import Sizing, size_position
from agents.decisions.validation import (
    parse_approval,
    parse_signal,
    validate_approval,
    validate_signal,
)

__all__ = [
    "Instrument",
    "InstrumentBook",
    "LiveTradingRefused",
    "ReasonCode",
    "Refusal",
    "RiskSettings",
    "Sizing",
    "account_kind_from_id",
    "check_account_mode",
    "check_limits",
    "decide",
    "parse_approval",
    "parse_signal",
    "reject_approval",
    "reject_signal",
    "rejection_from",
    "round_price_to_tick",
    "round_qty_down",
    "settings_table",
    "size_position",
    "validate_approval",
    "validate_signal",
]
