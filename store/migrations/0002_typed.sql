-- Typed tables fed from events by materialized views (JSONExtract on payload).
-- ReplacingMergeTree on event_id: an event produced twice (at two offsets) counts once
-- when read with FINAL. Each target also keeps a dedup window, because a retried batch
-- that the events table drops is still pushed to dependent views.

CREATE TABLE IF NOT EXISTS signals
(
    event_id UUID,
    correlation_id UUID,
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    signal_id String,
    symbol LowCardinality(String),
    side LowCardinality(String),
    entry_price Nullable(Decimal(18, 6)),
    stop_loss Nullable(Decimal(18, 6)),
    take_profit Nullable(Decimal(18, 6)),
    confidence Nullable(Decimal(18, 6)),
    strategy_id LowCardinality(String),
    ttl_seconds Nullable(UInt32)
)
ENGINE = ReplacingMergeTree
ORDER BY (correlation_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS signals_mv TO signals AS
SELECT
    event_id,
    correlation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'id') AS signal_id,
    JSONExtractString(payload, 'symbol') AS symbol,
    JSONExtractString(payload, 'signal_type') AS side,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'entry_price')), 6) AS entry_price,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'stop_loss')), 6) AS stop_loss,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'take_profit')), 6) AS take_profit,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'confidence')), 6) AS confidence,
    JSONExtractString(payload, 'strategy_id') AS strategy_id,
    toUInt32OrNull(JSONExtractRaw(payload, 'ttl_seconds')) AS ttl_seconds
FROM events
WHERE event_type = 'signal';

CREATE TABLE IF NOT EXISTS approvals
(
    event_id UUID,
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    decision LowCardinality(String),
    approved_by LowCardinality(String),
    decided_at DateTime64(6, 'UTC'),
    reason Nullable(String),
    signal_event_id Nullable(UUID),
    signal_id String,
    signal_at Nullable(DateTime64(6, 'UTC')),
    symbol LowCardinality(String),
    side LowCardinality(String),
    strategy_id LowCardinality(String),
    entry_price Nullable(Decimal(18, 6)),
    stop_loss Nullable(Decimal(18, 6))
)
ENGINE = ReplacingMergeTree
ORDER BY (correlation_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS approvals_mv TO approvals AS
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'decision') AS decision,
    JSONExtractString(payload, 'approved_by') AS approved_by,
    ifNull(parseDateTime64BestEffortOrNull(JSONExtractString(payload, 'decided_at'), 6, 'UTC'), occurred_at) AS decided_at,
    JSONExtract(payload, 'reason', 'Nullable(String)') AS reason,
    toUUIDOrNull(JSONExtractString(payload, 'signal', 'event_id')) AS signal_event_id,
    JSONExtractString(payload, 'signal', 'id') AS signal_id,
    parseDateTime64BestEffortOrNull(JSONExtractString(payload, 'signal', 'occurred_at'), 6, 'UTC') AS signal_at,
    JSONExtractString(payload, 'signal', 'symbol') AS symbol,
    JSONExtractString(payload, 'signal', 'signal_type') AS side,
    JSONExtractString(payload, 'signal', 'strategy_id') AS strategy_id,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'signal', 'entry_price')), 6) AS entry_price,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'signal', 'stop_loss')), 6) AS stop_loss
FROM events
WHERE event_type = 'approval';

CREATE TABLE IF NOT EXISTS order_intents
(
    event_id UUID,
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    client_order_id String,
    account_id LowCardinality(String),
    venue LowCardinality(String),
    symbol LowCardinality(String),
    side LowCardinality(String),
    quantity Decimal(18, 6),
    order_type LowCardinality(String),
    limit_price Nullable(Decimal(18, 6)),
    stop_price Nullable(Decimal(18, 6)),
    take_profit Nullable(Decimal(18, 6)),
    stop_loss Nullable(Decimal(18, 6)),
    time_in_force LowCardinality(String),
    strategy_id LowCardinality(String),
    signal_id String,
    approved_by LowCardinality(String),
    risk_amount Nullable(Decimal(18, 6)),
    bound_by LowCardinality(String),
    sizing String
)
ENGINE = ReplacingMergeTree
ORDER BY (correlation_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS order_intents_mv TO order_intents AS
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'client_order_id') AS client_order_id,
    JSONExtractString(payload, 'account_id') AS account_id,
    JSONExtractString(payload, 'venue') AS venue,
    JSONExtractString(payload, 'symbol') AS symbol,
    JSONExtractString(payload, 'side') AS side,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'quantity')), 6) AS quantity,
    JSONExtractString(payload, 'order_type') AS order_type,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'limit_price')), 6) AS limit_price,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'stop_price')), 6) AS stop_price,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'take_profit')), 6) AS take_profit,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'stop_loss')), 6) AS stop_loss,
    JSONExtractString(payload, 'time_in_force') AS time_in_force,
    JSONExtractString(payload, 'strategy_id') AS strategy_id,
    JSONExtractString(payload, 'signal_id') AS signal_id,
    JSONExtractString(payload, 'approved_by') AS approved_by,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'sizing', 'risk_amount')), 6) AS risk_amount,
    JSONExtractString(payload, 'sizing', 'bound_by') AS bound_by,
    JSONExtractRaw(payload, 'sizing') AS sizing
FROM events
WHERE event_type = 'order_intent';

CREATE TABLE IF NOT EXISTS order_events
(
    event_id UUID,
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    client_order_id String,
    parent_client_order_id Nullable(String),
    leg LowCardinality(String),
    venue LowCardinality(String),
    venue_order_id Nullable(String),
    account_id LowCardinality(String),
    symbol LowCardinality(String),
    side LowCardinality(String),
    order_type LowCardinality(String),
    quantity Decimal(18, 6),
    limit_price Nullable(Decimal(18, 6)),
    stop_price Nullable(Decimal(18, 6)),
    status LowCardinality(String),
    status_rank UInt8,
    filled_quantity Decimal(18, 6),
    avg_fill_price Nullable(Decimal(18, 6)),
    reason_code Nullable(String),
    message Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (client_order_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS order_events_mv TO order_events AS
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'client_order_id') AS client_order_id,
    JSONExtract(payload, 'parent_client_order_id', 'Nullable(String)') AS parent_client_order_id,
    if(JSONHas(payload, 'leg'), JSONExtractString(payload, 'leg'), 'entry') AS leg,
    JSONExtractString(payload, 'venue') AS venue,
    JSONExtract(payload, 'venue_order_id', 'Nullable(String)') AS venue_order_id,
    JSONExtractString(payload, 'account_id') AS account_id,
    JSONExtractString(payload, 'symbol') AS symbol,
    JSONExtractString(payload, 'side') AS side,
    JSONExtractString(payload, 'order_type') AS order_type,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'quantity')), 6) AS quantity,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'limit_price')), 6) AS limit_price,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'stop_price')), 6) AS stop_price,
    JSONExtractString(payload, 'status') AS status,
    toUInt8(multiIf(
        status = 'submitted', 1,
        status = 'accepted', 2,
        status = 'partially_filled', 3,
        status IN ('filled', 'cancelled', 'rejected', 'expired'), 4,
        0)) AS status_rank,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'filled_quantity')), 6) AS filled_quantity,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'avg_fill_price')), 6) AS avg_fill_price,
    JSONExtract(payload, 'reason_code', 'Nullable(String)') AS reason_code,
    JSONExtract(payload, 'message', 'Nullable(String)') AS message
FROM events
WHERE event_type = 'order';

-- Each order's current state: argMax by (status rank, filled quantity, time), so a late
-- or replayed 'submitted' never overwrites 'filled'. One state holds every changing field
-- (one merge per order when read). Read with argMaxMerge (view: orders).
CREATE TABLE IF NOT EXISTS orders_state
(
    client_order_id String,
    correlation_id SimpleAggregateFunction(any, UUID),
    parent_client_order_id SimpleAggregateFunction(any, Nullable(String)),
    leg SimpleAggregateFunction(any, String),
    venue SimpleAggregateFunction(any, String),
    account_id SimpleAggregateFunction(any, String),
    symbol SimpleAggregateFunction(any, String),
    side SimpleAggregateFunction(any, String),
    order_type SimpleAggregateFunction(any, String),
    quantity SimpleAggregateFunction(max, Decimal(18, 6)),
    limit_price SimpleAggregateFunction(any, Nullable(Decimal(18, 6))),
    stop_price SimpleAggregateFunction(any, Nullable(Decimal(18, 6))),
    first_event_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    last_event_at SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    -- (status, filled_quantity, avg_fill_price, venue_order_id, reason_code) of the latest event
    latest AggregateFunction(
        argMax,
        Tuple(String, Decimal(18, 6), Nullable(Decimal(18, 6)), Nullable(String), Nullable(String)),
        Tuple(UInt8, Decimal(18, 6), DateTime64(6, 'UTC'))
    )
)
ENGINE = AggregatingMergeTree
ORDER BY client_order_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS orders_state_mv TO orders_state AS
SELECT
    client_order_id,
    any(correlation_id) AS correlation_id,
    any(parent_client_order_id) AS parent_client_order_id,
    any(toString(leg)) AS leg,
    any(toString(venue)) AS venue,
    any(toString(account_id)) AS account_id,
    any(toString(symbol)) AS symbol,
    any(toString(side)) AS side,
    any(toString(order_type)) AS order_type,
    max(quantity) AS quantity,
    any(limit_price) AS limit_price,
    any(stop_price) AS stop_price,
    min(occurred_at) AS first_event_at,
    max(occurred_at) AS last_event_at,
    argMaxState(v, k) AS latest
FROM
(
    SELECT
        *,
        (status_rank, filled_quantity, occurred_at) AS k,
        (toString(status), filled_quantity, avg_fill_price, venue_order_id, reason_code) AS v
    FROM order_events
)
GROUP BY client_order_id;

CREATE TABLE IF NOT EXISTS fills
(
    event_id UUID,
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    execution_id String,
    client_order_id String,
    parent_client_order_id Nullable(String),
    leg LowCardinality(String),
    venue LowCardinality(String),
    venue_order_id Nullable(String),
    account_id LowCardinality(String),
    symbol LowCardinality(String),
    side LowCardinality(String),
    quantity Decimal(18, 6),
    price Decimal(18, 6),
    commission Decimal(18, 6),
    currency LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (correlation_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS fills_mv TO fills AS
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'execution_id') AS execution_id,
    JSONExtractString(payload, 'client_order_id') AS client_order_id,
    JSONExtract(payload, 'parent_client_order_id', 'Nullable(String)') AS parent_client_order_id,
    if(JSONHas(payload, 'leg'), JSONExtractString(payload, 'leg'), 'entry') AS leg,
    JSONExtractString(payload, 'venue') AS venue,
    JSONExtract(payload, 'venue_order_id', 'Nullable(String)') AS venue_order_id,
    JSONExtractString(payload, 'account_id') AS account_id,
    JSONExtractString(payload, 'symbol') AS symbol,
    JSONExtractString(payload, 'side') AS side,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'quantity')), 6) AS quantity,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'price')), 6) AS price,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'commission')), 6) AS commission,
    if(JSONHas(payload, 'currency'), JSONExtractString(payload, 'currency'), 'USD') AS currency
FROM events
WHERE event_type = 'fill';

CREATE TABLE IF NOT EXISTS rejections
(
    event_id UUID,
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    stage LowCardinality(String),
    reason_code LowCardinality(String),
    message String,
    details String,
    subject_event_id Nullable(UUID),
    signal_id Nullable(String),
    symbol LowCardinality(Nullable(String)),
    strategy_id LowCardinality(Nullable(String))
)
ENGINE = ReplacingMergeTree
ORDER BY (correlation_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS rejections_mv TO rejections AS
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'stage') AS stage,
    JSONExtractString(payload, 'reason_code') AS reason_code,
    JSONExtractString(payload, 'message') AS message,
    if(JSONHas(payload, 'details'), JSONExtractRaw(payload, 'details'), '{}') AS details,
    toUUIDOrNull(JSONExtractString(payload, 'subject_event_id')) AS subject_event_id,
    JSONExtract(payload, 'signal_id', 'Nullable(String)') AS signal_id,
    JSONExtract(payload, 'symbol', 'Nullable(String)') AS symbol,
    JSONExtract(payload, 'strategy_id', 'Nullable(String)') AS strategy_id
FROM events
WHERE event_type = 'rejection';

CREATE TABLE IF NOT EXISTS control_commands
(
    event_id UUID,
    correlation_id UUID,
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    command LowCardinality(String),
    issued_by LowCardinality(String),
    reason Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS control_commands_mv TO control_commands AS
SELECT
    event_id,
    correlation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'command') AS command,
    JSONExtractString(payload, 'issued_by') AS issued_by,
    JSONExtract(payload, 'reason', 'Nullable(String)') AS reason
FROM events
WHERE event_type = 'control';
