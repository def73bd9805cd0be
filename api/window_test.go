package api

import (
	"testing"
	"time"
)

// TestRolloutWindows: weekday ranges, lists and every day; ranges past
// midnight; when the next window opens; bad annotations refused.
func TestRolloutWindows(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse("Mon 2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ws, err := ParseRolloutWindows("Mon-Fri 09:00-17:00; Sat 22:00-02:00")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		now  string
		open bool
		next string
	}{
		{"Mon 2026-12-07 09:00", true, ""},
		{"Fri 2026-12-11 16:59", true, ""},
		{"Fri 2026-12-11 17:00", false, "Sat 2026-12-12 22:00"},
		{"Sat 2026-12-12 23:30", true, ""},
		{"Sun 2026-12-13 01:59", true, ""},
		{"Sun 2026-12-13 02:00", false, "Mon 2026-12-14 09:00"},
		{"Mon 2026-12-07 08:00", false, "Mon 2026-12-07 09:00"},
	} {
		open, next := ws.Open(at(c.now))
		if open != c.open || (!c.open && !next.Equal(at(c.next))) {
			t.Errorf("%s: want open %v (next %s); got %v (next %s)", c.now, c.open, c.next, open, next.Format("Mon 2006-01-02 15:04"))
		}
	}
	if ws, err := ParseRolloutWindows("* 00:00-23:59"); err != nil || len(ws) != 1 {
		t.Errorf("every day: %v %v", ws, err)
	}
	for _, bad := range []string{"", "Mon", "Funday 09:00-10:00", "Mon 9-17", "Mon 10:00-10:00", "Mon 25:00-26:00"} {
		if _, err := ParseRolloutWindows(bad); err == nil {
			t.Errorf("%q: want refused", bad)
		}
	}
	c := Cluster{TypeMeta: TypeMeta{APIVersion: Group, Kind: "Cluster"}, Metadata: ObjectMeta{Name: "eu", Annotations: map[string]string{AnnotationRolloutWindow: "Mon 9-5"}}}
	fe := c.Validate()
	if len(fe) != 1 || fe[0].Field != "metadata.annotations["+AnnotationRolloutWindow+"]" {
		t.Errorf("a cluster with a bad window: want one error at its annotation; got %v", fe)
	}
}
