// Package poisonhttp is the poison tooling's admin HTTP endpoints on Echo
// (Routes): the poison topic, the parked outbox rows and the parked keys,
// behind a bearer token, with their OpenAPI fragment (OpenAPI) that the
// services merge into their documents.
//
// Guarantees: with an empty token every endpoint answers 404, so an
// unconfigured service exposes nothing; a client mistake is a 4xx
// problem+json, never a 5xx; a bulk replay replays only the set whose dry run
// gave its confirm token. Needs: package poison and Echo v4. Fails: with the
// tool's errors mapped to HTTP (404, 409, 410, 428, 503).
package poisonhttp
