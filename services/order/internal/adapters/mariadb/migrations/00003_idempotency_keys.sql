-- +goose Up
-- Idempotency keys of POST /orders and POST /orders/{id}/cancel (ADR 23). A row is
-- inserted in the same transaction as the order change it guards, so it exists
-- exactly when that change committed; while the transaction runs, its row lock
-- is what marks the key "in flight". `result` is the order as the request left
-- it (JSON), from which a replay renders the original answer. Rows expire at
-- `expires_at` and are deleted in small batches by a periodic job.
CREATE TABLE `idempotency_keys` (
  `scope`       VARCHAR(64)  NOT NULL,
  `idem_key`    VARCHAR(128) NOT NULL,
  `fingerprint` CHAR(64)     NOT NULL,
  `result`      MEDIUMTEXT   NULL,
  `created_at`  TIMESTAMP(6) NOT NULL,
  `expires_at`  TIMESTAMP(6) NOT NULL,
  PRIMARY KEY (`scope`, `idem_key`),
  KEY `idempotency_keys_expires` (`expires_at`)
);

-- +goose Down
DROP TABLE `idempotency_keys`;
