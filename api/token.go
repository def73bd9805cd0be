package api

import "time"

// Roles, from least to most trusted. Each includes what the ones before it
// may do.
const (
	RoleViewer   = "viewer"   // read and watch
	RoleOperator = "operator" // + write workloads (later drills and cordons)
	RoleAdmin    = "admin"    // + tokens and audit
)

// RoleRank orders roles; an unknown role ranks below viewer.
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Token is an API bearer token. Its secret is shown once, in the answer to
// the create call; the hub keeps only a hash and a display prefix.
type Token struct {
	TypeMeta
	Metadata ObjectMeta  `json:"metadata"`
	Spec     TokenSpec   `json:"spec"`
	Status   TokenStatus `json:"status,omitzero" readOnly:"true"`
}

// TokenList is a page of tokens.
type TokenList struct {
	TypeMeta
	Metadata ListMeta `json:"metadata"`
	Items    []Token  `json:"items"`
}

// TokenSpec is what a token may do and for how long.
type TokenSpec struct {
	Role        string     `json:"role" enum:"viewer,operator,admin"`
	Description string     `json:"description,omitempty" maxLength:"1024"`
	TTL         Duration   `json:"ttl,omitempty" doc:"Lifetime from creation, e.g. 720h; sets expiresAt. Empty with no expiresAt: never expires."`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty" doc:"When the token stops working."`
}

// TokenStatus is what the hub keeps about a token besides its hash.
type TokenStatus struct {
	Prefix string `json:"prefix,omitempty" doc:"The first characters of the secret, to recognise it."`
	Secret string `json:"secret,omitempty" doc:"The token itself: present only in the answer to create, never again."`
}

// GetTypeMeta implements Object.
func (t *Token) GetTypeMeta() *TypeMeta { return &t.TypeMeta }

// GetMetadata implements Object.
func (t *Token) GetMetadata() *ObjectMeta { return &t.Metadata }

// Validate implements Object.
func (t *Token) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, t.TypeMeta, "Token")
	validateMeta(&e, &t.Metadata)
	switch t.Spec.Role {
	case RoleViewer, RoleOperator, RoleAdmin:
	case "":
		e.add("spec.role", "is required: viewer, operator or admin")
	default:
		e.addValue("spec.role", t.Spec.Role, "must be viewer, operator or admin")
	}
	validateDuration(&e, "spec.ttl", t.Spec.TTL)
	if t.Spec.TTL != "" && t.Spec.TTL.Get(0) <= 0 {
		e.addValue("spec.ttl", string(t.Spec.TTL), "must be positive")
	}
	if len(t.Spec.Description) > 1024 {
		e.add("spec.description", "is longer than 1024 characters")
	}
	return e.result()
}
