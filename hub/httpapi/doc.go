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
// (package tokens) and enforces it, and refused writes are audited.
//
// It owns request parsing, validation, authorisation and answers. It
// reaches the controllers only through the small interfaces in api.go
// (Health, Members, Drills, Leadership) and must not import them, run a
// background loop, or decide placement.
package httpapi
