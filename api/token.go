package api

import "time"

// Roles, from least to most trusted. Each includes what the ones before it
// may do.
const (
	RoleViewer   = "viewer"   // read and watch
	RoleOperator = "operator" // + write workloads, cordon clusters, run drills
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

// Token types.
const (
	TokenAPI    = "api"    // a bearer token with a role
	TokenJoin   = "join"   // registers new members, nothing else
	TokenMember = "member" // a registered member's own credential (made by the hub)
)

// TokenSpec is what a token may do and for how long.
type TokenSpec struct {
	Type        string     `json:"type,omitempty" enum:"api,join,member" doc:"api (default): a bearer token with a role; join: registers members; member: a member's own credential, made at registration."`
	Role        string     `json:"role,omitempty" enum:"viewer,operator,admin" doc:"Required for api tokens."`
	Region      string     `json:"region,omitempty" doc:"join: only members of this region may register with it."`
	Uses        int32      `json:"uses,omitempty" minimum:"0" doc:"join: how many registrations it allows; 0 means no limit."`
	Cluster     string     `json:"cluster,omitempty" doc:"member: the cluster it belongs to."`
	Description string     `json:"description,omitempty" maxLength:"1024"`
	TTL         Duration   `json:"ttl,omitempty" doc:"Lifetime from creation, e.g. 720h; sets expiresAt. Empty with no expiresAt: never expires."`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty" doc:"When the token stops working."`
}

// TokenStatus is what the hub keeps about a token besides its hash.
type TokenStatus struct {
	Prefix string `json:"prefix,omitempty" doc:"The first characters of the secret, to recognise it."`
	Secret string `json:"secret,omitempty" doc:"The token itself: present only in the answer to create, never again."`
	Used   int32  `json:"used,omitempty" doc:"join: registrations made with it so far."`
}

// TypeOrDefault is the token's type, api when unset.
func (s TokenSpec) TypeOrDefault() string {
	if s.Type == "" {
		return TokenAPI
	}
	return s.Type
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
	switch t.Spec.TypeOrDefault() {
	case TokenAPI:
		switch t.Spec.Role {
		case RoleViewer, RoleOperator, RoleAdmin:
		case "":
			e.add("spec.role", "is required: viewer, operator or admin")
		default:
			e.addValue("spec.role", t.Spec.Role, "must be viewer, operator or admin")
		}
		if t.Spec.Region != "" || t.Spec.Uses != 0 {
			e.add("spec", "region and uses only apply to join tokens")
		}
	case TokenJoin:
		if t.Spec.Role != "" {
			e.add("spec.role", "join tokens have no role: they only register members")
		}
		if t.Spec.Region != "" && !isDNSLabel(t.Spec.Region) {
			e.addValue("spec.region", t.Spec.Region, "must be a region name (DNS-1123 label)")
		}
		if t.Spec.Uses < 0 {
			e.addValue("spec.uses", t.Spec.Uses, "must be 0 (no limit) or more")
		}
	case TokenMember:
		e.addValue("spec.type", t.Spec.Type, "member tokens are made by the hub when a member registers")
	default:
		e.addValue("spec.type", t.Spec.Type, "must be api or join")
	}
	if t.Spec.Cluster != "" {
		e.add("spec.cluster", "is set by the hub")
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
