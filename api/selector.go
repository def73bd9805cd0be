package api

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// LabelSelector selects objects by their labels, in the Kubernetes shape
// used inside specs. Every entry must match.
type LabelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `json:"matchExpressions,omitempty"`
}

// Requirement is one condition on one label.
type Requirement struct {
	Key      string   `json:"key" minLength:"1"`
	Operator string   `json:"operator" enum:"In,NotIn,Exists,DoesNotExist"`
	Values   []string `json:"values,omitempty"`
}

// Selector is a parsed label selector: every requirement must hold.
// The zero Selector matches everything.
type Selector struct {
	Requirements []Requirement
}

// Empty reports whether the selector matches everything.
func (s Selector) Empty() bool { return len(s.Requirements) == 0 }

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.Requirements {
		v, ok := labels[r.Key]
		switch r.Operator {
		case "In":
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		}
	}
	return true
}

// String renders the selector in the query-string syntax ParseSelector
// reads.
func (s Selector) String() string {
	parts := make([]string, 0, len(s.Requirements))
	for _, r := range s.Requirements {
		switch {
		case r.Operator == "In" && len(r.Values) == 1:
			parts = append(parts, r.Key+"="+r.Values[0])
		case r.Operator == "NotIn" && len(r.Values) == 1:
			parts = append(parts, r.Key+"!="+r.Values[0])
		case r.Operator == "In":
			parts = append(parts, r.Key+" in ("+strings.Join(r.Values, ",")+")")
		case r.Operator == "NotIn":
			parts = append(parts, r.Key+" notin ("+strings.Join(r.Values, ",")+")")
		case r.Operator == "Exists":
			parts = append(parts, r.Key)
		case r.Operator == "DoesNotExist":
			parts = append(parts, "!"+r.Key)
		}
	}
	return strings.Join(parts, ",")
}

// Selector turns the spec form into a Selector. The selector must have
// passed validation.
func (ls *LabelSelector) Selector() Selector {
	var s Selector
	if ls == nil {
		return s
	}
	keys := make([]string, 0, len(ls.MatchLabels))
	for k := range ls.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.Requirements = append(s.Requirements, Requirement{Key: k, Operator: "In", Values: []string{ls.MatchLabels[k]}})
	}
	s.Requirements = append(s.Requirements, ls.MatchExpressions...)
	return s
}

// ParseSelector reads the query-string syntax of Kubernetes label
// selectors: "app=web,tier!=db,region in (eu-west,us-east),gpu,!legacy".
func ParseSelector(text string) (Selector, error) {
	var s Selector
	p := selParser{in: text}
	p.skipSpace()
	if p.done() {
		return s, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return Selector{}, err
		}
		s.Requirements = append(s.Requirements, r)
		p.skipSpace()
		if p.done() {
			return s, nil
		}
		if !p.eat(",") {
			return Selector{}, p.errorf("expected ',' between requirements")
		}
	}
}

type selParser struct {
	in  string
	pos int
}

func (p *selParser) done() bool { return p.pos >= len(p.in) }

func (p *selParser) skipSpace() {
	for p.pos < len(p.in) && (p.in[p.pos] == ' ' || p.in[p.pos] == '\t') {
		p.pos++
	}
}

func (p *selParser) eat(tok string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.in[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *selParser) errorf(format string, args ...any) error {
	return fmt.Errorf("label selector %q at position %d: %s", p.in, p.pos+1, fmt.Sprintf(format, args...))
}

func (p *selParser) word() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.in) && strings.IndexByte(" \t,=!()", p.in[p.pos]) < 0 {
		p.pos++
	}
	return p.in[start:p.pos]
}

func (p *selParser) requirement() (Requirement, error) {
	if p.eat("!") {
		key := p.word()
		if err := checkLabelKey(key); err != nil {
			return Requirement{}, p.errorf("%v", err)
		}
		return Requirement{Key: key, Operator: "DoesNotExist"}, nil
	}
	key := p.word()
	if err := checkLabelKey(key); err != nil {
		return Requirement{}, p.errorf("%v", err)
	}
	switch {
	case p.eat("!="):
		return p.single(key, "NotIn")
	case p.eat("=="), p.eat("="):
		return p.single(key, "In")
	}
	save := p.pos
	switch op := p.word(); op {
	case "in", "notin":
		if !p.eat("(") {
			return Requirement{}, p.errorf("expected '(' after %s", op)
		}
		var values []string
		for {
			v := p.word()
			if err := checkLabelValue(v); err != nil {
				return Requirement{}, p.errorf("%v", err)
			}
			values = append(values, v)
			if p.eat(")") {
				break
			}
			if !p.eat(",") {
				return Requirement{}, p.errorf("expected ',' or ')' in value list")
			}
		}
		if op == "in" {
			return Requirement{Key: key, Operator: "In", Values: values}, nil
		}
		return Requirement{Key: key, Operator: "NotIn", Values: values}, nil
	case "":
		return Requirement{Key: key, Operator: "Exists"}, nil
	default:
		p.pos = save
		return Requirement{}, p.errorf("expected =, !=, in or notin after %q", key)
	}
}

func (p *selParser) single(key, op string) (Requirement, error) {
	v := p.word()
	if err := checkLabelValue(v); err != nil {
		return Requirement{}, p.errorf("%v", err)
	}
	return Requirement{Key: key, Operator: op, Values: []string{v}}, nil
}

var (
	labelName   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	labelPrefix = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// checkLabelKey accepts Kubernetes label keys: an optional DNS subdomain
// prefix and '/', then a name of at most 63 characters.
func checkLabelKey(k string) error {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix && (prefix == "" || len(prefix) > 253 || !labelPrefix.MatchString(prefix)) {
		return fmt.Errorf("key %q: the prefix must be a DNS subdomain", k)
	}
	if name == "" || len(name) > 63 || !labelName.MatchString(name) {
		return fmt.Errorf("key %q: must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (optionally after a DNS prefix and '/')", k)
	}
	return nil
}

func checkLabelValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 63 || !labelName.MatchString(v) {
		return fmt.Errorf("value %q: must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return nil
}

func validateLabels(e *errs, path string, labels map[string]string) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := checkLabelKey(k); err != nil {
			e.addValue(path, k, "%v", err)
		}
		if err := checkLabelValue(labels[k]); err != nil {
			e.addValue(path+"."+k, labels[k], "%v", err)
		}
	}
}

func validateSelector(e *errs, path string, ls *LabelSelector) {
	validateLabels(e, path+".matchLabels", ls.MatchLabels)
	for i, r := range ls.MatchExpressions {
		rp := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		if err := checkLabelKey(r.Key); err != nil {
			e.addValue(rp+".key", r.Key, "%v", err)
		}
		switch r.Operator {
		case "In", "NotIn":
			if len(r.Values) == 0 {
				e.add(rp+".values", "needs at least one value with operator %s", r.Operator)
			}
		case "Exists", "DoesNotExist":
			if len(r.Values) > 0 {
				e.add(rp+".values", "must be empty with operator %s", r.Operator)
			}
		default:
			e.addValue(rp+".operator", r.Operator, "must be one of In, NotIn, Exists, DoesNotExist")
		}
		for j, v := range r.Values {
			if err := checkLabelValue(v); err != nil {
				e.addValue(fmt.Sprintf("%s.values[%d]", rp, j), v, "%v", err)
			}
		}
	}
}
