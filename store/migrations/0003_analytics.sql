-- Derived views the API, CLI and README analytics read. Plain views: always current.

-- Each order's current state, with the strategy of the signal it descends from.
CREATE VIEW IF NOT EXISTS orders AS
SELECT
    o.client_order_id AS client_order_id,
    o.correlation_id AS correlation_id,
    o.parent_client_order_id AS parent_client_order_id,
    o.leg AS leg,
    o.venue AS venue,
    o.account_id AS account_id,
    o.symbol AS symbol,
    o.side AS side,
    o.order_type AS order_type,
    o.quantity AS quantity,
    o.limit_price AS limit_price,
    o.stop_price AS stop_price,
    o.latest.1 AS status,
    o.latest.2 AS filled_quantity,
    o.latest.3 AS avg_fill_price,
    o.latest.4 AS venue_order_id,
    o.latest.5 AS reason_code,
    o.created_at AS created_at,
    o.updated_at AS updated_at,
    i.strategy_id AS strategy_id
FROM
(
    SELECT
        client_order_id,
        any(correlation_id) AS correlation_id,
        any(parent_client_order_id) AS parent_client_order_id,
        any(leg) AS leg,
        any(venue) AS venue,
        any(account_id) AS account_id,
        any(symbol) AS symbol,
        any(side) AS side,
        any(order_type) AS order_type,
        max(quantity) AS quantity,
        any(limit_price) AS limit_price,
        any(stop_price) AS stop_price,
        argMaxMerge(latest) AS latest,
        min(first_event_at) AS created_at,
        max(last_event_at) AS updated_at
    FROM orders_state
    GROUP BY client_order_id
) AS o
LEFT JOIN
(
    SELECT correlation_id, any(strategy_id) AS strategy_id
    FROM order_intents
    GROUP BY correlation_id
) AS i ON o.correlation_id = i.correlation_id;

-- Open positions: fills signed by side (BUY +, SELL -), per account and symbol.
CREATE VIEW IF NOT EXISTS positions AS
SELECT
    account_id,
    symbol,
    sumIf(toDecimal128(quantity, 6), side = 'BUY') - sumIf(toDecimal128(quantity, 6), side = 'SELL') AS net_quantity,
    sumIf(toDecimal128(quantity, 6), side = 'BUY') AS bought_quantity,
    sumIf(toDecimal128(quantity, 6), side = 'SELL') AS sold_quantity,
    toDecimal128(round(sumIf(toDecimal128(quantity, 6) * price, side = 'BUY')
        / nullIf(sumIf(toDecimal128(quantity, 6), side = 'BUY'), 0), 6), 6) AS avg_buy_price,
    toDecimal128(round(sumIf(toDecimal128(quantity, 6) * price, side = 'SELL')
        / nullIf(sumIf(toDecimal128(quantity, 6), side = 'SELL'), 0), 6), 6) AS avg_sell_price,
    if(net_quantity > 0, avg_buy_price, avg_sell_price) AS avg_price,
    sum(toDecimal128(commission, 6)) AS commission,
    max(occurred_at) AS last_fill_at
FROM fills FINAL
GROUP BY account_id, symbol
HAVING net_quantity != 0;

-- Round trips: per signal (correlation_id) and symbol, entry fills (the signal's side, else
-- the first fill's side) against exit fills (the other side). Realized P&L is net of all
-- commissions (entry commission pro rata to the closed quantity); the R multiple is the
-- price move per share over the signal's planned risk |entry - stop|.
CREATE VIEW IF NOT EXISTS trades AS
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
        - exit_commission - entry_commission * closed_quantity / entry_quantity, 6), 6) AS realized_pnl,
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
);

-- Realized P&L per UTC day (of the exit) and strategy.
CREATE VIEW IF NOT EXISTS daily_pnl AS
SELECT
    toDate(closed_at, 'UTC') AS day,
    strategy_id,
    count() AS trades,
    countIf(pnl > 0) AS wins,
    countIf(pnl <= 0) AS losses,
    sum(pnl) AS realized_pnl,
    sum(fees) AS commission,
    avg(r) AS avg_r_multiple
FROM
(
    SELECT closed_at, strategy_id, realized_pnl AS pnl, commission AS fees, r_multiple AS r
    FROM trades
    WHERE closed_at IS NOT NULL
)
GROUP BY day, strategy_id;

-- When each stage of a signal's chain first happened (entry leg only), one row per signal.
CREATE VIEW IF NOT EXISTS stage_times AS
SELECT
    correlation_id,
    anyIf(symbol, symbol != '') AS symbol,
    anyIf(strategy_id, strategy_id != '') AS strategy_id,
    minIf(toNullable(at), stage = 'signal') AS signal_at,
    minIf(toNullable(at), stage = 'approval') AS approved_at,
    minIf(toNullable(at), stage = 'intent') AS intent_at,
    minIf(toNullable(at), stage = 'submitted') AS submitted_at,
    minIf(toNullable(at), stage = 'accepted') AS acknowledged_at,
    ifNull(minIf(toNullable(at), stage = 'filled'), maxIf(toNullable(at), stage = 'fill')) AS filled_at
FROM
(
    SELECT correlation_id, 'signal' AS stage, occurred_at AS at, toString(symbol) AS symbol,
        toString(strategy_id) AS strategy_id
    FROM signals
    UNION ALL
    SELECT correlation_id, 'approval', decided_at, toString(symbol), toString(strategy_id)
    FROM approvals
    UNION ALL
    SELECT correlation_id, 'intent', occurred_at, toString(symbol), toString(strategy_id)
    FROM order_intents
    UNION ALL
    SELECT correlation_id, toString(status), occurred_at, toString(symbol), ''
    FROM order_events WHERE leg = 'entry'
    UNION ALL
    SELECT correlation_id, 'fill', occurred_at, toString(symbol), ''
    FROM fills WHERE leg = 'entry'
)
GROUP BY correlation_id;

-- Per-stage latency in milliseconds; NULL where a stage has not happened.
CREATE VIEW IF NOT EXISTS stage_latency AS
SELECT
    correlation_id,
    symbol,
    strategy_id,
    signal_at,
    approved_at,
    intent_at,
    submitted_at,
    acknowledged_at,
    filled_at,
    dateDiff('microsecond', signal_at, approved_at) / 1000.0 AS signal_to_approval_ms,
    dateDiff('microsecond', approved_at, intent_at) / 1000.0 AS approval_to_intent_ms,
    dateDiff('microsecond', intent_at, submitted_at) / 1000.0 AS intent_to_submitted_ms,
    dateDiff('microsecond', submitted_at, acknowledged_at) / 1000.0 AS submitted_to_acknowledged_ms,
    dateDiff('microsecond', acknowledged_at, filled_at) / 1000.0 AS acknowledged_to_filled_ms,
    dateDiff('microsecond', signal_at, filled_at) / 1000.0 AS signal_to_filled_ms
FROM stage_times;

-- Slippage of entry fills against the intended price (the intent's limit price, else the
-- signal's entry price); positive = worse for us (paid more on a buy, got less on a sell).
CREATE VIEW IF NOT EXISTS slippage AS
SELECT
    f.event_id AS fill_event_id,
    f.correlation_id AS correlation_id,
    f.client_order_id AS client_order_id,
    f.symbol AS symbol,
    f.side AS side,
    i.strategy_id AS strategy_id,
    i.order_type AS order_type,
    f.occurred_at AS occurred_at,
    f.quantity AS quantity,
    f.price AS fill_price,
    toDecimal64(ifNull(i.limit_price, s.planned_entry), 6) AS intended_price,
    toDecimal128(if(f.side = 'BUY', f.price - intended_price, intended_price - f.price), 6) AS slippage_per_share,
    toDecimal128(round(slippage_per_share * f.quantity, 6), 6) AS slippage_cost,
    toFloat64(slippage_per_share) / toFloat64(intended_price) * 10000 AS slippage_bps
FROM fills AS f FINAL
INNER JOIN
(
    SELECT client_order_id, any(strategy_id) AS strategy_id, any(order_type) AS order_type,
        any(limit_price) AS limit_price
    FROM order_intents
    GROUP BY client_order_id
) AS i ON f.client_order_id = i.client_order_id
LEFT JOIN
(
    SELECT correlation_id, any(entry_price) AS planned_entry
    FROM signals
    GROUP BY correlation_id
) AS s ON f.correlation_id = s.correlation_id
WHERE ifNull(i.limit_price, s.planned_entry) IS NOT NULL AND ifNull(i.limit_price, s.planned_entry) > 0;

-- Who approved or rejected which signal, when, and how long after the signal.
CREATE VIEW IF NOT EXISTS approval_audit AS
SELECT
    event_id,
    correlation_id,
    signal_id,
    symbol,
    side,
    strategy_id,
    decision,
    approved_by,
    reason,
    signal_at,
    decided_at,
    dateDiff('microsecond', signal_at, decided_at) / 1000000.0 AS decision_seconds
FROM approvals FINAL;
