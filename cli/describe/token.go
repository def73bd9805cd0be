package describe

import (
	"cmp"
	"fmt"
	"io"
	"time"

	"github.com/atollhq/atoll/api"
)

// Token writes a token in words: what it is for, its role, when it
// expires and how often it was used; never its secret, only the first
// characters that recognise it.
func Token(out io.Writer, t *api.Token, now time.Time) error {
	d := newDoc(out)
	metadata(d, "Token", t.Metadata, now)
	s := &t.Spec
	switch s.TypeOrDefault() {
	case api.TokenAPI:
		d.row(0, "Type", "api: a bearer token for the API and the console")
		d.row(0, "Role", roleText(s.Role))
	case api.TokenJoin:
		d.row(0, "Type", "join: registers new members, nothing else")
		d.row(0, "Region", cmp.Or(s.Region, "any: members of every region may register with it"))
		limit := "no limit"
		if s.Uses > 0 {
			limit = fmt.Sprintf("of %d allowed", s.Uses)
		}
		d.row(0, "Uses", fmt.Sprintf("%s made, %s", plural(t.Status.Used, "registration"), limit))
	case api.TokenMember:
		d.row(0, "Type", "member: the credential of a registered member")
		d.row(0, "Cluster", s.Cluster)
	default:
		d.row(0, "Type", s.Type)
	}
	if s.Description != "" {
		d.row(0, "Description", s.Description)
	}
	prefix := "<unknown>"
	if t.Status.Prefix != "" {
		prefix = t.Status.Prefix + "…"
	}
	d.row(0, "Secret", prefix+" (the first characters only: the secret was shown once, when the token was made)")
	d.row(0, "Expires", expiryText(s, now))
	return d.flush()
}

func roleText(role string) string {
	switch role {
	case api.RoleViewer:
		return "viewer: reads and watches"
	case api.RoleOperator:
		return "operator: reads, writes workloads, cordons and drains clusters, runs drills"
	case api.RoleAdmin:
		return "admin: everything, tokens and the audit log included"
	}
	return role
}

func expiryText(s *api.TokenSpec, now time.Time) string {
	switch {
	case s.ExpiresAt == nil:
		return "never"
	case !s.ExpiresAt.After(now):
		return "expired: " + when(s.ExpiresAt, now)
	}
	return when(s.ExpiresAt, now)
}
