-- The fill event ids whose copies one flush looks up (store.writer.mark_duplicates), under a
-- token of their own: the look-up reads them from here. Sent as Arrow, 40,000 ids cost about
-- 10 ms to insert and 6 ms to read; inlined in the query as one literal they cost 70 ms to
-- parse. Kept a day, as pnl_ids (0008). Every statement may run again.
CREATE TABLE IF NOT EXISTS flush_ids
(
    token String,
    id UUID,
    created_at DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY (token, id)
TTL created_at + INTERVAL 1 DAY;
