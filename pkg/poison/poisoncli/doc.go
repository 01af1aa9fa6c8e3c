// Package poisoncli is the poison tooling's command line (RunCLI): each
// service's "poison" subcommand lists, shows, replays and purges its poison
// topic, its parked outbox rows and its parked keys, reading where they are
// from the service's own environment (Config).
//
// Guarantees: a replay of everything goes a page at a time; nothing is read
// whole. Needs: package poison. Fails: on an unknown command, a bad offset,
// or when the database or Kafka cannot be reached.
package poisoncli
