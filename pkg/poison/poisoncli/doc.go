// Package poisoncli is the poison tooling's command line (RunCLI): each
// service's "poison" subcommand lists, shows, replays and purges its poison
// topic, its parked outbox rows and its parked keys, reading where they are
// from the service's own environment (Config).
//
// Guarantees: a bulk replay goes a page at a time, each page only with the
// confirmation token its dry run printed; nothing is read whole. Needs:
// package poison, and the running service for the dry run of a bulk replay
// (it has the handlers). Fails: on an unknown command, a bad offset or
// token, or when the database, Kafka or (for that dry run) the service
// cannot be reached.
package poisoncli
