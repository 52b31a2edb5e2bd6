-- Daily P&L whose read cost grows with (day, strategy) pairs, not with round trips: the sums
-- of trade_pnl_pre (0007) per UTC day of exit, strategy and whether the round trip has a
-- closed quantity (pnl() counts only those; daily_pnl counts every round trip with an exit
-- fill), kept by the audit writer. A round trip's exit day and P&L move as its fills arrive,
-- so no insert-time view can keep these sums: on each flush that stores signals or fills the
-- writer reads the sums of the flush's correlation ids before and after (pnl_daily_of, a
-- point read of pnl_rollup) and inserts after - before under a token of its own; a copy of
-- a stored event changes neither read, so nothing. On start it inserts the difference
-- between pnl_daily_all and pnl_daily (store.writer.rebuild_pnl_daily), which repairs what
-- a process that died between an events insert and its delta left out.
--
-- r_sum is the sum of r_multiple in Decimal (a Float64 sum would not come back to 0 when a
-- round trip's old r is taken out); avg r = r_sum / r_count, as avg() skips NULLs. Each r
-- goes through its shortest text (0.5 -> '0.5'): toDecimal256(0.5, 30) scales by an inexact
-- double (0.500000000000000009949...), so r's that sum to 0 would not. The ifNull: a NULL
-- r's hidden value may be inf (x / NULL's 0), which the conversion refuses even there.
-- SummingMergeTree drops a row whose sums are all 0: a day whose round trips all moved to
-- another day disappears. Read it with GROUP BY (sums of unmerged parts), never row by row.
-- Every statement may run again.
CREATE TABLE IF NOT EXISTS pnl_daily
(
    day Date,
    strategy_id String,
    -- 1: closed_quantity > 0
    closed UInt8,
    trades Int64,
    -- realized_pnl > 0 and < 0 (daily_pnl's losses are trades - wins: <= 0)
    wins Int64,
    losses Int64,
    realized_pnl Decimal(38, 6),
    commission Decimal(38, 6),
    r_sum Decimal(76, 30),
    r_count Int64
)
ENGINE = SummingMergeTree
ORDER BY (day, strategy_id, closed)
SETTINGS non_replicated_deduplication_window = 1000;

-- The correlation ids of one flush, under the writer's token for it: the reads below take
-- them from here (a 20,000-id text parameter cost more than the reads themselves). Kept a
-- day, long enough for a change to be retried; the writer writes them again if it retries.
CREATE TABLE IF NOT EXISTS pnl_ids
(
    token String,
    correlation_id UUID,
    created_at DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY (token, correlation_id)
TTL created_at + INTERVAL 1 DAY;

-- trade_pnl_pre for the correlation ids under {token:String} in pnl_ids:
-- the same columns, expressions and types, read by primary key (pnl_rollup's rows of those
-- ids, merged with GROUP BY instead of FINAL). The equivalence test holds it to
-- trade_pnl_pre (pnl_daily against pnl_daily_all), as it moves with 0005-0007.
CREATE OR REPLACE VIEW trade_pnl_of AS
WITH rollup AS
(
    SELECT
        correlation_id,
        sum(fills) AS fills,
        min(symbol_lo) AS symbol_lo,
        max(symbol_hi) AS symbol_hi,
        max(symbol) AS symbol,
        sum(buy_quantity) AS buy_quantity,
        sum(sell_quantity) AS sell_quantity,
        sum(buy_notional) AS buy_notional,
        sum(sell_notional) AS sell_notional,
        sum(buy_commission) AS buy_commission,
        sum(sell_commission) AS sell_commission,
        min(buy_first_at) AS buy_first_at,
        min(other_first_at) AS other_first_at,
        max(buy_last_at) AS buy_last_at,
        max(sell_last_at) AS sell_last_at,
        max(signal_side) AS signal_side,
        max(strategy_id) AS strategy_id,
        max(planned_risk) AS planned_risk
    FROM pnl_rollup
    PREWHERE correlation_id IN (SELECT correlation_id FROM pnl_ids WHERE token = {token:String})
    GROUP BY correlation_id
),
-- evaluated once (a scalar), usually empty: then the reads below select no granule
(
    SELECT groupArray(correlation_id)
    FROM
    (
        SELECT correlation_id
        FROM pnl_rollup
        PREWHERE correlation_id IN (SELECT correlation_id FROM pnl_ids WHERE token = {token:String})
        GROUP BY correlation_id
        HAVING sum(fills) > 0 AND min(symbol_lo) != max(symbol_hi)
    )
) AS several
SELECT
    correlation_id,
    symbol,
    strategy_id,
    closed_at,
    closed_quantity,
    realized_pnl,
    commission,
    r_multiple
FROM
(
    SELECT
        correlation_id,
        toString(symbol) AS symbol,
        toString(strategy_id) AS strategy_id,
        multiIf(signal_side = 1, 1, signal_side = 2, 0, buy_first_at < other_first_at) AS is_buy,
        if(is_buy, 1, -1) AS direction,
        if(is_buy, buy_quantity, sell_quantity) AS entry_quantity,
        if(is_buy, sell_quantity, buy_quantity) AS exit_quantity,
        least(entry_quantity, exit_quantity) AS closed_quantity,
        toDecimal128(round(if(is_buy, buy_notional, sell_notional) / nullIf(entry_quantity, 0), 6), 6) AS entry_price,
        toDecimal128(round(if(is_buy, sell_notional, buy_notional) / nullIf(exit_quantity, 0), 6), 6) AS exit_price,
        if(is_buy, buy_commission, sell_commission) AS entry_commission,
        if(is_buy, sell_commission, buy_commission) AS exit_commission,
        buy_commission + sell_commission AS commission,
        toNullable(if(is_buy, sell_last_at, buy_last_at)) AS closed_at,
        toDecimal128(round(ifNull(direction * (exit_price - entry_price) * closed_quantity, 0)
            - exit_commission - ifNull(entry_commission * closed_quantity / nullIf(entry_quantity, 0), 0), 6), 6)
            AS realized_pnl,
        toFloat64(direction * (exit_price - entry_price)) / toFloat64(nullIf(planned_risk, 0)) AS r_multiple
    FROM rollup
    WHERE fills > 0 AND symbol_lo = symbol_hi AND exit_quantity > 0
)
UNION ALL
-- Signals whose fills carry several symbols, per symbol: trades_pre's expressions (0006) over
-- the rows of those signals only (trades_pre itself would read every signal for its join).
SELECT
    correlation_id,
    toString(symbol) AS symbol,
    toString(strategy_id) AS strategy_id,
    closed_at,
    closed_quantity,
    toDecimal128(round(ifNull(direction * (exit_price - entry_price) * closed_quantity, 0)
        - exit_commission - ifNull(entry_commission * closed_quantity / nullIf(entry_quantity, 0), 0), 6), 6)
        AS realized_pnl,
    commission,
    toFloat64(direction * (exit_price - entry_price)) / toFloat64(nullIf(planned_risk_per_share, 0)) AS r_multiple
FROM
(
    SELECT
        f.correlation_id AS correlation_id,
        f.symbol AS symbol,
        s.strategy_id AS strategy_id,
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
        if(exit_quantity > 0, if(side = 'BUY', f.sell_last_at, f.buy_last_at), NULL) AS closed_at,
        abs(toDecimal128(s.planned_entry, 6) - toDecimal128(s.planned_stop, 6)) AS planned_risk_per_share
    FROM
    (
        SELECT
            correlation_id,
            symbol,
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
        WHERE correlation_id IN several
        GROUP BY correlation_id, symbol
    ) AS f
    LEFT JOIN
    (
        SELECT
            correlation_id,
            any(side) AS signal_side,
            any(strategy_id) AS strategy_id,
            any(entry_price) AS planned_entry,
            any(stop_loss) AS planned_stop
        FROM signals
        WHERE correlation_id IN several
        GROUP BY correlation_id
    ) AS s ON f.correlation_id = s.correlation_id
)
WHERE closed_at IS NOT NULL;

-- The pnl_daily rows of some round trips (pnl_daily_of: those under {token:String}) or of all
-- (pnl_daily_all: the backfill and the writer's repair at start).
CREATE OR REPLACE VIEW pnl_daily_of AS
SELECT
    toDate(closed_at, 'UTC') AS day,
    strategy_id,
    toUInt8(closed_quantity > 0) AS closed,
    toInt64(count()) AS trades,
    toInt64(countIf(pnl > 0)) AS wins,
    toInt64(countIf(pnl < 0)) AS losses,
    sum(pnl) AS realized_pnl,
    sum(fees) AS commission,
    sum(toDecimal256(toString(ifNull(r, 0)), 30)) AS r_sum,
    toInt64(count(r)) AS r_count
FROM
(
    SELECT closed_at, strategy_id, closed_quantity, realized_pnl AS pnl, commission AS fees,
        r_multiple AS r
    FROM trade_pnl_of(token = {token:String})
)
GROUP BY day, strategy_id, closed;

CREATE OR REPLACE VIEW pnl_daily_all AS
SELECT
    toDate(closed_at, 'UTC') AS day,
    strategy_id,
    toUInt8(closed_quantity > 0) AS closed,
    toInt64(count()) AS trades,
    toInt64(countIf(pnl > 0)) AS wins,
    toInt64(countIf(pnl < 0)) AS losses,
    sum(pnl) AS realized_pnl,
    sum(fees) AS commission,
    sum(toDecimal256(toString(ifNull(r, 0)), 30)) AS r_sum,
    toInt64(count(r)) AS r_count
FROM
(
    SELECT closed_at, strategy_id, closed_quantity, realized_pnl AS pnl, commission AS fees,
        r_multiple AS r
    FROM trade_pnl_pre
)
GROUP BY day, strategy_id, closed;

-- What was stored before this migration (not deduplicated as an insert: a re-run after a
-- failure must not be dropped as a copy).
TRUNCATE TABLE IF EXISTS pnl_daily;

INSERT INTO pnl_daily
SELECT day, strategy_id, closed, trades, wins, losses, realized_pnl, commission, r_sum, r_count
FROM pnl_daily_all
SETTINGS insert_deduplicate = 0;
