-- +goose Up
-- Pruning deletes poison replay records by age in small batches (ADR 0025); this
-- index makes each batch a short range scan. processed_messages has its index
-- (processed_messages_processed_at) since 00001.
CREATE INDEX `poison_replays_replayed_at` ON `poison_replays` (`replayed_at`);

-- +goose Down
DROP INDEX `poison_replays_replayed_at` ON `poison_replays`;
