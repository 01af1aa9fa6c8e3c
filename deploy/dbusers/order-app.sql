-- What the order service's user may do, table by table (ADR 0049): exactly the
-- statements its code runs. Run by the migration user after the migrations, in
-- the database `orders` (the tables are named without it), on every start of
-- the service (dbusers.Template.Grant); idempotent. By hand:
--   mariadb -u orders_migrate -p orders < deploy/dbusers/order-app.sql
-- A migration that adds a table or a column the service writes adds its grant here.

-- The patterns' tables (pkg/outbox, pkg/inbox, pkg/consumer, pkg/poison): the
-- outbox (written in the change's transaction, read and deleted by the forwarder), the inbox and the poison
-- replay records (kept, read, pruned), the delayed path (written, read, deleted
-- once handled), parked outbox rows and parked keys (moved, updated, released,
-- also by the admin endpoints).
GRANT SELECT, INSERT, DELETE ON `watermill_outbox` TO 'orders_app'@'%';
GRANT SELECT, INSERT, DELETE ON `processed_messages` TO 'orders_app'@'%';
GRANT SELECT, INSERT, DELETE ON `poison_replays` TO 'orders_app'@'%';
GRANT SELECT, INSERT, DELETE ON `consumer_requeue` TO 'orders_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `outbox_parked` TO 'orders_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `consumer_parked_keys` TO 'orders_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `consumer_parked_messages` TO 'orders_app'@'%';
-- The delivery auditor (pkg/audit): the violations it proved are only added
-- (an operator's record), its checks' cursors move forward, the outbox's
-- receipts are written with the events and deleted once judged.
GRANT SELECT, INSERT ON `audit_violations` TO 'orders_app'@'%';
GRANT SELECT, INSERT, UPDATE ON `audit_cursors` TO 'orders_app'@'%';
GRANT SELECT, INSERT, DELETE ON `audit_receipts` TO 'orders_app'@'%';
-- goose's version tables, one per pattern's migrations and the service's own:
-- read only (a start without a migration user checks that nothing is pending);
-- only the migration user writes them. Databases migrated before the patterns
-- had their own keep goose_messaging_version, which nothing reads any more.
GRANT SELECT ON `goose_outbox_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_outbox_parking_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_inbox_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_delayed_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_parkkey_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_poison_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_audit_version` TO 'orders_app'@'%';
GRANT SELECT ON `goose_db_version` TO 'orders_app'@'%';

-- The order tables. An order's id, customer, amount, currency and creation time
-- never change; an idempotency key's request never changes, its answer is
-- recorded once (ADR 23).
GRANT SELECT, INSERT, UPDATE (`status`, `cancel_reason`, `paid`, `refunded`, `refund_failure`, `version`, `updated_at`)
  ON `orders` TO 'orders_app'@'%';
GRANT SELECT, INSERT, DELETE ON `order_timeline` TO 'orders_app'@'%';
GRANT SELECT, INSERT, DELETE, UPDATE (`answer_status`, `answer_header`, `answer_body`)
  ON `idempotency_keys` TO 'orders_app'@'%';

-- Versions before these table grants gave orders_app SELECT, INSERT, UPDATE and
-- DELETE on the whole database: take that back. (The GRANT makes the REVOKE
-- valid when there is nothing to take back; table grants stay.)
GRANT SELECT ON `orders`.* TO 'orders_app'@'%';
REVOKE SELECT, INSERT, UPDATE, DELETE ON `orders`.* FROM 'orders_app'@'%';
