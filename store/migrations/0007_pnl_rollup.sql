-- Daily P&L without a join and without a GROUP BY over every round trip: one row per signal
-- (correlation_id) holding both the fill sums and what the P&L needs from the signal
-- (strategy, side, planned risk), maintained at insert and read with FINAL (a merge of
-- already sorted parts, no hash table). daily_pnl_pre and store.queries.Queries.pnl read
-- the per-trade view trade_pnl_pre, which gives trades' closed_at, closed_quantity,
-- realized_pnl, commission and r_multiple for every round trip with an exit fill, in the
-- same Decimal types and by the same expressions as trades (0005) and trades_pre (0006).
--
-- Every column is an idempotent or additive aggregate of one kind of row: fill rows come
-- from fill_firsts (first copies only, as trades_agg), signal rows from the signals table
-- (a copy of a signal changes no max). Without NULLs and without an argMin state: a fill
-- row sets the signal columns to their neutral value and a signal row the fill columns.
--
-- Round trips of one signal over several symbols (the views split them per symbol; one row
-- per signal cannot) are recognised by their symbols' hashes and taken from trades_pre.
-- What the views leave to chance is settled: the entry side of a trade with no BUY or SELL
-- signal is BUY when its first BUY fill is strictly earlier than any other fill (the views'
-- argMin picks either on a tie to the microsecond); several signals with one correlation
-- id (never produced) give the greatest strategy, side and risk, not any one of them.
-- Every statement may run again.
CREATE TABLE IF NOT EXISTS pnl_rollup
(
    correlation_id UUID,
    fills SimpleAggregateFunction(sum, UInt64),
    -- cityHash64 of the fills' symbols: one symbol when equal (signal rows: max and 0)
    symbol_lo SimpleAggregateFunction(min, UInt64),
    symbol_hi SimpleAggregateFunction(max, UInt64),
    symbol SimpleAggregateFunction(max, String),
    buy_quantity SimpleAggregateFunction(sum, Decimal(38, 6)),
    sell_quantity SimpleAggregateFunction(sum, Decimal(38, 6)),
    buy_notional SimpleAggregateFunction(sum, Decimal(38, 12)),
    sell_notional SimpleAggregateFunction(sum, Decimal(38, 12)),
    buy_commission SimpleAggregateFunction(sum, Decimal(38, 6)),
    sell_commission SimpleAggregateFunction(sum, Decimal(38, 6)),
    -- first BUY fill and first fill of any other side (2299-12-31 when none)
    buy_first_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    other_first_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    -- last fill per side (1970 when none)
    buy_last_at SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    sell_last_at SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    -- the signal's side: 1 BUY, 2 SELL, 0 none or other
    signal_side SimpleAggregateFunction(max, UInt8),
    strategy_id SimpleAggregateFunction(max, String),
    -- |entry - stop| of the signal, 0 when either is missing (r_multiple is NULL either way)
    planned_risk SimpleAggregateFunction(max, Decimal(38, 6))
)
ENGINE = AggregatingMergeTree
ORDER BY correlation_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS pnl_rollup_fills_mv TO pnl_rollup AS
SELECT
    correlation_id,
    count() AS fills,
    min(cityHash64(toString(fill_firsts.symbol))) AS symbol_lo,
    max(cityHash64(toString(fill_firsts.symbol))) AS symbol_hi,
    max(toString(symbol)) AS symbol,
    sumIf(toDecimal128(quantity, 6), side = 'BUY') AS buy_quantity,
    sumIf(toDecimal128(quantity, 6), side = 'SELL') AS sell_quantity,
    sumIf(toDecimal128(quantity, 6) * price, side = 'BUY') AS buy_notional,
    sumIf(toDecimal128(quantity, 6) * price, side = 'SELL') AS sell_notional,
    sumIf(toDecimal128(commission, 6), side = 'BUY') AS buy_commission,
    sumIf(toDecimal128(commission, 6), side = 'SELL') AS sell_commission,
    min(if(side = 'BUY', occurred_at, toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC')))
        AS buy_first_at,
    min(if(side != 'BUY', occurred_at, toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC')))
        AS other_first_at,
    max(if(side = 'BUY', occurred_at, toDateTime64(0, 6, 'UTC'))) AS buy_last_at,
    max(if(side = 'SELL', occurred_at, toDateTime64(0, 6, 'UTC'))) AS sell_last_at,
    toUInt8(0) AS signal_side,
    '' AS strategy_id,
    toDecimal128(0, 6) AS planned_risk
FROM fill_firsts
GROUP BY correlation_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS pnl_rollup_signals_mv TO pnl_rollup AS
SELECT
    correlation_id,
    toUInt64(0) AS fills,
    toUInt64(18446744073709551615) AS symbol_lo,
    toUInt64(0) AS symbol_hi,
    '' AS symbol,
    toDecimal128(0, 6) AS buy_quantity,
    toDecimal128(0, 6) AS sell_quantity,
    toDecimal128(0, 12) AS buy_notional,
    toDecimal128(0, 12) AS sell_notional,
    toDecimal128(0, 6) AS buy_commission,
    toDecimal128(0, 6) AS sell_commission,
    toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC') AS buy_first_at,
    toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC') AS other_first_at,
    toDateTime64(0, 6, 'UTC') AS buy_last_at,
    toDateTime64(0, 6, 'UTC') AS sell_last_at,
    max(multiIf(side = 'BUY', 1, side = 'SELL', 2, 0)) AS signal_side,
    max(toString(strategy_id)) AS strategy_id,
    max(ifNull(abs(toDecimal128(entry_price, 6) - toDecimal128(stop_loss, 6)), 0)) AS planned_risk
FROM signals
GROUP BY correlation_id;

-- What was stored before this migration (not deduplicated as an insert: a re-run after a
-- failure must not be dropped as a copy).
TRUNCATE TABLE IF EXISTS pnl_rollup;

INSERT INTO pnl_rollup
SELECT
    correlation_id,
    count() AS fills,
    min(cityHash64(toString(fill_firsts.symbol))) AS symbol_lo,
    max(cityHash64(toString(fill_firsts.symbol))) AS symbol_hi,
    max(toString(symbol)) AS symbol,
    sumIf(toDecimal128(quantity, 6), side = 'BUY') AS buy_quantity,
    sumIf(toDecimal128(quantity, 6), side = 'SELL') AS sell_quantity,
    sumIf(toDecimal128(quantity, 6) * price, side = 'BUY') AS buy_notional,
    sumIf(toDecimal128(quantity, 6) * price, side = 'SELL') AS sell_notional,
    sumIf(toDecimal128(commission, 6), side = 'BUY') AS buy_commission,
    sumIf(toDecimal128(commission, 6), side = 'SELL') AS sell_commission,
    min(if(side = 'BUY', occurred_at, toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC')))
        AS buy_first_at,
    min(if(side != 'BUY', occurred_at, toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC')))
        AS other_first_at,
    max(if(side = 'BUY', occurred_at, toDateTime64(0, 6, 'UTC'))) AS buy_last_at,
    max(if(side = 'SELL', occurred_at, toDateTime64(0, 6, 'UTC'))) AS sell_last_at,
    toUInt8(0) AS signal_side,
    '' AS strategy_id,
    toDecimal128(0, 6) AS planned_risk
FROM fill_firsts
GROUP BY correlation_id
SETTINGS insert_deduplicate = 0;

INSERT INTO pnl_rollup
SELECT
    correlation_id,
    toUInt64(0) AS fills,
    toUInt64(18446744073709551615) AS symbol_lo,
    toUInt64(0) AS symbol_hi,
    '' AS symbol,
    toDecimal128(0, 6) AS buy_quantity,
    toDecimal128(0, 6) AS sell_quantity,
    toDecimal128(0, 12) AS buy_notional,
    toDecimal128(0, 12) AS sell_notional,
    toDecimal128(0, 6) AS buy_commission,
    toDecimal128(0, 6) AS sell_commission,
    toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC') AS buy_first_at,
    toDateTime64('2299-12-31 23:59:59.999999', 6, 'UTC') AS other_first_at,
    toDateTime64(0, 6, 'UTC') AS buy_last_at,
    toDateTime64(0, 6, 'UTC') AS sell_last_at,
    max(multiIf(side = 'BUY', 1, side = 'SELL', 2, 0)) AS signal_side,
    max(toString(strategy_id)) AS strategy_id,
    max(ifNull(abs(toDecimal128(entry_price, 6) - toDecimal128(stop_loss, 6)), 0)) AS planned_risk
FROM signals
GROUP BY correlation_id
SETTINGS insert_deduplicate = 0;

-- Round trips with an exit fill (closed_at set): from the rollup when the signal's fills
-- have one symbol, else from trades_pre (its per-symbol rows). The expressions are those of
-- trades (0005) with the signal's side as a flag; closed_at is never NULL here.
CREATE OR REPLACE VIEW trade_pnl_pre AS
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
    FROM pnl_rollup FINAL
    WHERE fills > 0 AND symbol_lo = symbol_hi AND exit_quantity > 0
)
UNION ALL
SELECT
    correlation_id,
    toString(symbol) AS symbol,
    toString(strategy_id) AS strategy_id,
    closed_at,
    closed_quantity,
    realized_pnl,
    commission,
    r_multiple
FROM trades_pre
WHERE closed_at IS NOT NULL AND correlation_id IN
(
    SELECT correlation_id FROM pnl_rollup FINAL WHERE fills > 0 AND symbol_lo != symbol_hi
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
    FROM trade_pnl_pre
)
GROUP BY day, strategy_id;
