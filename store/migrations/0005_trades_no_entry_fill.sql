-- trades, as in 0003, except a round trip with exit fills but no entry fill (entry quantity
-- 0, so closed quantity 0): its entry commission share is 0 instead of a division by zero
-- that failed every read of trades and daily_pnl (ClickHouse evaluates Decimal x / 0 as an
-- error, code 153). Nothing else changes; CREATE OR REPLACE makes it safe to run again.
-- Reads of the newest trades and orders go through store.queries.Probe (no schema needed).

-- Round trips: per signal (correlation_id) and symbol, entry fills (the signal's side, else
-- the first fill's side) against exit fills (the other side). Realized P&L is net of all
-- commissions (entry commission pro rata to the closed quantity); the R multiple is the
-- price move per share over the signal's planned risk |entry - stop|.
CREATE OR REPLACE VIEW trades AS
SELECT
    correlation_id,
    symbol,
    account_id,
    strategy_id,
    signal_id,
    side,
    entry_quantity,
    exit_quantity,
    entry_price,
    exit_price,
    commission,
    opened_at,
    closed_at,
    if(entry_quantity > 0 AND exit_quantity >= entry_quantity, 'closed', 'open') AS status,
    closed_quantity,
    toDecimal128(round(ifNull(direction * (exit_price - entry_price) * closed_quantity, 0)
        - exit_commission - ifNull(entry_commission * closed_quantity / nullIf(entry_quantity, 0), 0), 6), 6)
        AS realized_pnl,
    planned_risk_per_share,
    toFloat64(direction * (exit_price - entry_price)) / toFloat64(nullIf(planned_risk_per_share, 0)) AS r_multiple,
    if(closed_at IS NULL, NULL, dateDiff('microsecond', opened_at, closed_at) / 1000000.0) AS holding_seconds
FROM
(
    SELECT
        f.correlation_id AS correlation_id,
        f.symbol AS symbol,
        f.account_id AS account_id,
        s.strategy_id AS strategy_id,
        s.signal_id AS signal_id,
        if(s.signal_side IN ('BUY', 'SELL'), s.signal_side, f.first_side) AS side,
        if(side = 'BUY', 1, -1) AS direction,
        if(side = 'BUY', f.buy_quantity, f.sell_quantity) AS entry_quantity,
        if(side = 'BUY', f.sell_quantity, f.buy_quantity) AS exit_quantity,
        least(entry_quantity, exit_quantity) AS closed_quantity,
        toDecimal128(round(if(side = 'BUY', f.buy_notional, f.sell_notional) / nullIf(entry_quantity, 0), 6), 6) AS entry_price,
        toDecimal128(round(if(side = 'BUY', f.sell_notional, f.buy_notional) / nullIf(exit_quantity, 0), 6), 6) AS exit_price,
        if(side = 'BUY', f.buy_commission, f.sell_commission) AS entry_commission,
        if(side = 'BUY', f.sell_commission, f.buy_commission) AS exit_commission,
        f.buy_commission + f.sell_commission AS commission,
        if(side = 'BUY', f.buy_first_at, f.sell_first_at) AS opened_at,
        if(exit_quantity > 0, if(side = 'BUY', f.sell_last_at, f.buy_last_at), NULL) AS closed_at,
        abs(toDecimal128(s.planned_entry, 6) - toDecimal128(s.planned_stop, 6)) AS planned_risk_per_share
    FROM
    (
        SELECT
            correlation_id,
            symbol,
            any(account_id) AS account_id,
            argMin(side, occurred_at) AS first_side,
            sumIf(toDecimal128(quantity, 6), side = 'BUY') AS buy_quantity,
            sumIf(toDecimal128(quantity, 6), side = 'SELL') AS sell_quantity,
            sumIf(toDecimal128(quantity, 6) * price, side = 'BUY') AS buy_notional,
            sumIf(toDecimal128(quantity, 6) * price, side = 'SELL') AS sell_notional,
            sumIf(toDecimal128(commission, 6), side = 'BUY') AS buy_commission,
            sumIf(toDecimal128(commission, 6), side = 'SELL') AS sell_commission,
            minIf(occurred_at, side = 'BUY') AS buy_first_at,
            maxIf(occurred_at, side = 'BUY') AS buy_last_at,
            minIf(occurred_at, side = 'SELL') AS sell_first_at,
            maxIf(occurred_at, side = 'SELL') AS sell_last_at
        FROM fills FINAL
        GROUP BY correlation_id, symbol
    ) AS f
    LEFT JOIN
    (
        SELECT
            correlation_id,
            any(side) AS signal_side,
            any(strategy_id) AS strategy_id,
            any(signal_id) AS signal_id,
            any(entry_price) AS planned_entry,
            any(stop_loss) AS planned_stop
        FROM signals
        GROUP BY correlation_id
    ) AS s ON f.correlation_id = s.correlation_id
);;
