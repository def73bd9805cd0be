package httpapi

import "testing"

func TestParseTimelinePos(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"": true, "0-0": true, "12-1700000000000": true, "x": false, "1": false, "-1-2": false, "1-x": false} {
		p, got := parseTimelinePos(in)
		if got != ok {
			t.Errorf("%q: want ok %v, got %v", in, ok, got)
		}
		if ok && in != "" && p.String() != in {
			t.Errorf("%q: round trip gave %q", in, p.String())
		}
	}
}
