-- +goose Up
-- Retired (ADR 0026). This migration used to insert the demo customers c-1, c-2,
-- c-3 and c-poor into every deployment's payment database. Demo data now comes
-- from the local/dev setup only (deploy/demo/accounts.sql, loaded by `make run`
-- and compose). The version stays, doing nothing, so that databases which applied
-- it and new ones share one migration history. Databases which applied the old
-- version keep those rows: no migration deletes them, since by now one of those
-- ids may belong to a real customer (ADR 0026 says how to check and remove them).
SELECT 1;

-- +goose Down
SELECT 1;
