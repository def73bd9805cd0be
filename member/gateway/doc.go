// Package gateway is a region's service gateway: an HTTP reverse proxy
// and a TCP proxy, built on the standard library (httputil.ReverseProxy,
// net), that route requests for a service to its endpoints in every
// cluster, as the hub's endpoint table lists them.
//
// # Routing
//
// A request names its service by Host (<service>.svc.atoll or one of the
// service's host names) or by a path prefix /svc/<service>/ (stripped
// before proxying). Endpoints are ranked by locality: the gateway's own
// region, then (locality mode ordered, the default) the service's
// failover regions in order, or (mode nearest) the other regions by the
// latency this gateway measured to them, then every other region; within
// a rank an endpoint is picked at random, weighted by its region's
// weight. The choice is pure (pick in routing.go): it takes the
// endpoints, their ranks, their outlier state and the time, and returns
// one.
//
// # Nearest by measured latency
//
// Each endpoint keeps a smoothed round trip (an exponentially weighted
// moving average, a quarter per sample): requests that got an answer
// (to its headers), passing health checks (the request on its connection
// to the first byte, or a TCP connect), and, for a nearest-mode service
// without a health check, a TCP connect to each endpoint of another
// region every DefaultHealthInterval. A region's latency is the mean of
// its endpoints'. Every checkTick the check loop ranks the regions of
// nearest-mode services again (rankRegions, pure): measured regions
// nearest first, those within 10% (at least 1 ms) of a rank's nearest
// sharing it, then regions not measured yet in failover order. The ranks
// are swapped whole, so a request reads one consistent order.
//
// # Failures
//
// Passive outlier detection: consecutive errors (connect failures,
// 502/503/504 answers) eject an endpoint for the base ejection time times
// the number of its ejections, up to the maximum, and never more than the
// service's maxEjectionPercent of its endpoints at once. A failed try is
// retried on another endpoint when nothing reached the replica (a
// refused connection: always, whatever the method), or for idempotent
// methods after a 502/503/504 or a timeout, within the retry budget (a
// share of the service's requests over the last seconds). The answers
// the gateway writes itself carry the Atoll-Gateway-Error header
// (OwnErrorHeader), which a backend's never do, so the global entry in
// front tells the gateway's own 502/504 from a backend's.
//
// # Static stability
//
// The table is swapped whole (Update) and kept when the hub is away: the
// gateway serves from its last table, says its age (Age, the
// Atoll-Table-Age header once it is older than StaleAfter,
// /_atoll/healthz) and never empties it for want of news.
//
// # An open listener
//
// The gateway never routes by anything a client sends but an exact
// service name: the upstream address comes from the table alone; bodies
// are bounded (MaxBodyBytes, 413 beyond), headers too, slow clients time
// out, connections to tcp service ports are bounded (MaxTCPConns), DNS
// answers over UDP fit 512 bytes or the client's EDNS size up to 1232
// (no amplifier for forged sources), and /_atoll/ is reserved. It does not authenticate clients: put it
// where the services' own clients are.
//
// It must not talk to NATS or the hub: its member hands it tables.
package gateway
