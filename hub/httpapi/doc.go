// Package httpapi is the hub's HTTP surface: the REST API under /api/v1
// (with its OpenAPI 3.1 document at /openapi.json), bearer-token
// authentication and roles, watches over Server-Sent Events, replica logs,
// the drill and cluster routes, /healthz, /readyz, /metrics, and the web
// console mounted at /.
//
// The API is declared with huma on a chi router, so the OpenAPI document is
// generated from the Go types in package api. Every error is an RFC 9457
// problem (application/problem+json) with a stable code; problems about
// input carry the location of each bad field ("body.spec.replicas",
// "query.labelSelector"). Input problems are always 4xx; a database that
// cannot be reached is 503 with Retry-After; only a bug is 500, and then
// the user gets a request id while the detail goes to the log.
//
// Each route declares the role it needs (viewer, operator, admin) in its
// operation metadata; one huma middleware authenticates the bearer token
// (package tokens) and enforces it, and refused writes are audited. An
// address whose tokens fail too often gets 429 (package throttle, shared
// with the console's sign-in).
//
// Nothing is parsed before the caller is authenticated: huma runs the
// middlewares before it reads a body, and the second one, checkInput,
// reads it within its limit, refuses bad bytes in parameters and strings
// (400, located), converts YAML to JSON once with its aliases bounded, and
// bounds the values of JSON (body.go). What one request may cost the hub
// is measured in BENCHMARKS.md.
//
// It owns request parsing, validation, authorisation and answers. It
// reaches the controllers only through the small interfaces in api.go
// (Health, Members, Drills, Leadership) and must not import them, run a
// background loop, or decide placement.
package httpapi
