-- Pre-aggregates maintained at insert, so trade history, positions and daily P&L read
-- thousands of rows, not every fill: per round trip (correlation_id, symbol) and per
-- (account_id, symbol) the sums, counts and first/last times the trades and positions views
-- compute from `fills FINAL`, in the same Decimal types (so the same answers).
--
-- Sums are not idempotent: a fill stored twice would count twice. The audit log keeps every
-- record as it arrived (a fill produced again lands at another offset), so each events row
-- now says whether its event id was stored before (`duplicate`, set by the audit writer,
-- which looks the batch's fill ids up in `fill_firsts` before the first insert attempt; a
-- signal's events share a key, so one partition and one writer see every copy of an event).
-- Only first copies feed the sums. A retried batch (same token) is dropped by each target's
-- dedup window, as for the typed tables. Every statement may run again.

-- The first copy of each fill, typed as fills_mv types it, by day of the fill (a copy
-- carries the same payload, so the same day): the writer's look-up reads only the days of
-- its batch. The sums below are fed from this table, not from events, so a fill reached
-- the sums exactly when it reached this table: after a refused batch is undone, the writer
-- checks its halves again and a fill that got here is not counted twice.
CREATE TABLE IF NOT EXISTS fill_firsts
(
    day Date,
    event_id UUID,
    correlation_id UUID,
    occurred_at DateTime64(6, 'UTC'),
    account_id LowCardinality(String),
    symbol LowCardinality(String),
    side LowCardinality(String),
    quantity Decimal(18, 6),
    price Decimal(18, 6),
    commission Decimal(18, 6)
)
ENGINE = ReplacingMergeTree
ORDER BY (day, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

ALTER TABLE events ADD COLUMN IF NOT EXISTS duplicate UInt8 DEFAULT 0;

CREATE TABLE IF NOT EXISTS trades_agg
(
    correlation_id UUID,
    symbol LowCardinality(String),
    account_id SimpleAggregateFunction(any, String),
    first_side AggregateFunction(argMin, String, DateTime64(6, 'UTC')),
    buy_quantity SimpleAggregateFunction(sum, Decimal(38, 6)),
    sell_quantity SimpleAggregateFunction(sum, Decimal(38, 6)),
    buy_notional SimpleAggregateFunction(sum, Decimal(38, 12)),
    sell_notional SimpleAggregateFunction(sum, Decimal(38, 12)),
    buy_commission SimpleAggregateFunction(sum, Decimal(38, 6)),
    sell_commission SimpleAggregateFunction(sum, Decimal(38, 6)),
    -- NULL when the part has no fill of that side (the views' minIf gives 1970 then)
    buy_first_at SimpleAggregateFunction(min, Nullable(DateTime64(6, 'UTC'))),
    buy_last_at SimpleAggregateFunction(max, Nullable(DateTime64(6, 'UTC'))),
    sell_first_at SimpleAggregateFunction(min, Nullable(DateTime64(6, 'UTC'))),
    sell_last_at SimpleAggregateFunction(max, Nullable(DateTime64(6, 'UTC')))
)
ENGINE = AggregatingMergeTree
ORDER BY (correlation_id, symbol)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS positions_agg
(
    account_id LowCardinality(String),
    symbol LowCardinality(String),
    bought_quantity SimpleAggregateFunction(sum, Decimal(38, 6)),
    sold_quantity SimpleAggregateFunction(sum, Decimal(38, 6)),
    buy_notional SimpleAggregateFunction(sum, Decimal(38, 12)),
    sell_notional SimpleAggregateFunction(sum, Decimal(38, 12)),
    commission SimpleAggregateFunction(sum, Decimal(38, 6)),
    last_fill_at SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (account_id, symbol)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS fill_firsts_mv TO fill_firsts AS
SELECT
    toDate(occurred_at, 'UTC') AS day,
    event_id,
    correlation_id,
    occurred_at,
    JSONExtractString(payload, 'account_id') AS account_id,
    JSONExtractString(payload, 'symbol') AS symbol,
    JSONExtractString(payload, 'side') AS side,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'quantity')), 6) AS quantity,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'price')), 6) AS price,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'commission')), 6) AS commission
FROM events
WHERE event_type = 'fill' AND duplicate = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS trades_agg_mv TO trades_agg AS
SELECT
    correlation_id,
    symbol,
    any(toString(account_id)) AS account_id,
    argMinState(toString(side), occurred_at) AS first_side,
    sumIf(toDecimal128(quantity, 6), side = 'BUY') AS buy_quantity,
    sumIf(toDecimal128(quantity, 6), side = 'SELL') AS sell_quantity,
    sumIf(toDecimal128(quantity, 6) * price, side = 'BUY') AS buy_notional,
    sumIf(toDecimal128(quantity, 6) * price, side = 'SELL') AS sell_notional,
    sumIf(toDecimal128(commission, 6), side = 'BUY') AS buy_commission,
    sumIf(toDecimal128(commission, 6), side = 'SELL') AS sell_commission,
    minIf(toNullable(occurred_at), side = 'BUY') AS buy_first_at,
    maxIf(toNullable(occurred_at), side = 'BUY') AS buy_last_at,
    minIf(toNullable(occurred_at), side = 'SELL') AS sell_first_at,
    maxIf(toNullable(occurred_at), side = 'SELL') AS sell_last_at
FROM fill_firsts
GROUP BY correlation_id, symbol;

CREATE MATERIALIZED VIEW IF NOT EXISTS positions_agg_mv TO positions_agg AS
SELECT
    account_id,
    symbol,
    sumIf(toDecimal128(quantity, 6), side = 'BUY') AS bought_quantity,
    sumIf(toDecimal128(quantity, 6), side = 'SELL') AS sold_quantity,
    sumIf(toDecimal128(quantity, 6) * price, side = 'BUY') AS buy_notional,
    sumIf(toDecimal128(quantity, 6) * price, side = 'SELL') AS sell_notional,
    sum(toDecimal128(commission, 6)) AS commission,
    max(occurred_at) AS last_fill_at
FROM fill_firsts
GROUP BY account_id, symbol;

-- What was stored before this migration, from the deduplicated typed table. Not
-- deduplicated as an insert: a re-run after a failure must not be dropped as a copy.
TRUNCATE TABLE IF EXISTS fill_firsts;
TRUNCATE TABLE IF EXISTS trades_agg;
TRUNCATE TABLE IF EXISTS positions_agg;

-- Into fill_firsts only: its views fill trades_agg and positions_agg from it.
INSERT INTO fill_firsts
SELECT toDate(occurred_at, 'UTC') AS day, event_id, correlation_id, occurred_at, account_id,
    symbol, side, quantity, price, commission
FROM fills FINAL
SETTINGS insert_deduplicate = 0;

-- The views over the pre-aggregates: the same columns and expressions as positions, trades
-- and daily_pnl (0003, 0005), reading per-trade and per-position sums instead of every fill.
CREATE OR REPLACE VIEW positions_pre AS
SELECT
    account_id,
    symbol,
    bought - sold AS net_quantity,
    bought AS bought_quantity,
    sold AS sold_quantity,
    toDecimal128(round(buy_notional / nullIf(bought, 0), 6), 6) AS avg_buy_price,
    toDecimal128(round(sell_notional / nullIf(sold, 0), 6), 6) AS avg_sell_price,
    if(net_quantity > 0, avg_buy_price, avg_sell_price) AS avg_price,
    fees AS commission,
    last_at AS last_fill_at
FROM
(
    SELECT
        account_id,
        symbol,
        sum(bought_quantity) AS bought,
        sum(sold_quantity) AS sold,
        sum(buy_notional) AS buy_notional,
        sum(sell_notional) AS sell_notional,
        sum(commission) AS fees,
        max(last_fill_at) AS last_at
    FROM positions_agg
    GROUP BY account_id, symbol
)
WHERE net_quantity != 0;

CREATE OR REPLACE VIEW trades_pre AS
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
            argMinMerge(first_side) AS first_side,
            sum(buy_quantity) AS buy_quantity,
            sum(sell_quantity) AS sell_quantity,
            sum(buy_notional) AS buy_notional,
            sum(sell_notional) AS sell_notional,
            sum(buy_commission) AS buy_commission,
            sum(sell_commission) AS sell_commission,
            ifNull(min(buy_first_at), toDateTime64(0, 6, 'UTC')) AS buy_first_at,
            ifNull(max(buy_last_at), toDateTime64(0, 6, 'UTC')) AS buy_last_at,
            ifNull(min(sell_first_at), toDateTime64(0, 6, 'UTC')) AS sell_first_at,
            ifNull(max(sell_last_at), toDateTime64(0, 6, 'UTC')) AS sell_last_at
        FROM trades_agg
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

CREATE OR REPLACE VIEW daily_pnl_pre AS
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
    FROM trades_pre
    WHERE closed_at IS NOT NULL
)
GROUP BY day, strategy_id;
