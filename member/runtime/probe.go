package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atollhq/atoll/api"
)

// prober runs single probe checks, each bounded by its timeout.
type prober struct {
	transport *http.Transport
	client    *http.Client
}

func newProber() *prober {
	t := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	return &prober{
		transport: t,
		client: &http.Client{
			Transport: t,
			// A 3xx answer is a success: do not follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (p *prober) close() { p.transport.CloseIdleConnections() }

// seconds turns a probe field into a duration, def when unset.
func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func threshold(v int32, def int32) int {
	if v <= 0 {
		return int(def)
	}
	return int(v)
}

// probeState is one probe's schedule and counters within a probe loop.
type probeState struct {
	kind     string // startup, liveness, readiness
	p        *api.Probe
	next     time.Time // the next periodic check
	ok, fail int
	// Before the probe first passes in a run, a failed HTTP or TCP
	// readiness or startup check is retried quickly (quickRetryFirst,
	// doubling up to quickRetryMax) during the run's first quickWindow,
	// so that a replica is ready within a fraction of a second of
	// answering instead of a whole period later: a failover's
	// replacements wait on this. retry is when (zero: none is due),
	// backoff the delay after the next failed one, quickUntil the end of
	// the window. A failed retry is not counted: the periodic checks
	// alone count toward the failure threshold, as before.
	passed     bool
	retry      time.Time
	backoff    time.Duration
	quickUntil time.Time
}

// The quick retries before a probe first passes: 50, 100, 200 ms, then
// every 250 ms, for the run's first 10 s (at most about 40 checks, and
// none for a replica that never answers after that).
const (
	quickRetryFirst = 50 * time.Millisecond
	quickRetryMax   = 250 * time.Millisecond
	quickWindow     = 10 * time.Second
)

// due is when ps next checks: its retry when one comes first.
func (ps *probeState) due() time.Time {
	if !ps.retry.IsZero() && ps.retry.Before(ps.next) {
		return ps.retry
	}
	return ps.next
}

// quick reports whether ps retries a failed check quickly: a readiness
// or startup probe over HTTP or TCP (an exec probe forks a process, in a
// container a runc exec: too dear to repeat) that has not passed yet.
func (ps *probeState) quick() bool {
	return !ps.passed && (ps.kind == "readiness" || ps.kind == "startup") && (ps.p.HTTP != nil || ps.p.TCP != nil)
}

// checked records one check at now: the next periodic one is a period
// later unless this was a retry; a failure the quick retries cover
// schedules the next retry.
func (ps *probeState) checked(now time.Time, ok, periodic bool) (count bool) {
	period := seconds(ps.p.PeriodSeconds, 10)
	if periodic {
		ps.next = now.Add(period)
	}
	if ok {
		ps.passed, ps.retry = true, time.Time{}
		return true
	}
	ps.retry = time.Time{}
	if ps.quick() {
		if ps.backoff == 0 {
			ps.backoff = quickRetryFirst
		}
		if at := now.Add(ps.backoff); at.Before(ps.next) && !at.After(ps.quickUntil) {
			ps.retry = at
			ps.backoff = min(2*ps.backoff, quickRetryMax)
		}
	}
	return periodic
}

// probeLoop runs a run's probes until ctx ends: the startup probe alone
// first (when there is one), then liveness and readiness, each on its
// own period. Checks run one at a time; each is bounded by its timeout, so
// a hanging check delays the next by at most that.
func (r *Runtime) probeLoop(ctx context.Context, rep *replica, run *procRun, t api.ReplicaTemplate, port int) {
	defer r.wg.Done()
	if run.initDone != nil {
		select {
		case <-run.initDone:
		case <-ctx.Done():
			return
		}
	}
	begin := time.Now()
	mk := func(kind string, p *api.Probe) *probeState {
		first := begin.Add(time.Duration(max(p.InitialDelaySeconds, 0)) * time.Second)
		return &probeState{kind: kind, p: p, next: first, quickUntil: first.Add(quickWindow)}
	}
	var startup *probeState
	if t.Startup != nil {
		startup = mk("startup", t.Startup)
	}
	var others []*probeState
	if t.Liveness != nil {
		others = append(others, mk("liveness", t.Liveness))
	}
	if t.Readiness != nil {
		others = append(others, mk("readiness", t.Readiness))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		active := others
		if startup != nil {
			active = []*probeState{startup}
		}
		if len(active) == 0 {
			return
		}
		ps := active[0]
		for _, a := range active[1:] {
			if a.due().Before(ps.due()) {
				ps = a
			}
		}
		periodic := !ps.next.After(ps.due())
		timer.Reset(max(time.Until(ps.due()), 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ok, detail := r.prober.check(ctx, ps.p, run.env, run.dir, port)
		if ctx.Err() != nil {
			return
		}
		if !ps.checked(time.Now(), ok, periodic) {
			continue
		}
		if ok {
			ps.ok, ps.fail = ps.ok+1, 0
		} else {
			ps.ok, ps.fail = 0, ps.fail+1
		}
		switch ps.kind {
		case "startup":
			if ok && ps.ok >= threshold(ps.p.SuccessThreshold, 1) {
				startup = nil
				r.startupPassed(rep, run)
			} else if !ok && ps.fail >= threshold(ps.p.FailureThreshold, 3) {
				r.probeGaveUp(rep, run, "startup probe failed: "+detail)
				return
			}
		case "liveness":
			if !ok && ps.fail >= threshold(ps.p.FailureThreshold, 3) {
				r.probeGaveUp(rep, run, "liveness probe failed: "+detail)
				return
			}
		case "readiness":
			if ok && ps.ok >= threshold(ps.p.SuccessThreshold, 1) {
				r.setReady(rep, run, true, "")
			} else if !ok && ps.fail >= threshold(ps.p.FailureThreshold, 3) {
				r.setReady(rep, run, false, "readiness probe failed: "+detail)
			}
		}
	}
}

const readinessPrefix = "readiness probe failed: "

func (r *Runtime) current(rep *replica, run *procRun) bool {
	return r.state == stateRunning && rep.run == run && !run.exited && !run.stopping && !run.detached
}

func (r *Runtime) startupPassed(rep *replica, run *procRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.current(rep, run) {
		return
	}
	rep.st.Phase = PhaseRunning
	rep.st.Ready = rep.spec.Template.Readiness == nil
	r.notify()
}

func (r *Runtime) probeGaveUp(rep *replica, run *procRun, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.current(rep, run) {
		return
	}
	r.killForRestartLocked(rep, run, reason)
}

func (r *Runtime) setReady(rep *replica, run *procRun, ready bool, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.current(rep, run) || rep.st.Phase != PhaseRunning {
		return
	}
	m := rep.st.Message
	switch {
	case !ready:
		m = msg
	case strings.HasPrefix(m, readinessPrefix) || rep.st.Adopted && m != "":
		m = ""
	}
	if rep.st.Ready == ready && rep.st.Message == m {
		return
	}
	rep.st.Ready, rep.st.Message = ready, m
	if !ready && msg != "" {
		rep.st.Reason, rep.st.LastError = ReasonProbeFailed, msg
	}
	r.notify()
}

// check runs one probe once.
func (p *prober) check(ctx context.Context, pr *api.Probe, env []string, dir string, port int) (bool, string) {
	timeout := seconds(pr.TimeoutSeconds, 1)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	timedOut := func(err error) string {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Sprintf("timed out after %v", timeout)
		}
		return err.Error()
	}
	switch {
	case pr.HTTP != nil:
		pt := port
		if pr.HTTP.Port > 0 {
			pt = int(pr.HTTP.Port)
		}
		url := "http://127.0.0.1:" + strconv.Itoa(pt) + cmp.Or(pr.HTTP.Path, "/")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("User-Agent", "atoll-probe")
		resp, err := p.client.Do(req)
		if err != nil {
			return false, fmt.Sprintf("GET %s: %s", url, timedOut(err))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, ""
		}
		return false, fmt.Sprintf("GET %s: HTTP %d", url, resp.StatusCode)
	case pr.TCP != nil:
		pt := port
		if pr.TCP.Port > 0 {
			pt = int(pr.TCP.Port)
		}
		addr := "127.0.0.1:" + strconv.Itoa(pt)
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, fmt.Sprintf("connect %s: %s", addr, timedOut(err))
		}
		c.Close()
		return true, ""
	case pr.Exec != nil && len(pr.Exec.Command) > 0:
		argv := pr.Exec.Command
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Path, cmd.Err = lookPath(argv[0], env)
		cmd.Env, cmd.Dir = env, dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// At the timeout, kill the probe's whole process group: a
		// grandchild must not keep it (or its output pipe) alive.
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 500 * time.Millisecond
		out := &capBuffer{max: 512}
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		if err == nil {
			return true, ""
		}
		if ctx.Err() != nil {
			return false, fmt.Sprintf("%s: %s", argv[0], timedOut(err))
		}
		msg := fmt.Sprintf("%s: %v", argv[0], err)
		if o := strings.TrimSpace(out.String()); o != "" {
			msg += ": " + o
		}
		return false, msg
	}
	return false, "the probe sets none of http, tcp and exec"
}

// capBuffer keeps the first max bytes written to it.
type capBuffer struct {
	max int
	b   []byte
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capBuffer) String() string { return string(c.b) }
