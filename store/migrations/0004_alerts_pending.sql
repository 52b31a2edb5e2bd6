-- Alerts (pipeline and venue disagree) as a typed table, and the pending_submit /
-- pending_cancel order states in the current-state ranking. Every statement may run again.

CREATE TABLE IF NOT EXISTS alerts
(
    event_id UUID,
    correlation_id UUID,
    causation_id Nullable(UUID),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    kind LowCardinality(String),
    source LowCardinality(String),
    message String,
    account_id LowCardinality(Nullable(String)),
    symbol LowCardinality(Nullable(String)),
    client_order_id Nullable(String),
    details String
)
ENGINE = ReplacingMergeTree
ORDER BY (kind, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- The id derives from the kind and what identifies the case, so a repeat replaces.
CREATE MATERIALIZED VIEW IF NOT EXISTS alerts_mv TO alerts AS
SELECT
    event_id,
    correlation_id,
    causation_id,
    occurred_at,
    recorded_at,
    JSONExtractString(payload, 'kind') AS kind,
    JSONExtractString(payload, 'source') AS source,
    JSONExtractString(payload, 'message') AS message,
    JSONExtract(payload, 'account_id', 'Nullable(String)') AS account_id,
    JSONExtract(payload, 'symbol', 'Nullable(String)') AS symbol,
    JSONExtract(payload, 'client_order_id', 'Nullable(String)') AS client_order_id,
    if(JSONHas(payload, 'details'), JSONExtractRaw(payload, 'details'), '{}') AS details
FROM events
WHERE event_type = 'alert';

-- Status ranks, old -> new: pending_submit 0 -> 1, submitted 1 -> 2, accepted 2 -> 3,
-- partially_filled 3 -> 4, pending_cancel 0 -> 5, terminal 4 -> 6; unknown stays 0.
-- There is no integer between 3 and 4, so the ranks are renumbered: the new view is created
-- before the old one is dropped (no order event missed meanwhile; a row derived twice is
-- the same row, order_events replaces by event_id and orders_state's aggregates are
-- idempotent), stored ranks are recomputed from the stored status, and the current state
-- is rebuilt from order_events, so old and new ranks never meet in one argMax.
CREATE MATERIALIZED VIEW IF NOT EXISTS order_events_ranked_mv TO order_events AS
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
        status = 'pending_submit', 1,
        status = 'submitted', 2,
        status = 'accepted', 3,
        status = 'partially_filled', 4,
        status = 'pending_cancel', 5,
        status IN ('filled', 'cancelled', 'rejected', 'expired'), 6,
        0)) AS status_rank,
    toDecimal64OrZero(trim(BOTH '"' FROM JSONExtractRaw(payload, 'filled_quantity')), 6) AS filled_quantity,
    toDecimal64OrNull(trim(BOTH '"' FROM JSONExtractRaw(payload, 'avg_fill_price')), 6) AS avg_fill_price,
    JSONExtract(payload, 'reason_code', 'Nullable(String)') AS reason_code,
    JSONExtract(payload, 'message', 'Nullable(String)') AS message
FROM events
WHERE event_type = 'order';

DROP VIEW IF EXISTS order_events_mv;

ALTER TABLE order_events UPDATE status_rank = toUInt8(multiIf(
        status = 'pending_submit', 1,
        status = 'submitted', 2,
        status = 'accepted', 3,
        status = 'partially_filled', 4,
        status = 'pending_cancel', 5,
        status IN ('filled', 'cancelled', 'rejected', 'expired'), 6,
        0))
WHERE 1
SETTINGS mutations_sync = 2;

TRUNCATE TABLE IF EXISTS orders_state;

-- The same aggregation as orders_state_mv, over every order event stored so far. Not
-- deduplicated: a re-run after a failure must not be dropped as a copy of the first.
INSERT INTO orders_state
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
GROUP BY client_order_id
SETTINGS insert_deduplicate = 0;
