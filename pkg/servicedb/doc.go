// Package servicedb lists what a service's database holds: the migration sets
// of every pattern the services use, each with its own goose version table,
// then the service's own. The services, their tests and the benchmarks
// migrate with the same list.
package servicedb
