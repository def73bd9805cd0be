package api

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []Requirement
	}{
		{"", nil},
		{"   ", nil},
		{"a=b", []Requirement{{Key: "a", Operator: "In", Values: []string{"b"}}}},
		{"a==b", []Requirement{{Key: "a", Operator: "In", Values: []string{"b"}}}},
		{"a!=b", []Requirement{{Key: "a", Operator: "NotIn", Values: []string{"b"}}}},
		{"a=", []Requirement{{Key: "a", Operator: "In", Values: []string{""}}}},
		{"a in (x,y)", []Requirement{{Key: "a", Operator: "In", Values: []string{"x", "y"}}}},
		{"a in(x)", []Requirement{{Key: "a", Operator: "In", Values: []string{"x"}}}},
		{"a notin (x)", []Requirement{{Key: "a", Operator: "NotIn", Values: []string{"x"}}}},
		{"a", []Requirement{{Key: "a", Operator: "Exists"}}},
		{"!a", []Requirement{{Key: "a", Operator: "DoesNotExist"}}},
		{"example.com/app=web", []Requirement{{Key: "example.com/app", Operator: "In", Values: []string{"web"}}}},
		{"A_b.c-D=x_Y.z-9", []Requirement{{Key: "A_b.c-D", Operator: "In", Values: []string{"x_Y.z-9"}}}},
		{"app=web,tier!=db,region in (eu-west,us-east),gpu,!legacy", []Requirement{
			{Key: "app", Operator: "In", Values: []string{"web"}},
			{Key: "tier", Operator: "NotIn", Values: []string{"db"}},
			{Key: "region", Operator: "In", Values: []string{"eu-west", "us-east"}},
			{Key: "gpu", Operator: "Exists"},
			{Key: "legacy", Operator: "DoesNotExist"},
		}},
		{" app = web ,\ttier != db , region  in  ( eu-west , us-east ) , gpu , ! legacy ", []Requirement{
			{Key: "app", Operator: "In", Values: []string{"web"}},
			{Key: "tier", Operator: "NotIn", Values: []string{"db"}},
			{Key: "region", Operator: "In", Values: []string{"eu-west", "us-east"}},
			{Key: "gpu", Operator: "Exists"},
			{Key: "legacy", Operator: "DoesNotExist"},
		}},
		// Operator words are only operators after a key.
		{"in", []Requirement{{Key: "in", Operator: "Exists"}}},
		{"notin notin (in)", []Requirement{{Key: "notin", Operator: "NotIn", Values: []string{"in"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseSelector(%q): want no error, got %v", tt.in, err)
			}
			if !reflect.DeepEqual(got.Requirements, tt.want) {
				t.Errorf("ParseSelector(%q):\nwant %+v\ngot  %+v", tt.in, tt.want, got.Requirements)
			}
			if got.Empty() != (len(tt.want) == 0) {
				t.Errorf("ParseSelector(%q).Empty() = %v, want %v", tt.in, got.Empty(), len(tt.want) == 0)
			}
			text := got.String()
			back, err := ParseSelector(text)
			if err != nil {
				t.Fatalf("ParseSelector(%q) (the String of %q): want no error, got %v", text, tt.in, err)
			}
			if !reflect.DeepEqual(back, got) {
				t.Errorf("round trip of %q through String %q:\nwant %+v\ngot  %+v", tt.in, text, got, back)
			}
		})
	}
}

func TestParseSelectorErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 64)
	tests := []struct {
		name, in string
	}{
		{"unclosed list", "a in (x"},
		{"unclosed list after comma", "a in (x,"},
		{"list without parentheses", "a in x"},
		{"notin without parentheses", "a notin x"},
		{"extra closing parenthesis", "a in (x))"},
		{"no key", "=b"},
		{"no key after !", "!"},
		{"not equal without key", "!=b"},
		{"trailing comma", "a=b,"},
		{"leading comma", ",a=b"},
		{"double comma", "a=b,,c=d"},
		{"missing comma", "a=b c=d"},
		{"unknown operator word", "a b"},
		{"unknown operator", "a!b"},
		{"exists with value", "!a=b"},
		{"chained equals", "a==b==c"},
		{"key starts with dash", "-a=b"},
		{"key ends with dash", "a-=b"},
		{"key too long", long + "=b"},
		{"empty prefix", "/a=b"},
		{"empty name after prefix", "a/=b"},
		{"upper-case prefix", "Example.com/a=b"},
		{"two slashes", "a/b/c=d"},
		{"key with colon", "a:b=c"},
		{"value starts with dash", "a=-b"},
		{"value ends with underscore", "a=b_"},
		{"value with slash", "a=b/c"},
		{"value too long", "a=" + long},
		{"bad value in list", "a in (x,-y)"},
		{"bad value in notin list", "a notin (x,y_)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSelector(tt.in)
			if err == nil {
				t.Fatalf("ParseSelector(%q): want an error, got %+v", tt.in, got)
			}
			if !got.Empty() {
				t.Errorf("ParseSelector(%q): want the empty Selector with the error, got %+v", tt.in, got)
			}
			if !strings.Contains(err.Error(), "label selector") {
				t.Errorf("ParseSelector(%q): want the error to name the label selector, got %q", tt.in, err)
			}
		})
	}
}

func TestSelectorMatches(t *testing.T) {
	t.Parallel()
	web := map[string]string{"app": "web", "tier": "frontend", "region": "eu-west"}
	tests := []struct {
		sel    string
		labels map[string]string
		want   bool
	}{
		{"", nil, true},
		{"", web, true},
		{"app=web", web, true},
		{"app==web", web, true},
		{"app=db", web, false},
		{"app=web", nil, false},
		{"app=", map[string]string{"app": ""}, true},
		{"app=", nil, false},
		{"app!=db", web, true},
		{"app!=web", web, false},
		{"app!=web", nil, true}, // NotIn holds when the label is missing
		{"region in (eu-west,us-east)", web, true},
		{"region in (us-east,ap-south)", web, false},
		{"zone in (a)", web, false},
		{"region notin (eu-west)", web, false},
		{"region notin (us-east)", web, true},
		{"zone notin (a)", web, true},
		{"app", web, true},
		{"gpu", web, false},
		{"!gpu", web, true},
		{"!app", web, false},
		{"app=web,tier=frontend,!gpu", web, true},
		{"app=web,tier=backend", web, false},
		{"app=web,gpu", web, false},
	}
	for _, tt := range tests {
		s, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", tt.sel, err)
		}
		if got := s.Matches(tt.labels); got != tt.want {
			t.Errorf("%q.Matches(%v) = %v, want %v", tt.sel, tt.labels, got, tt.want)
		}
	}
}

func TestSelectorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sel  Selector
		want string
	}{
		{Selector{}, ""},
		{Selector{Requirements: []Requirement{{Key: "a", Operator: "In", Values: []string{"b"}}}}, "a=b"},
		{Selector{Requirements: []Requirement{{Key: "a", Operator: "NotIn", Values: []string{"b"}}}}, "a!=b"},
		{Selector{Requirements: []Requirement{{Key: "a", Operator: "In", Values: []string{"x", "y"}}}}, "a in (x,y)"},
		{Selector{Requirements: []Requirement{{Key: "a", Operator: "NotIn", Values: []string{"x", "y"}}}}, "a notin (x,y)"},
		{Selector{Requirements: []Requirement{{Key: "a", Operator: "Exists"}, {Key: "b", Operator: "DoesNotExist"}}}, "a,!b"},
	}
	for _, tt := range tests {
		if got := tt.sel.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.sel, got, tt.want)
		}
	}
}

func TestLabelSelectorSelector(t *testing.T) {
	t.Parallel()
	var nilSel *LabelSelector
	if s := nilSel.Selector(); !s.Empty() {
		t.Errorf("nil LabelSelector: want the empty Selector, got %+v", s)
	}
	ls := &LabelSelector{
		MatchLabels: map[string]string{"tier": "frontend", "app": "web"},
		MatchExpressions: []Requirement{
			{Key: "region", Operator: "In", Values: []string{"eu-west", "us-east"}},
			{Key: "legacy", Operator: "DoesNotExist"},
		},
	}
	s := ls.Selector()
	// Match labels come first, sorted by key, so String is stable.
	const want = "app=web,tier=frontend,region in (eu-west,us-east),!legacy"
	if got := s.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	back, err := ParseSelector(s.String())
	if err != nil {
		t.Fatalf("ParseSelector(%q): %v", s.String(), err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip:\nwant %+v\ngot  %+v", s, back)
	}
	for _, tt := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"app": "web", "tier": "frontend", "region": "eu-west"}, true},
		{map[string]string{"app": "web", "tier": "frontend", "region": "ap-south"}, false},
		{map[string]string{"app": "web", "region": "eu-west"}, false},
		{map[string]string{"app": "web", "tier": "frontend", "region": "us-east", "legacy": "true"}, false},
	} {
		if got := s.Matches(tt.labels); got != tt.want {
			t.Errorf("%q.Matches(%v) = %v, want %v", s, tt.labels, got, tt.want)
		}
	}
}
