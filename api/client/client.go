// Package client is a Go client for the hub's REST API, used by the atoll
// CLI and by tests. Errors from the hub come back as *api.Problem, so
// callers can switch on Problem.Code.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Client talks to one hub with one token.
type Client struct {
	server  string
	token   string
	http    *http.Client
	timeout time.Duration // of one request and answer; 0: none
	dryRun  bool          // creates, updates and patches ask for dryRun=All
}

// SetRequestTimeout bounds every request that is not a stream (watches,
// logs and drill timelines) from sending to its whole answer; 0 means no
// bound but the caller's context. Streams are bounded until their answer
// starts only when the http.Client's transport says so
// (ResponseHeaderTimeout).
func (c *Client) SetRequestTimeout(d time.Duration) { c.timeout = d }

// New makes a client for server (e.g. http://127.0.0.1:8080) with a bearer
// token. A nil httpClient means a default with no overall timeout (watches
// stream for long), relying on contexts instead.
func New(server, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	return &Client{server: strings.TrimRight(server, "/"), token: token, http: httpClient}
}

// Server is the hub's base URL.
func (c *Client) Server() string { return c.server }

// ListOptions narrows a list.
type ListOptions struct {
	LabelSelector string
	Limit         int
	Continue      string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	return q
}

// Get reads one object into out.
func (c *Client) Get(ctx context.Context, plural, name string, out any) error {
	return c.do(ctx, http.MethodGet, "/api/v1/"+plural+"/"+url.PathEscape(name), nil, "", nil, out)
}

// List reads one page into out (a list type).
func (c *Client) List(ctx context.Context, plural string, opts ListOptions, out any) error {
	return c.do(ctx, http.MethodGet, "/api/v1/"+plural, opts.query(), "", nil, out)
}

// Create creates obj and reads the created object into out.
func (c *Client) Create(ctx context.Context, plural string, obj, out any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/api/v1/"+plural, nil, "application/json", body, out)
}

// Update replaces obj (labels, annotations, finalizers, spec).
func (c *Client) Update(ctx context.Context, plural, name string, obj, out any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, "/api/v1/"+plural+"/"+url.PathEscape(name), nil, "application/json", body, out)
}

// Patch applies a JSON merge patch.
func (c *Client) Patch(ctx context.Context, plural, name string, patch []byte, out any) error {
	return c.do(ctx, http.MethodPatch, "/api/v1/"+plural+"/"+url.PathEscape(name), nil, "application/merge-patch+json", patch, out)
}

// Delete deletes an object and reads its last state into out (may be nil).
func (c *Client) Delete(ctx context.Context, plural, name string, out any) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/"+plural+"/"+url.PathEscape(name), nil, "", nil, out)
}

// Raw sends a request and reads the JSON answer into out; for routes the
// typed methods do not cover.
func (c *Client) Raw(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	return c.do(ctx, method, path, query, ct, body, out)
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, contentType string, body []byte) (*http.Request, error) {
	u := c.server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("bad server address %q: %w", c.server, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) error {
	parent := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if c.dryRun && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch) {
		query = withDryRun(query)
	}
	req, err := c.newRequest(ctx, method, path, query, contentType, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.timedOut(parent, ctx, c.unreachable(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return c.timedOut(parent, ctx, fmt.Errorf("read answer from %s: %w", c.server, err))
	}
	if resp.StatusCode >= 300 {
		return problemOf(resp, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("unexpected answer from %s: %w", c.server, err)
		}
	}
	return nil
}

// ErrTimeout is returned (wrapped) when the hub did not answer within the
// request timeout.
var ErrTimeout = errors.New("the hub did not answer in time")

// timedOut words err as a timeout when the request's own deadline (not
// the caller's) ended it, or the transport gave up waiting for an answer.
func (c *Client) timedOut(parent, ctx context.Context, err error) error {
	var ne interface{ Timeout() bool }
	if parent.Err() == nil && (ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %s did not answer within %s (--request-timeout)", ErrTimeout, c.server, c.timeout)
	}
	return err
}

func (c *Client) unreachable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("cannot reach the hub at %s: %w", c.server, errors.Unwrap(err))
}

func problemOf(resp *http.Response, data []byte) error {
	p := &api.Problem{}
	if json.Unmarshal(data, p) != nil || p.Code == "" {
		p = &api.Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Code: "HTTP" + strconv.Itoa(resp.StatusCode),
			Detail: strings.TrimSpace(string(data))}
		if len(p.Detail) > 200 {
			p.Detail = p.Detail[:200]
		}
	}
	return p
}

// Event is one event of a watch.
type Event struct {
	ResourceVersion string
	Type            string
	Object          json.RawMessage
}

// Watch streams changes of a kind, calling fn for each event until ctx
// ends, fn returns an error or the hub closes the stream. With
// resourceVersion "" the stream starts with an ADDED event per object.
// When the hub ends the stream with an error (410 Gone after compaction)
// that error is returned as *api.Problem.
func (c *Client) Watch(ctx context.Context, plural, labelSelector, resourceVersion string, fn func(Event) error) error {
	q := url.Values{}
	if labelSelector != "" {
		q.Set("labelSelector", labelSelector)
	}
	if resourceVersion != "" {
		q.Set("resourceVersion", resourceVersion)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/watch/"+plural, q, "", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.timedOut(ctx, ctx, c.unreachable(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return problemOf(resp, data)
	}
	err = readEvents(resp.Body, func(id, event string, data []byte) error {
		var we api.WatchEvent
		if err := json.Unmarshal(data, &we); err != nil {
			return fmt.Errorf("watch: bad event: %w", err)
		}
		return fn(Event{ResourceVersion: id, Type: event, Object: we.Object})
	})
	if err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}

// readEvents reads a Server-Sent Events stream until it ends, calling fn
// for each event with its id, name and data. An ERROR event ends the
// stream with its problem.
func readEvents(body io.Reader, fn func(id, event string, data []byte) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var id, event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "ERROR" {
				p := &api.Problem{}
				_ = json.Unmarshal(data, p)
				return p
			}
			if event != "" {
				if err := fn(id, event, data); err != nil {
					return err
				}
			}
			id, event, data = "", "", nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return nil
}

// DrillEvent is one event of a drill's timeline stream: exactly one of
// Entry (event "timeline"), Sample ("sample"), Phase ("phase") and Drill
// ("report", the last one) is set. ID resumes the stream after it.
type DrillEvent struct {
	ID     string
	Entry  *api.DrillEvent
	Sample *api.DrillSample
	Phase  string
	Drill  *api.Drill
}

// FollowDrill streams a drill's timeline from after (an event ID, or ""
// for the beginning), calling fn for each event, until the report event
// (then it returns nil), ctx ends, fn fails or the hub closes the stream
// early (io.ErrUnexpectedEOF: follow again from the last ID).
func (c *Client) FollowDrill(ctx context.Context, name, after string, fn func(DrillEvent) error) error {
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/drills/"+url.PathEscape(name)+"/timeline", nil, "", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after != "" {
		req.Header.Set("Last-Event-ID", after)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.timedOut(ctx, ctx, c.unreachable(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return problemOf(resp, data)
	}
	done := errors.New("report received")
	err = readEvents(resp.Body, func(id, event string, data []byte) error {
		ev := DrillEvent{ID: id}
		var err error
		switch event {
		case "timeline":
			ev.Entry = &api.DrillEvent{}
			err = json.Unmarshal(data, ev.Entry)
		case "sample":
			ev.Sample = &api.DrillSample{}
			err = json.Unmarshal(data, ev.Sample)
		case "phase":
			var p struct {
				Phase string `json:"phase"`
			}
			err = json.Unmarshal(data, &p)
			ev.Phase = p.Phase
		case "report":
			ev.Drill = &api.Drill{}
			err = json.Unmarshal(data, ev.Drill)
		default:
			return nil // newer hubs may send more
		}
		if err != nil {
			return fmt.Errorf("drill timeline: bad %s event: %w", event, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		if ev.Drill != nil {
			return done
		}
		return nil
	})
	switch {
	case errors.Is(err, done):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		return io.ErrUnexpectedEOF
	}
	return err
}

// LogsOptions narrows a logs request.
type LogsOptions struct {
	Replica, Cluster, Stream string
	Follow                   bool
	// Tail keeps the last Tail lines of each replica; nil: all.
	Tail *int
	// Since is an RFC 3339 time or a duration back from now ("10m").
	Since string
	// Timestamps prefixes each line with its time.
	Timestamps bool
	// Previous reads the run before each replica's last restart.
	Previous bool
}

// Logs streams a workload's replica logs (lines prefixed [cluster/replica]
// unless one replica is asked for). The caller closes the reader.
func (c *Client) Logs(ctx context.Context, workload string, opts LogsOptions) (io.ReadCloser, error) {
	q := url.Values{}
	for k, v := range map[string]string{"replica": opts.Replica, "cluster": opts.Cluster, "stream": opts.Stream, "since": opts.Since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]bool{"follow": opts.Follow, "timestamps": opts.Timestamps, "previous": opts.Previous} {
		if v {
			q.Set(k, "true")
		}
	}
	if opts.Tail != nil {
		q.Set("tail", strconv.Itoa(*opts.Tail))
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/workloads/"+url.PathEscape(workload)+"/logs", q, "", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.timedOut(ctx, ctx, c.unreachable(err))
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, problemOf(resp, data)
	}
	return &logsBody{ReadCloser: resp.Body, resp: resp}, nil
}

// ErrLogsIncomplete is returned (wrapped) at the end of a logs read that
// some cluster could not serve: the lines read are what the others had,
// and the "# " lines say why.
var ErrLogsIncomplete = errors.New("logs incomplete")

// logsBody is a logs answer that ends with ErrLogsIncomplete instead of
// io.EOF when the hub's trailer counts clusters it could not read, or
// with the problem a refusal trailer carries (the replica is nowhere,
// found only after the lines' 200 was out).
type logsBody struct {
	io.ReadCloser
	resp *http.Response
}

func (b *logsBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		if refused := b.resp.Trailer.Get(api.LogsRefusedTrailer); refused != "" {
			return n, problemOf(b.resp, []byte(refused))
		}
		if unread, _ := strconv.Atoi(b.resp.Trailer.Get(api.LogsUnreadTrailer)); unread > 0 {
			return n, fmt.Errorf("%w: %d cluster(s) could not be read (the lines starting \"# \" say why)", ErrLogsIncomplete, unread)
		}
	}
	return n, err
}
