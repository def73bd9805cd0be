package patch

import (
	"strings"
	"testing"
)

func TestLabelPatch(t *testing.T) {
	cur := map[string]string{"app": "web", "tier": "front"}
	cases := []struct {
		args      []string
		overwrite bool
		want      string // the patch, "" for none
		err       string
	}{
		{[]string{"env=prod"}, false, `{"metadata":{"labels":{"env":"prod"},"resourceVersion":"7"}}`, ""},
		{[]string{"tier-", "gone-"}, false, `{"metadata":{"labels":{"tier":null},"resourceVersion":"7"}}`, ""},
		{[]string{"app=web"}, false, "", ""},
		{[]string{"app=api"}, false, "", "--overwrite"},
		{[]string{"app=api"}, true, `{"metadata":{"labels":{"app":"api"},"resourceVersion":"7"}}`, ""},
		{[]string{"empty="}, false, `{"metadata":{"labels":{"empty":""},"resourceVersion":"7"}}`, ""},
		{[]string{"app"}, false, "", "key=value"},
		{[]string{"=v"}, false, "", "empty"},
		{[]string{"-"}, false, "", "key=value"},
		{[]string{"a=1", "a-"}, false, "", "twice"},
	}
	for _, c := range cases {
		ch, err := ParseLabelArgs(c.args)
		var p []byte
		if err == nil {
			p, _, err = LabelPatch(ch, cur, "7", c.overwrite)
		}
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: want an error with %q; got %v", c.args, c.err, err)
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.err == "" && string(p) != c.want:
			t.Errorf("%v: want patch %s; got %s", c.args, c.want, p)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		typ, text, want, err string
	}{
		{"merge", `{"spec":{"replicas":3}}`, `{"spec":{"replicas":3}}`, ""},
		{"merge", "spec:\n  replicas: 3\n", `{"spec":{"replicas":3}}`, ""},
		{"json", `[{"op":"remove","path":"/spec/x"}]`, `[{"op":"remove","path":"/spec/x"}]`, ""},
		{"json", `{"spec":{}}`, "", "array of operations"},
		{"merge", `[]`, "", "is an object"},
		{"merge", `3`, "", "must be a JSON object"},
		{"strategic", `{}`, "", "use merge or json"},
		{"merge", "a: [\n", "", "neither JSON nor YAML"},
	} {
		got, err := Check(c.typ, []byte(c.text))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s %q: want an error with %q; got %v", c.typ, c.text, c.err, err)
		case c.err == "" && (err != nil || string(got) != c.want):
			t.Errorf("%s %q: want %s; got %s, %v", c.typ, c.text, c.want, got, err)
		}
	}
}
