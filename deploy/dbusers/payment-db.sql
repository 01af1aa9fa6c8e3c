-- The payment database's users (ADR 0049). Idempotent: run by deploy/local/infra.sh
-- as root on every start of payment-db, and by compose's MariaDB image on first
-- initialisation (/docker-entrypoint-initdb.d). Passwords are development
-- credentials (ADR 0026); a deployment creates these users with its own secrets.
--   payments_migrate  runs the migrations: every privilege on `payments`, nothing
--                     else, and may grant them: after the migrations it gives
--                     payments_app the privileges of payment-app.sql (MariaDB
--                     grants on a table only once it exists).
--   payments_app      the payment service: no privilege until then.
CREATE DATABASE IF NOT EXISTS `payments`;
CREATE USER IF NOT EXISTS 'payments_migrate'@'%' IDENTIFIED BY 'payments_migrate';
GRANT ALL PRIVILEGES ON `payments`.* TO 'payments_migrate'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'payments_app'@'%' IDENTIFIED BY 'payments_app';
