-- The audit writer's read of pnl_daily's sums (store.writer.pnl_sums): pnl_daily_since
-- (0011_pnl_recent.sql) for the round trips of one symbol, sent as it is, not through the
-- views. Planning the views cost more than running them: 175 of the 250 ms of a 20,000-id
-- read at 2 M events (EXPLAIN PLAN alone), 1.7 us of every event of a bulk flush; this query
-- plans in about 40 ms. The same rollup and expressions as trade_pnl_since's first branch,
-- whose rows are those with several = 0; a round trip whose fills carry several symbols comes
-- out as a row with several = 1 (of no meaning), and the writer then reads pnl_daily_since
-- (its second branch splits such a round trip per symbol). Parameters as pnl_daily_since's:
-- {token} ids read from every part, {recent} ids read from the parts above block {since};
-- pnl_daily_of(token) is this with recent = '' and since = 0.
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
        SELECT *
        FROM pnl_rollup
        PREWHERE correlation_id IN (SELECT correlation_id FROM pnl_ids WHERE token = {recent:String})
            AND correlation_id NOT IN (SELECT correlation_id FROM pnl_ids WHERE token = {token:String})
        WHERE toUInt64(splitByChar('_', _part)[3]) > {since:UInt64}
    )
    GROUP BY correlation_id
)
SELECT
    toDate(closed_at, 'UTC') AS day,
    strategy_id,
    toUInt8(closed_quantity > 0) AS closed,
    several,
    toInt64(count()) AS trades,
    toInt64(countIf(pnl > 0)) AS wins,
    toInt64(countIf(pnl < 0)) AS losses,
    sum(pnl) AS realized_pnl,
    sum(fees) AS commission,
    sum(toDecimal256(toString(ifNull(r, 0)), 30)) AS r_sum,
    toInt64(count(r)) AS r_count
FROM
(
    SELECT
        toString(strategy_id) AS strategy_id,
        toUInt8(symbol_lo != symbol_hi) AS several,
        multiIf(signal_side = 1, 1, signal_side = 2, 0, buy_first_at < other_first_at) AS is_buy,
        if(is_buy, 1, -1) AS direction,
        if(is_buy, buy_quantity, sell_quantity) AS entry_quantity,
        if(is_buy, sell_quantity, buy_quantity) AS exit_quantity,
        least(entry_quantity, exit_quantity) AS closed_quantity,
        toDecimal128(round(if(is_buy, buy_notional, sell_notional) / nullIf(entry_quantity, 0), 6), 6) AS entry_price,
        toDecimal128(round(if(is_buy, sell_notional, buy_notional) / nullIf(exit_quantity, 0), 6), 6) AS exit_price,
        if(is_buy, buy_commission, sell_commission) AS entry_commission,
        if(is_buy, sell_commission, buy_commission) AS exit_commission,
        buy_commission + sell_commission AS fees,
        toNullable(if(is_buy, sell_last_at, buy_last_at)) AS closed_at,
        toDecimal128(round(ifNull(direction * (exit_price - entry_price) * closed_quantity, 0)
            - exit_commission - ifNull(entry_commission * closed_quantity / nullIf(entry_quantity, 0), 0), 6), 6)
            AS pnl,
        toFloat64(direction * (exit_price - entry_price)) / toFloat64(nullIf(planned_risk, 0)) AS r
    FROM rollup
    WHERE fills > 0 AND (exit_quantity > 0 OR several)
)
GROUP BY day, strategy_id, closed, several
