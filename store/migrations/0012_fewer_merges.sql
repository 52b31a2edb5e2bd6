-- Fewer background merges for the tables every audit insert writes to.
--
-- Each insert writes a part to every table its event types reach, and merges then rewrite
-- those rows level after level. At 4 M events of bulk ingest, merges cost about 6 us of CPU
-- per event (24.3 us with them, 18.2 with merges stopped), a quarter of the process's CPU.
-- merge_selector_base (default 5) is the growth factor of the merge selector's levels: at 12
-- a part is merged with more parts at a time, so each row is rewritten fewer times. Measured
-- at 10 M events, batches of 100,000 (bench/bench_clickhouse.py's ingest), the same hour:
-- 25.97 us of CPU per event and 63,088 events/s with the default, 22.96 us and 67,459 with 12,
-- ending with 25 active parts of events against 16, and 16 of each typed table against 9.
-- Reads merge those parts; the analytics queries' figures at 10 M are in the README.
-- min_parts_to_merge_at_once = 10/20 gave less (23.3/22.2 us at 4 M, with 13/21 parts).
-- A setting of the table: it applies to every merge from now on, and may run again.
ALTER TABLE events MODIFY SETTING merge_selector_base = 12;
ALTER TABLE signals MODIFY SETTING merge_selector_base = 12;
ALTER TABLE approvals MODIFY SETTING merge_selector_base = 12;
ALTER TABLE order_intents MODIFY SETTING merge_selector_base = 12;
ALTER TABLE order_events MODIFY SETTING merge_selector_base = 12;
ALTER TABLE orders_state MODIFY SETTING merge_selector_base = 12;
ALTER TABLE fills MODIFY SETTING merge_selector_base = 12;
ALTER TABLE rejections MODIFY SETTING merge_selector_base = 12;
ALTER TABLE control_commands MODIFY SETTING merge_selector_base = 12;
ALTER TABLE alerts MODIFY SETTING merge_selector_base = 12;
ALTER TABLE fill_firsts MODIFY SETTING merge_selector_base = 12;
ALTER TABLE trades_agg MODIFY SETTING merge_selector_base = 12;
ALTER TABLE positions_agg MODIFY SETTING merge_selector_base = 12;
ALTER TABLE pnl_rollup MODIFY SETTING merge_selector_base = 12;
ALTER TABLE pnl_daily MODIFY SETTING merge_selector_base = 12;
ALTER TABLE pnl_ids MODIFY SETTING merge_selector_base = 12;
ALTER TABLE flush_ids MODIFY SETTING merge_selector_base = 12;
