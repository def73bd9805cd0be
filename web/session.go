package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/telemetry"
)

// Cookie names. The session cookie holds a random id only; the API token
// it stands for stays on the server.
const (
	sessionCookie = "atoll_session"
	flashCookie   = "atoll_flash"
	themeCookie   = "atoll_theme" // read by the pages, set by the page script
)

// session is one sign-in.
type session struct {
	token     string // the API token, sent to the API on the user's behalf
	principal Principal
	expires   time.Time
}

// sessions are kept in memory, keyed by the hash of their id: a hub
// restart signs everyone out (they sign in again with their token), and
// behind a load balancer the console needs sticky sessions.
type sessions struct {
	now func() time.Time
	ttl time.Duration

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, m: map[[32]byte]*session{}}
}

// create starts a session and returns its id.
func (s *sessions) create(token string, p Principal) (string, time.Time) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	exp := now.Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m { // sweep: sessions are few, sign-ins rare
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = &session{token: token, principal: p, expires: exp}
	return id, exp
}

func (s *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[key]
	if !ok {
		return nil, false
	}
	if !s.now().Before(ss.expires) {
		delete(s.m, key)
		return nil, false
	}
	return ss, true
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}

type sessionKey struct{}

// current is the signed-in session of a request that passed
// requireSession.
func current(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

func canOperate(s *session) bool {
	return s != nil && api.RoleRank(s.principal.Role) >= api.RoleRank(api.RoleOperator)
}

// requireSession lets signed-in requests through, with the token checked
// against the hub on every request (a revoked token ends its sessions at
// once). Others go to the sign-in page.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookie, _ := r.Cookie(sessionCookie)
		var ss *session
		ok := false
		if cookie != nil {
			ss, ok = c.sessions.get(cookie.Value)
		}
		reason := "Sign in to continue."
		if ok {
			p, err := c.cfg.Authenticate(r.Context(), ss.token)
			switch {
			case err == nil:
				ss.principal = p // a role changed by an admin shows at once
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ss)))
				return
			case api.ErrorCode(err) == api.CodeUnauthorized:
				c.sessions.drop(cookie.Value)
				reason = "Your session ended: the token is no longer valid (" + err.Error() + "). Sign in again."
			default:
				c.log.WarnContext(r.Context(), "console: authenticating a session failed", "err", err)
				c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, errUnavailable.Error(), nil)
				return
			}
		}
		switch {
		case strings.Contains(r.Header.Get("Accept"), "text/event-stream"):
			// EventSource cannot see statuses: say it in the stream.
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write([]byte("event: signout\ndata: {}\n\n"))
		case r.Method == http.MethodGet && wantsHTML(r):
			q := url.Values{"next": {r.URL.RequestURI()}}
			if cookie != nil {
				q.Set("reason", reason)
			}
			http.Redirect(w, r, "/signin?"+q.Encode(), http.StatusSeeOther)
		default:
			w.Header().Set("WWW-Authenticate", `Cookie realm="atoll console"`)
			c.fail(w, r, http.StatusUnauthorized, api.CodeUnauthorized, reason, nil)
		}
	})
}

// safeNext keeps a post-sign-in redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

type signinView struct {
	Next   string
	Reason string
	Error  string
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if cookie, err := r.Cookie(sessionCookie); err == nil {
		if _, ok := c.sessions.get(cookie.Value); ok {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	v := signinView{Next: safeNext(r.URL.Query().Get("next")), Reason: r.URL.Query().Get("reason")}
	if r.URL.Query().Get("signedout") != "" {
		v.Reason = "You signed out."
	}
	c.render(w, r, http.StatusOK, "signin", "Sign in", v)
}

// signin turns an API token into a session cookie: HttpOnly (scripts
// cannot read it), SameSite=Strict (other sites cannot send it), Secure
// over TLS.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "the sign-in form could not be read", nil)
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	next := safeNext(r.PostForm.Get("next"))
	result := "ok"
	defer func() {
		c.metrics.signins.Add(r.Context(), 1, metric.WithAttributes(attribute.String("result", result)))
	}()
	if token == "" {
		result = api.CodeInvalid
		c.signinFailed(w, r, next, http.StatusUnprocessableEntity, api.CodeInvalid, "Paste an API token to sign in.",
			[]api.ProblemDetail{{Location: "form.token", Message: "is required"}})
		return
	}
	p, err := c.cfg.Authenticate(r.Context(), token)
	if err != nil {
		if api.ErrorCode(err) != api.CodeUnauthorized {
			result = api.CodeUnavailable
			c.log.WarnContext(r.Context(), "console: sign-in could not be checked", "err", err)
			c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, errUnavailable.Error(), nil)
			return
		}
		result = api.CodeUnauthorized
		c.log.InfoContext(r.Context(), "console: sign-in refused", "reason", err.Error(), "request_id", telemetry.RequestID(r))
		c.signinFailed(w, r, next, http.StatusUnauthorized, api.CodeUnauthorized, "That token was not accepted: "+err.Error()+".",
			[]api.ProblemDetail{{Location: "form.token", Message: err.Error()}})
		return
	}
	id, exp := c.sessions.create(token, p)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", Expires: exp, MaxAge: int(c.cfg.SessionTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.InfoContext(r.Context(), "console: signed in", "principal", p.Name, "role", p.Role, "request_id", telemetry.RequestID(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signinFailed(w http.ResponseWriter, r *http.Request, next string, status int, code, msg string, details []api.ProblemDetail) {
	if !wantsHTML(r) {
		c.fail(w, r, status, code, msg, details)
		return
	}
	c.render(w, r, status, "signin", "Sign in", signinView{Next: next, Error: msg})
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	if cookie, err := r.Cookie(sessionCookie); err == nil {
		if ss, ok := c.sessions.get(cookie.Value); ok {
			c.log.InfoContext(r.Context(), "console: signed out", "principal", ss.principal.Name, "request_id", telemetry.RequestID(r))
		}
		c.sessions.drop(cookie.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/signin?signedout=1", http.StatusSeeOther)
}

// flash is a one-time message shown on the next page, after a redirect.
type flash struct {
	Kind string `json:"k"` // ok or error
	Text string `json:"t"`
}

func setFlash(w http.ResponseWriter, r *http.Request, f flash) {
	b, _ := json.Marshal(f)
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	cookie, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(cookie.Value)
	var f flash
	if err != nil || json.Unmarshal(b, &f) != nil || f.Text == "" {
		return nil
	}
	return &f
}
