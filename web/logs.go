package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"
)

// maxLogTail is the most lines the logs panel asks each replica for.
const maxLogTail = 2000

// logs streams a workload's replica logs to the workload page's logs
// panel: the API's logs route, in process, as the session's token (so
// operators and above, as the API decides), its answer passed through as
// it comes. The panel asks for the last lines with their times and, when
// following, keeps the stream open; the browser closing it ends the read
// on every member.
func (c *Console) logs(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	in := r.URL.Query()
	q := url.Values{"timestamps": {"true"}, "tail": {"200"}}
	if t := in.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > maxLogTail {
			c.fail(w, r, http.StatusUnprocessableEntity, "Invalid", "The tail must be a whole number of lines from 1 to "+strconv.Itoa(maxLogTail)+".", nil)
			return
		}
		q.Set("tail", t)
	}
	if in.Get("follow") == "1" {
		q.Set("follow", "true")
	}
	for _, k := range []string{"replica", "cluster"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v) // the API checks them
		}
	}
	req, err := c.apiRequest(r, current(r.Context()), http.MethodGet, "/api/v1/workloads/"+url.PathEscape(name)+"/logs?"+q.Encode(), http.NoBody)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Internal", "The logs could not be asked for.", nil)
		return
	}
	req.Header.Set("Accept", "text/plain, application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	c.cfg.API.ServeHTTP(w, req)
}
