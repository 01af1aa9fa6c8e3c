-- The order database's users (ADR 0049). Idempotent: run by deploy/local/infra.sh
-- as root on every start of order-db, and by compose's MariaDB image on first
-- initialisation (/docker-entrypoint-initdb.d). Passwords are development
-- credentials (ADR 0026); a deployment creates these users with its own secrets.
--   orders_migrate  runs the migrations: every privilege on `orders`, nothing else,
--                   and may grant them: after the migrations it gives orders_app
--                   the privileges of order-app.sql (MariaDB grants on a table only
--                   once it exists).
--   orders_app      the order service: no privilege until then.
--   orders_relay    Debezium's connector (below).
CREATE DATABASE IF NOT EXISTS `orders`;
CREATE USER IF NOT EXISTS 'orders_migrate'@'%' IDENTIFIED BY 'orders_migrate';
GRANT ALL PRIVILEGES ON `orders`.* TO 'orders_migrate'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'orders_app'@'%' IDENTIFIED BY 'orders_app';
-- orders_relay: Debezium's MariaDB connector when it relays the outbox
-- (ORDER_OUTBOX_RELAY=debezium, ADR 0068): it reads the binary log as a replica
-- does (REPLICATION SLAVE; BINLOG MONITOR to find the log's position at its
-- first start), and the outbox table's definition (SELECT on that table only,
-- granted by order-relay.sql after the migrations). Nothing else.
-- Without Debezium it reads nothing (it must exist: order-relay.sql grants to it).
CREATE USER IF NOT EXISTS 'orders_relay'@'%' IDENTIFIED BY 'orders_relay';
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'orders_relay'@'%';
