package web

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
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

// sessions are stored in PostgreSQL (package pgstore), so a user's
// requests may reach any hub behind a load balancer, and a hub restart
// signs nobody out. A row is keyed by the SHA-256 of the session id; the
// token is sealed (AES-256-GCM) with a key derived from the id, which
// only the browser's cookie holds: a copy of the database (a backup, say)
// gives neither a usable cookie nor a token.
type sessions struct {
	store *pgstore.Store
	now   func() time.Time
	ttl   time.Duration
}

func newSessions(store *pgstore.Store, now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{store: store, now: now, ttl: ttl}
}

// sealedSession is what a row's sealed column opens to.
type sealedSession struct {
	Token string `json:"token"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// create starts a session and returns its id.
func (s *sessions) create(ctx context.Context, token string, p Principal) (string, time.Time, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now().UTC()
	exp := now.Add(s.ttl)
	plain, _ := json.Marshal(sealedSession{Token: token, Name: p.Name, Role: p.Role})
	hash := idHash(id)
	aead, err := sessionAEAD(id)
	if err != nil {
		return "", time.Time{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, plain, hash) // bound to its row
	if err := s.store.PutConsoleSession(ctx, pgstore.ConsoleSession{IDHash: hash, Sealed: sealed, Created: now, Expires: exp}); err != nil {
		return "", time.Time{}, err
	}
	return id, exp, nil
}

// get opens the session with this id: found false when there is none (or
// it expired, or its row does not open with this id); an error when the
// store could not say.
func (s *sessions) get(ctx context.Context, id string) (ss *session, found bool, err error) {
	if id == "" {
		return nil, false, nil
	}
	hash := idHash(id)
	cs, err := s.store.ConsoleSession(ctx, hash, s.now())
	switch {
	case api.ErrorCode(err) == api.CodeNotFound:
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	aead, err := sessionAEAD(id)
	if err != nil {
		return nil, false, err
	}
	if len(cs.Sealed) < aead.NonceSize() {
		return nil, false, nil
	}
	plain, err := aead.Open(nil, cs.Sealed[:aead.NonceSize()], cs.Sealed[aead.NonceSize():], hash)
	var v sealedSession
	if err != nil || json.Unmarshal(plain, &v) != nil {
		return nil, false, nil // not this id's: as good as none
	}
	return &session{token: v.Token, principal: Principal{Name: v.Name, Role: v.Role}, expires: cs.Expires}, true, nil
}

func (s *sessions) drop(ctx context.Context, id string) error {
	return s.store.DeleteConsoleSession(ctx, idHash(id))
}

// idHash is a session's row key.
func idHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// sessionAEAD seals a session's row with a key derived from its id (256
// random bits; HKDF gives a key independent of the row key).
func sessionAEAD(id string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(id), nil, "atoll console session token", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
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
			var err error
			if ss, ok, err = c.sessions.get(r.Context(), cookie.Value); err != nil {
				c.log.WarnContext(r.Context(), "console: reading a session failed", "err", err)
				c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, errUnavailable.Error(), nil)
				return
			}
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
				if err := c.sessions.drop(r.Context(), cookie.Value); err != nil {
					c.log.WarnContext(r.Context(), "console: ending a session failed", "err", err)
				}
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

// safeNext keeps a post-sign-in redirect on this site: a path on this
// origin ("/workloads?sort=name"), or "/". Browsers are lenient where an
// attacker wants them to be: they drop tabs and newlines anywhere in a
// URL ("/\t/evil.example" becomes "//evil.example"), read backslashes as
// slashes ("/\evil.example"), and take "//host" as another site. So: no
// control characters, spaces or backslashes, raw or percent-encoded; no
// scheme, host or user; a path that starts with exactly one "/"; and the
// URL as it will be sent must still be all of that.
func safeNext(next string) string {
	if !relativePath(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Opaque != "" || u.Host != "" || u.User != nil || !relativePath(u.Path) {
		return "/"
	}
	out := u.String()
	if !relativePath(out) {
		return "/"
	}
	return out
}

// relativePath tells a string that starts with one "/" and holds no
// character a browser could bend (controls, spaces, backslashes).
func relativePath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return false
	}
	for _, r := range s {
		if r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

type signinView struct {
	Next   string
	Reason string
	Error  string
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if cookie, err := r.Cookie(sessionCookie); err == nil {
		if _, ok, _ := c.sessions.get(r.Context(), cookie.Value); ok {
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
	if c.cfg.Throttle != nil {
		if wait, ok := c.cfg.Throttle.Allow(r.Context(), "console", r.RemoteAddr); !ok {
			result = api.CodeTooManyRequests
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			c.signinFailed(w, r, next, http.StatusTooManyRequests, api.CodeTooManyRequests,
				fmt.Sprintf("Too many failed sign-ins from your address: try again in %d seconds.", secs), nil)
			return
		}
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
		if c.cfg.Throttle != nil {
			c.cfg.Throttle.Fail(r.RemoteAddr)
		}
		c.log.InfoContext(r.Context(), "console: sign-in refused", "reason", err.Error(), "request_id", telemetry.RequestID(r))
		c.signinFailed(w, r, next, http.StatusUnauthorized, api.CodeUnauthorized, "That token was not accepted: "+err.Error()+".",
			[]api.ProblemDetail{{Location: "form.token", Message: err.Error()}})
		return
	}
	id, exp, err := c.sessions.create(r.Context(), token, p)
	if err != nil {
		result = api.CodeUnavailable
		c.log.WarnContext(r.Context(), "console: storing a session failed", "err", err)
		c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, errUnavailable.Error(), nil)
		return
	}
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
		if ss, ok, _ := c.sessions.get(r.Context(), cookie.Value); ok {
			c.log.InfoContext(r.Context(), "console: signed out", "principal", ss.principal.Name, "request_id", telemetry.RequestID(r))
		}
		if err := c.sessions.drop(r.Context(), cookie.Value); err != nil {
			// The cookie goes anyway; the row lasts until it expires.
			c.log.WarnContext(r.Context(), "console: ending a session failed", "err", err)
		}
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
