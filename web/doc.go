// Package web is the console: server-rendered pages the hub serves at /,
// embedded in the binary (templates, one stylesheet, one small script; no
// build step and no third-party front-end code).
//
// # Reading
//
// Pages read a cache of the fleet (fleet.go) rather than the database:
// clusters as stored, a small summary of every workload and every drill,
// and the newest events. The cache loads each kind once and then follows
// the store's change log, woken by the notifier, exactly as API watches
// do; it also samples the hub's health monitor, whose live view (health,
// heartbeat age, capacity) changes between store writes, and lays it over
// the stored clusters the same way the API does. Lists (search, filter,
// sort, paging) are computed from the cache on the server, so they stay
// fast with thousands of workloads, and every count on every page comes
// from the same functions over one snapshot (views.go), using api's
// RegionSplit and Workload.Health, which the CLI uses too. Detail pages
// read their object and its events from the store.
//
// # Drills
//
// The drills list (drills.go) is a list like the others, over the cached
// drill summaries; its state counts come from countDrills, and drills
// still running show on the overview's attention list. A drill's page
// reads the drill from the store and redraws, like any live page, when the
// cache sees the drill (or the fleet) change: its progress, its timeline,
// the report once it is there, and the recovery chart (chart.go), drawn on
// the server as SVG from the drill's samples, with a text summary and a
// table of the samples for those who do not see it. The chart is drawn
// twice, wide and narrow, and the stylesheet shows the one that suits
// its card's width (a container query), so that its labels stay legible
// on a phone. The new-drill form
// (drillactions.go) is not live, since it holds what is being typed: Plan
// is a GET that asks the API for the dry run, so the form stays in the
// address; Run posts the planned drill with the target's name typed again,
// and the API decides.
//
// # Live updates
//
// A page with live regions (templates named "live-...") opens one
// Server-Sent Events stream, /live?page=<its URL>. The stream renders the
// page's view again whenever the fleet changes (and each second on pages
// that show ages) and sends the regions whose HTML changed; the page
// script swaps them in. The browser never polls, and the server renders
// one view per open page, not per row.
//
// # Changes and security
//
// Signing in turns an API token into a random session id in an HttpOnly,
// SameSite=Strict cookie. The session is stored in PostgreSQL, with the
// token sealed under a key derived from the id, so any hub behind a load
// balancer serves it and a hub restart signs nobody out; the token is
// checked again on every request, so revoking it ends its sessions.
// Requests that change something must come from the console's own origin
// (Sec-Fetch-Site, else Origin, checked by net/http's
// CrossOriginProtection). Every change (cordon, uncordon, drain, taints,
// scale, a drill's plan, run and abort) is made as an in-process request
// to the hub's own API with the signed-in token: the API validates it,
// checks the role, writes the audit row and answers with problem+json,
// which the console shows. The console hides buttons a role may not use,
// but it is the API that refuses them.
//
// # Pages
//
// navigation() in pages.go lists the pages, their routes and their
// keyboard shortcuts (g then a key); a new page is one entry there and one
// template.
package web
