package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestWatchSend: an event's data line is a WatchEvent holding the object
// unchanged, written as it is when compact, and encoded when the object
// would break the line.
func TestWatchSend(t *testing.T) {
	t.Parallel()
	for name, obj := range map[string]string{
		"compact":       `{"kind":"Workload","metadata":{"name":"a<b"},"spec":{"replicas":3}}`,
		"with newlines": "{\"kind\": \"Workload\",\n \"spec\": {\"replicas\": 3}}",
	} {
		var out bytes.Buffer
		if !(&watcher{}).send(&out, 42, api.Modified, json.RawMessage(obj)) {
			t.Fatalf("%s: send failed", name)
		}
		lines := strings.Split(out.String(), "\n")
		if len(lines) != 5 || lines[0] != "id: 42" || lines[1] != "event: MODIFIED" || !strings.HasPrefix(lines[2], "data: ") || lines[3] != "" || lines[4] != "" {
			t.Fatalf("%s: want id, event, one data line and a blank line; got %q", name, out.String())
		}
		var ev api.WatchEvent
		if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[2], "data: ")), &ev); err != nil {
			t.Fatalf("%s: data is no JSON: %v in %q", name, err, lines[2])
		}
		var want, got any
		_ = json.Unmarshal([]byte(obj), &want)
		_ = json.Unmarshal(ev.Object, &got)
		if ev.Type != api.Modified || !jsonEqual(want, got) {
			t.Errorf("%s: want type MODIFIED and the object %s; got %s %s", name, obj, ev.Type, ev.Object)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
