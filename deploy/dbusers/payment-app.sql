-- What the payment service's user may do, table by table (ADR 0049): exactly
-- the statements its code runs. Run by the migration user after the migrations,
-- in the database `payments` (the tables are named without it), on every start
-- of the service (dbusers.Template.Grant); idempotent. By hand:
--   mariadb -u payments_migrate -p payments < deploy/dbusers/payment-app.sql
-- A migration that adds a table or a column the service writes adds its grant here.

-- The patterns' tables (pkg/outbox, pkg/inbox, pkg/consumer, pkg/poison): the
-- outbox (written in the change's transaction, read and deleted by the forwarder), the inbox and the poison
-- replay records (kept, read, pruned), the delayed path (written, read, deleted
-- once handled), parked outbox rows and parked keys (moved, updated, released,
-- also by the admin endpoints).
GRANT SELECT, INSERT, DELETE ON `watermill_outbox` TO 'payments_app'@'%';
GRANT SELECT, INSERT, DELETE ON `processed_messages` TO 'payments_app'@'%';
GRANT SELECT, INSERT, DELETE ON `poison_replays` TO 'payments_app'@'%';
GRANT SELECT, INSERT, DELETE ON `consumer_requeue` TO 'payments_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `outbox_parked` TO 'payments_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `consumer_parked_keys` TO 'payments_app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `consumer_parked_messages` TO 'payments_app'@'%';
-- The delivery auditor (pkg/audit): the violations it proved are only added
-- (an operator's record), its checks' cursors move forward, the outbox's
-- receipts are written with the events and deleted once judged.
GRANT SELECT, INSERT ON `audit_violations` TO 'payments_app'@'%';
GRANT SELECT, INSERT, UPDATE ON `audit_cursors` TO 'payments_app'@'%';
GRANT SELECT, INSERT, DELETE ON `audit_receipts` TO 'payments_app'@'%';
-- goose's version tables, one per pattern's migrations and the service's own:
-- read only (a start without a migration user checks that nothing is pending);
-- only the migration user writes them. Databases migrated before the patterns
-- had their own keep goose_messaging_version, which nothing reads any more.
GRANT SELECT ON `goose_outbox_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_outbox_parking_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_inbox_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_delayed_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_parkkey_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_poison_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_audit_version` TO 'payments_app'@'%';
GRANT SELECT ON `goose_db_version` TO 'payments_app'@'%';

-- The payment tables. The ledger is append-only: rows are added, never changed
-- or removed. An account's balance changes, nothing else of it (INSERT: the
-- demo seed, deploy/demo/accounts.sql); a payment's order, customer, amount and
-- currency never change once placed.
GRANT SELECT, INSERT ON `ledger` TO 'payments_app'@'%';
GRANT SELECT, INSERT, UPDATE (`balance_cents`) ON `accounts` TO 'payments_app'@'%';
GRANT SELECT, INSERT, UPDATE (`status`, `reason`, `order_version`, `charged_cents`, `refunded_cents`, `updated_at`)
  ON `payments` TO 'payments_app'@'%';

-- Versions before these table grants gave payments_app SELECT, INSERT, UPDATE
-- and DELETE on the whole database: take that back. (The GRANT makes the
-- REVOKE valid when there is nothing to take back; table grants stay.)
GRANT SELECT ON `payments`.* TO 'payments_app'@'%';
REVOKE SELECT, INSERT, UPDATE, DELETE ON `payments`.* FROM 'payments_app'@'%';
