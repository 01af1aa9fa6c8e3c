-- The order database's users (ADR 0049). Idempotent: run by deploy/local/infra.sh
-- as root on every start of order-db, and by compose's MariaDB image on first
-- initialisation (/docker-entrypoint-initdb.d). Passwords are development
-- credentials (ADR 0026); a deployment creates these users with its own secrets.
--   orders_migrate  runs the migrations: every privilege on `orders`, nothing else,
--                   and may grant them: after the migrations it gives orders_app
--                   the privileges of order-app.sql (MariaDB grants on a table only
--                   once it exists).
--   orders_app      the order service: no privilege until then.
CREATE DATABASE IF NOT EXISTS `orders`;
CREATE USER IF NOT EXISTS 'orders_migrate'@'%' IDENTIFIED BY 'orders_migrate';
GRANT ALL PRIVILEGES ON `orders`.* TO 'orders_migrate'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'orders_app'@'%' IDENTIFIED BY 'orders_app';
