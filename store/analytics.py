"""Ready-made SQL for the README's "SQL analytics" section, kept here so a test runs them."""

from __future__ import annotations

ANALYTICS_SQL: dict[str, str] = {
    "daily_pnl": """
SELECT day, sum(trades) AS trades, sum(wins) AS wins, sum(realized_pnl) AS pnl,
       sum(commission) AS commission
FROM daily_pnl
GROUP BY day
ORDER BY day DESC
LIMIT 30""",
    "win_rate_and_r_by_strategy": """
SELECT strategy_id, count() AS trades,
       round(countIf(realized_pnl > 0) / count(), 3) AS win_rate,
       round(avg(r_multiple), 2) AS avg_r, sum(realized_pnl) AS pnl,
       round(avg(holding_seconds) / 60, 1) AS avg_hold_min
FROM trades
WHERE status = 'closed'
GROUP BY strategy_id
ORDER BY pnl DESC""",
    "slippage_by_symbol": """
SELECT symbol, count() AS fills, round(avg(slippage_bps), 2) AS avg_bps,
       round(quantile(0.95)(slippage_bps), 2) AS p95_bps, sum(slippage_cost) AS cost
FROM slippage
GROUP BY symbol
ORDER BY cost DESC""",
    "approval_latency": """
SELECT approved_by, decision, count() AS decisions,
       round(quantile(0.5)(decision_seconds), 1) AS median_s,
       round(quantile(0.95)(decision_seconds), 1) AS p95_s
FROM approval_audit
GROUP BY approved_by, decision
ORDER BY approved_by, decision""",
    "rejection_reasons": """
SELECT stage, reason_code, count() AS n, any(message) AS example
FROM rejections FINAL
WHERE occurred_at >= now64(6, 'UTC') - INTERVAL 30 DAY
GROUP BY stage, reason_code
ORDER BY n DESC""",
    "stage_latency_percentiles": """
SELECT round(quantile(0.5)(signal_to_approval_ms)) AS approval_p50_ms,
       round(quantile(0.5)(intent_to_submitted_ms)) AS submit_p50_ms,
       round(quantile(0.95)(submitted_to_acknowledged_ms)) AS ack_p95_ms,
       round(quantile(0.95)(acknowledged_to_filled_ms)) AS fill_p95_ms,
       round(quantile(0.95)(signal_to_filled_ms)) AS end_to_end_p95_ms
FROM stage_latency""",
    "open_positions": """
SELECT account_id, symbol, net_quantity, avg_price, last_fill_at
FROM positions
ORDER BY abs(net_quantity * avg_price) DESC""",
    "one_signal_story": """
SELECT occurred_at, event_type, topic, offset,
       JSONExtractString(payload, 'status') AS status,
       JSONExtractString(payload, 'approved_by') AS approved_by
FROM events
WHERE correlation_id = toUUID({correlation_id:String})
ORDER BY occurred_at, offset""",
}
