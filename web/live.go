package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/telemetry"
)

// Live updates: each open page holds one Server-Sent Events stream
// (GET /live?page=<its URL>). The stream redraws the page's live regions
// with the same view and templates as the page itself whenever the fleet
// changes (and every second on pages that show ages), and sends only the
// regions whose HTML changed; the page script swaps them in. There is no
// polling loop in the browser and nothing per row: one stream per page,
// woken by the store's change log and the hub's live health.

const (
	// minRedraw spaces a stream's redraws: bursts of changes coalesce.
	minRedraw = 150 * time.Millisecond
	// liveKeepalive keeps idle streams open through proxies.
	liveKeepalive = 15 * time.Second
	// reauthEvery is how often a stream checks that its token still holds.
	reauthEvery = 30 * time.Second
)

// patch is one region's new HTML.
type patch struct {
	ID   string `json:"id"`
	Hash string `json:"hash"`
	HTML string `json:"html"`
}

func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	page, err := url.Parse(r.URL.Query().Get("page"))
	if err != nil || !strings.HasPrefix(page.Path, "/") || strings.HasPrefix(page.Path, "//") {
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "page must be the path of a console page", []api.ProblemDetail{{Location: "query.page", Message: "must be a console page's path"}})
		return
	}
	rt, params, ok := match(c.pages.nav, page.Path)
	if !ok {
		c.fail(w, r, http.StatusNotFound, api.CodeNotFound, "no console page at "+page.Path, nil)
		return
	}
	known := map[string]string{} // region id -> hash the page has
	for _, kv := range strings.Split(r.URL.Query().Get("have"), ",") {
		if id, h, ok := strings.Cut(kv, ":"); ok {
			known[id] = h
		}
	}
	ss := current(r.Context())
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n: live\n\n"); err != nil {
		return
	}
	_ = rc.Flush()
	c.metrics.streams.Add(ctx, 1)
	defer c.metrics.streams.Add(ctx, -1)

	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	set := c.pages.sets
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastWrite, lastAuth := time.Now(), time.Now()
	for {
		changed := c.fleet.changes() // before reading, so no change falls in between
		v, err := rt.view(c, viewRequest{ctx: ctx, path: page.Path, query: page.Query(), params: params, session: ss})
		switch {
		case err == nil:
			pd := c.pageData(r, nil, v.title, v.active, v.data)
			pd.Path, pd.Query = page.Path, page.Query()
			n := 0
			for _, id := range c.pages.regions[v.template] {
				html, sum, err := renderRegion(set[v.template], id, pd)
				if err != nil {
					c.log.ErrorContext(ctx, "console: rendering a live region failed", "region", id, "err", err, "request_id", telemetry.RequestID(r))
					continue
				}
				if known[id] == sum {
					continue
				}
				known[id] = sum
				if !send("patch", patch{ID: id, Hash: sum, HTML: string(html)}) {
					return
				}
				n++
			}
			if n > 0 {
				c.metrics.patches.Add(ctx, int64(n))
				lastWrite = time.Now()
			}
		case api.ErrorCode(err) == api.CodeNotFound:
			send("gone", map[string]string{"message": err.Error()})
			return
		case errors.Is(err, ctx.Err()):
			return
		default:
			c.log.WarnContext(ctx, "console: a live view failed", "page", page.Path, "err", err)
		}

		redrawAt := time.NewTimer(minRedraw)
		select {
		case <-ctx.Done():
			redrawAt.Stop()
			return
		case <-c.done:
			redrawAt.Stop()
			return
		case <-redrawAt.C:
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.done:
				return
			case <-changed:
				break wait
			case now := <-tick.C:
				if now.Sub(lastAuth) >= reauthEvery {
					lastAuth = now
					if _, err := c.cfg.Authenticate(ctx, ss.token); api.ErrorCode(err) == api.CodeUnauthorized {
						send("signout", map[string]string{"message": "the token is no longer valid"})
						return
					}
				}
				if v != nil && v.ticks {
					break wait
				}
				if now.Sub(lastWrite) >= liveKeepalive {
					if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
						return
					}
					lastWrite = now
				}
			}
		}
	}
}
