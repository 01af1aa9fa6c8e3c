-- What Debezium's connector may read of the order database's tables, beside
-- its replication privileges (order-db.sql; ORDER_OUTBOX_RELAY=debezium,
-- ADR 0068): the outbox table's definition, when it snapshots the table's
-- schema at its first start. Granted by the migration user after the
-- migrations, with order-app.sql, on every start of the order service
-- (MariaDB grants on a table only once it exists); idempotent.
GRANT SELECT ON `watermill_outbox` TO 'orders_relay'@'%';
