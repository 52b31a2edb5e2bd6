-- Each payload parsed once per view, not once per field. JSONExtract(payload, 'Tuple(...)')
-- reads every named field in one pass; the views below did one JSONExtract* per column, so a
-- fill was parsed 21 times (fills_mv 15, fill_firsts_mv 6) and an order 18: about two thirds
-- of the materialized views' work on insert (bench/bench_clickhouse.py).
--
-- The answers stay what the old expressions gave (checked value by value on chdb 26.9):
--   JSONExtractString(p, 'x')                       = Tuple(x String)            element
--   JSONExtract(p, 'x', 'Nullable(String)')         = Tuple(x Nullable(String))  element
--   toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(p, 'x')), 6)
--                                                   = toDecimal64OrZero(Tuple(x String) element)
--   toDecimal64OrNull(... JSONExtractRaw ...)       = toDecimal64OrNull(Tuple(x Nullable(String)))
-- for strings, numbers (1e2, 1.50, -0, out of range), true, null, objects, arrays and missing
-- keys. One difference, by design: a decimal written as a JSON string with escapes inside
-- ("1\u0030") is now read as JSON reads it (10), where the raw text gave 0.
-- if(JSONHas(p, 'leg'), JSONExtractString(p, 'leg'), 'entry') keeps its meaning (null -> '',
-- missing -> 'entry'): the Nullable element is NULL for both, and only then is JSONHas asked
-- (if() evaluates its branches lazily). A raw value (order_intents.sizing, a signal's
-- ttl_seconds, where a quoted number must stay NULL) is still read on its own.
--
-- ALTER TABLE ... MODIFY QUERY swaps a view's query in one step: no insert runs with both
-- queries or with neither (fill_firsts feeds sums, which must not count a fill twice).
-- Every statement may run again.
ALTER TABLE signals_mv MODIFY QUERY
SELECT
    event_id,
    correlation_id,
    occurred_at,
    recorded_at,
    j.id AS signal_id,
    j.symbol AS symbol,
    j.signal_type AS side,
    toDecimal64OrNull(j.entry_price, 6) AS entry_price,
    toDecimal64OrNull(j.stop_loss, 6) AS stop_loss,
    toDecimal64OrNull(j.take_profit, 6) AS take_profit,
    toDecimal64OrNull(j.confidence, 6) AS confidence,
    j.strategy_id AS strategy_id,
    if(isNull(j.ttl_seconds), NULL, toUInt32OrNull(JSONExtractRaw(payload, 'ttl_seconds')))
        AS ttl_seconds
FROM
(
    SELECT
        event_id, correlation_id, occurred_at, recorded_at, payload,
        JSONExtract(payload, 'Tuple(id String, symbol String, signal_type String,
            entry_price Nullable(String), stop_loss Nullable(String),
            take_profit Nullable(String), confidence Nullable(String), strategy_id String,
            ttl_seconds Nullable(String))') AS j
    FROM events
    WHERE event_type = 'signal'
);

ALTER TABLE approvals_mv MODIFY QUERY
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    j.decision AS decision,
    j.approved_by AS approved_by,
    ifNull(parseDateTime64BestEffortOrNull(j.decided_at, 6, 'UTC'), occurred_at) AS decided_at,
    j.reason AS reason,
    toUUIDOrNull(j.signal.event_id) AS signal_event_id,
    j.signal.id AS signal_id,
    parseDateTime64BestEffortOrNull(j.signal.occurred_at, 6, 'UTC') AS signal_at,
    j.signal.symbol AS symbol,
    j.signal.signal_type AS side,
    j.signal.strategy_id AS strategy_id,
    toDecimal64OrNull(j.signal.entry_price, 6) AS entry_price,
    toDecimal64OrNull(j.signal.stop_loss, 6) AS stop_loss
FROM
(
    SELECT
        event_id, correlation_id, causation_id, occurred_at, recorded_at,
        JSONExtract(payload, 'Tuple(decision String, approved_by String, decided_at String,
            reason Nullable(String), signal Tuple(event_id String, id String,
            occurred_at String, symbol String, signal_type String, strategy_id String,
            entry_price Nullable(String), stop_loss Nullable(String)))') AS j
    FROM events
    WHERE event_type = 'approval'
);

ALTER TABLE order_intents_mv MODIFY QUERY
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    j.client_order_id AS client_order_id,
    j.account_id AS account_id,
    j.venue AS venue,
    j.symbol AS symbol,
    j.side AS side,
    toDecimal64OrZero(j.quantity, 6) AS quantity,
    j.order_type AS order_type,
    toDecimal64OrNull(j.limit_price, 6) AS limit_price,
    toDecimal64OrNull(j.stop_price, 6) AS stop_price,
    toDecimal64OrNull(j.take_profit, 6) AS take_profit,
    toDecimal64OrNull(j.stop_loss, 6) AS stop_loss,
    j.time_in_force AS time_in_force,
    j.strategy_id AS strategy_id,
    j.signal_id AS signal_id,
    j.approved_by AS approved_by,
    toDecimal64OrNull(j.sizing.risk_amount, 6) AS risk_amount,
    j.sizing.bound_by AS bound_by,
    JSONExtractRaw(payload, 'sizing') AS sizing
FROM
(
    SELECT
        event_id, correlation_id, causation_id, occurred_at, recorded_at, payload,
        JSONExtract(payload, 'Tuple(client_order_id String, account_id String, venue String,
            symbol String, side String, quantity String, order_type String,
            limit_price Nullable(String), stop_price Nullable(String),
            take_profit Nullable(String), stop_loss Nullable(String), time_in_force String,
            strategy_id String, signal_id String, approved_by String,
            sizing Tuple(risk_amount Nullable(String), bound_by String))') AS j
    FROM events
    WHERE event_type = 'order_intent'
);

ALTER TABLE order_events_ranked_mv MODIFY QUERY
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    j.client_order_id AS client_order_id,
    j.parent_client_order_id AS parent_client_order_id,
    if(isNull(j.leg), if(JSONHas(payload, 'leg'), '', 'entry'), assumeNotNull(j.leg)) AS leg,
    j.venue AS venue,
    j.venue_order_id AS venue_order_id,
    j.account_id AS account_id,
    j.symbol AS symbol,
    j.side AS side,
    j.order_type AS order_type,
    toDecimal64OrZero(j.quantity, 6) AS quantity,
    toDecimal64OrNull(j.limit_price, 6) AS limit_price,
    toDecimal64OrNull(j.stop_price, 6) AS stop_price,
    j.status AS status,
    toUInt8(multiIf(
        status = 'pending_submit', 1,
        status = 'submitted', 2,
        status = 'accepted', 3,
        status = 'partially_filled', 4,
        status = 'pending_cancel', 5,
        status IN ('filled', 'cancelled', 'rejected', 'expired'), 6,
        0)) AS status_rank,
    toDecimal64OrZero(j.filled_quantity, 6) AS filled_quantity,
    toDecimal64OrNull(j.avg_fill_price, 6) AS avg_fill_price,
    j.reason_code AS reason_code,
    j.message AS message
FROM
(
    SELECT
        event_id, correlation_id, causation_id, occurred_at, recorded_at, payload,
        JSONExtract(payload, 'Tuple(client_order_id String,
            parent_client_order_id Nullable(String), leg Nullable(String), venue String,
            venue_order_id Nullable(String), account_id String, symbol String, side String,
            order_type String, quantity String, limit_price Nullable(String),
            stop_price Nullable(String), status String, filled_quantity String,
            avg_fill_price Nullable(String), reason_code Nullable(String),
            message Nullable(String))') AS j
    FROM events
    WHERE event_type = 'order'
);

ALTER TABLE fills_mv MODIFY QUERY
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    j.execution_id AS execution_id,
    j.client_order_id AS client_order_id,
    j.parent_client_order_id AS parent_client_order_id,
    if(isNull(j.leg), if(JSONHas(payload, 'leg'), '', 'entry'), assumeNotNull(j.leg)) AS leg,
    j.venue AS venue,
    j.venue_order_id AS venue_order_id,
    j.account_id AS account_id,
    j.symbol AS symbol,
    j.side AS side,
    toDecimal64OrZero(j.quantity, 6) AS quantity,
    toDecimal64OrZero(j.price, 6) AS price,
    toDecimal64OrZero(j.commission, 6) AS commission,
    if(isNull(j.currency), if(JSONHas(payload, 'currency'), '', 'USD'), assumeNotNull(j.currency))
        AS currency
FROM
(
    SELECT
        event_id, correlation_id, causation_id, occurred_at, recorded_at, payload,
        JSONExtract(payload, 'Tuple(execution_id String, client_order_id String,
            parent_client_order_id Nullable(String), leg Nullable(String), venue String,
            venue_order_id Nullable(String), account_id String, symbol String, side String,
            quantity String, price String, commission String, currency Nullable(String))')
            AS j
    FROM events
    WHERE event_type = 'fill'
);

ALTER TABLE fill_firsts_mv MODIFY QUERY
SELECT
    toDate(occurred_at, 'UTC') AS day,
    event_id,
    correlation_id,
    occurred_at,
    j.account_id AS account_id,
    j.symbol AS symbol,
    j.side AS side,
    toDecimal64OrZero(j.quantity, 6) AS quantity,
    toDecimal64OrZero(j.price, 6) AS price,
    toDecimal64OrZero(j.commission, 6) AS commission
FROM
(
    SELECT
        event_id, correlation_id, occurred_at,
        JSONExtract(payload, 'Tuple(account_id String, symbol String, side String,
            quantity String, price String, commission String)') AS j
    FROM events
    WHERE event_type = 'fill' AND duplicate = 0
);
