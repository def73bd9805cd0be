package placer

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/protocol"
)

// TestStandbyMessageBoundedOnARune: a member's pull failure longer than
// the fold keeps is cut to at most 1024 bytes without splitting a
// character, in status.images and in the event alike.
func TestStandbyMessageBoundedOnARune(t *testing.T) {
	t.Parallel()
	f := NewStatusFolder(nil, nil, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	long := "pull: " + strings.Repeat("résumé 日本 ", 200) // byte 1024 falls inside a character
	f.mu.Lock()
	f.observeImagesLocked("eu-1", []protocol.ImagePresence{{Workload: "w", Generation: 1, Image: "registry.example/w:1", Wanted: 2, Failed: 2, Message: long}})
	f.mu.Unlock()
	rows := f.imageRowsLocked("w")
	if len(rows) != 1 {
		t.Fatalf("want the cluster's row; got %+v", rows)
	}
	if m := rows[0].Message; len(m) > 1024 || !utf8.ValidString(m) || !strings.HasPrefix(m, "pull: résumé") {
		t.Errorf("status.images message: want a valid UTF-8 start of the report within 1024 bytes; got %d bytes, valid %v", len(m), utf8.ValidString(m))
	}
	evs := f.imageEvents["w"]
	if len(evs) != 1 || evs[0].reason != ReasonPrepullFailed || !utf8.ValidString(evs[0].message) {
		t.Errorf("want one PrepullFailed event in valid UTF-8; got %+v", evs)
	}
}
