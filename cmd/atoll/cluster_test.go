package main

import (
	"fmt"
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestApplyTaintArgs(t *testing.T) {
	t.Parallel()
	have := []api.Taint{{Key: "gpu", Value: "a100", Effect: "NoSchedule"}}
	cases := []struct {
		args []string
		want string
		err  bool
	}{
		{[]string{"maintenance=true:NoExecute"}, "[gpu=a100:NoSchedule maintenance=true:NoExecute]", false},
		{[]string{"gpu=h100:NoSchedule"}, "[gpu=h100:NoSchedule]", false},
		{[]string{"gpu:NoSchedule-"}, "[]", false},
		{[]string{"gpu-"}, "[]", false},
		{[]string{"nothing-"}, "", true},
		{[]string{"x=y:Sometimes"}, "", true},
		{[]string{"x=y"}, "", true},
	}
	for _, c := range cases {
		got, err := applyTaintArgs(have, c.args)
		if (err != nil) != c.err {
			t.Errorf("%v: error %v, want error %v", c.args, err, c.err)
			continue
		}
		if c.err {
			continue
		}
		var s []string
		for _, tt := range got {
			s = append(s, tt.Key+"="+tt.Value+":"+tt.Effect)
		}
		if fmt.Sprint(s) != c.want && !(len(s) == 0 && c.want == "[]") {
			t.Errorf("%v: got %v, want %s", c.args, s, c.want)
		}
	}
	if have[0].Value != "a100" {
		t.Error("applyTaintArgs changed its input")
	}
}

func TestParseLabels(t *testing.T) {
	t.Parallel()
	got, err := parseLabels([]string{"tier=gold", "empty="})
	if err != nil || got["tier"] != "gold" || got["empty"] != "" || len(got) != 2 {
		t.Errorf("parseLabels: %v, %v", got, err)
	}
	if _, err := parseLabels([]string{"novalue"}); err == nil {
		t.Error("a label without '=' was accepted")
	}
}
