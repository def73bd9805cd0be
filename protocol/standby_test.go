package protocol

import (
	"strings"
	"testing"
)

// TestStandbyListValidate: a member takes only lists of pinned images,
// each workload once, whose digest matches; checks need no images.
func TestStandbyListValidate(t *testing.T) {
	pinned := "r.example/app:v1@sha256:" + strings.Repeat("a", 64)
	list := func(images ...StandbyImage) StandbyList {
		return StandbyList{Version: Version, Epoch: 1, Digest: StandbyDigest(images), Images: images}
	}
	ok := StandbyImage{Workload: "app", Image: pinned, Replicas: 2}
	for _, c := range []struct {
		name string
		l    StandbyList
		want string
	}{
		{"valid", list(ok), ""},
		{"empty", list(), ""},
		{"check", StandbyList{Version: Version, Epoch: 3, Check: true}, ""},
		{"a tag", list(StandbyImage{Workload: "app", Image: "r.example/app:v1"}), "not pinned"},
		{"twice", list(ok, ok), "listed twice"},
		{"bad workload", list(StandbyImage{Workload: "../x", Image: pinned}), "not a DNS label"},
		{"no epoch", StandbyList{Version: Version, Digest: StandbyDigest(nil)}, "epoch"},
		{"old version", StandbyList{Version: MinVersion - 1, Epoch: 1}, "version"},
		{"wrong digest", StandbyList{Version: Version, Epoch: 1, Digest: "x", Images: []StandbyImage{ok}}, "digest"},
	} {
		err := c.l.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: want an error with %q; got %v", c.name, c.want, err)
		}
	}
	a, b := StandbyImage{Workload: "a", Image: pinned}, StandbyImage{Workload: "b", Image: pinned}
	if StandbyDigest([]StandbyImage{a, b}) != StandbyDigest([]StandbyImage{b, a}) {
		t.Error("the digest depends on the list's order")
	}
}
