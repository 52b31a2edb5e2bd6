-- The writer's reads of pnl_daily's sums (0008) read only what a flush can have changed.
--
-- trade_pnl_of (0008) reads every part of pnl_rollup for every id of a flush: ids spread over
-- the whole key range, so every granule holds one, and each flush read the whole table (a
-- 20,000-id read of a 1,060,000-row pnl_rollup took 210 ms at 5 M events, and grew with it).
-- Most of a bulk flush's round trips are new: pnl_rollup had no row of them before the flush,
-- so their rows are all in the parts its inserts wrote. trade_pnl_since and pnl_daily_since
-- are trade_pnl_of and pnl_daily_of (kept as they are: a writer of the previous release, still
-- running during an upgrade, reads them) with three parameters:
--   {token}:  ids read from every part (those pnl_rollup held before the flush);
--   {recent}: ids not under {token}, read only from the parts whose highest block number is
--             above {since} (the table's highest block number before the flush's inserts;
--             block numbers only grow, a merged part keeps its highest, and a part that a merge
--             replaces mid-read is read as the query's own snapshot of parts has it).
-- With since = 0 every part is read, as before. The writer learns which ids are old with one
-- read of the correlation_id column (store.writer.PnlDaily). The expressions are 0008's;
-- the equivalence test holds pnl_daily to pnl_daily_all through the writer's flushes.
-- Every statement may run again.
CREATE OR REPLACE VIEW trade_pnl_since AS
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
    FROM
    (
        SELECT *
        FROM pnl_rollup
        PREWHERE correlation_id IN (SELECT correlation_id FROM pnl_ids WHERE token = {token:String})
        UNION ALL
        -- the part's highest block number (partition_min_max_level[_mutation]): parts are
        -- chosen by it before anything is read, so only the parts written since are read
        SELECT *
        FROM pnl_rollup
        PREWHERE correlation_id IN (SELECT correlation_id FROM pnl_ids WHERE token = {recent:String})
            AND correlation_id NOT IN (SELECT correlation_id FROM pnl_ids WHERE token = {token:String})
        WHERE toUInt64(splitByChar('_', _part)[3]) > {since:UInt64}
    )
    GROUP BY correlation_id
),
-- evaluated once (a scalar), usually empty: the reads below take it as a set from a subquery,
-- which the primary key uses (IN of the array itself became has([], id), read every row)
(
    SELECT groupArray(correlation_id) FROM rollup WHERE fills > 0 AND symbol_lo != symbol_hi
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
        WHERE correlation_id IN (SELECT arrayJoin(several))
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
        WHERE correlation_id IN (SELECT arrayJoin(several))
        GROUP BY correlation_id
    ) AS s ON f.correlation_id = s.correlation_id
)
WHERE closed_at IS NOT NULL;

-- The pnl_daily rows of the round trips trade_pnl_since reads (its parameters, passed through).
CREATE OR REPLACE VIEW pnl_daily_since AS
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
    FROM trade_pnl_since(token = {token:String}, recent = {recent:String},
        since = {since:UInt64})
)
GROUP BY day, strategy_id, closed;
