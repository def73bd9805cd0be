package runtime

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	at := time.Date(2026, 12, 5, 3, 40, 0, 123, time.UTC)
	for _, c := range []struct {
		in   string
		at   time.Time
		run  bool
		text string
	}{
		{string(stamp(at, tagLine)) + "hello", at, false, "hello"},
		{string(stamp(at, tagLine)), at, false, ""},
		{strings.TrimSuffix(string(stamp(at, tagLine)), " "), at, false, ""},
		{string(stamp(at, tagRun)) + "2", at, true, "2"},
		{"hello", time.Time{}, false, "hello"},
		{"2026-12-05T03:40:00.000000123Z X nope", time.Time{}, false, "2026-12-05T03:40:00.000000123Z X nope"},
		{"2026-13-05T03:40:00.000000123Z F bad month", time.Time{}, false, "2026-13-05T03:40:00.000000123Z F bad month"},
	} {
		got := parseLogLine([]byte(c.in))
		if !got.at.Equal(c.at) || got.run != c.run || string(got.text) != c.text {
			t.Errorf("parseLogLine(%q) = %v %v %q, want %v %v %q", c.in, got.at, got.run, got.text, c.at, c.run, c.text)
		}
	}
}

// TestSelector: which lines a read returns, before and after it caught up.
func TestSelector(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	line := func(n int, s string) logLine { return logLine{at: sec(n), text: []byte(s)} }
	run := func(n int) logLine { return logLine{at: sec(n), run: true} }
	old := func(s string) logLine { return logLine{text: []byte(s)} }
	for _, c := range []struct {
		name    string
		opts    LogOptions
		records []logLine
		later   []logLine // after catching up (following)
		want    string
		err     error
	}{
		{"the current run only", LogOptions{Tail: -1}, []logLine{run(0), line(1, "a"), run(2), line(3, "b"), line(4, "c")}, nil, "b\nc\n", nil},
		{"no marker: everything", LogOptions{Tail: -1}, []logLine{old("x"), line(1, "a")}, nil, "x\na\n", nil},
		{"tail", LogOptions{Tail: 1}, []logLine{run(0), line(1, "a"), line(2, "b")}, nil, "b\n", nil},
		{"tail 0 then follow", LogOptions{Tail: 0, Follow: true}, []logLine{run(0), line(1, "a")}, []logLine{line(5, "new")}, "new\n", nil},
		{"tail larger than the run", LogOptions{Tail: 10}, []logLine{run(0), line(1, "a")}, nil, "a\n", nil},
		{"since", LogOptions{Tail: -1, Since: sec(2)}, []logLine{run(0), line(1, "a"), line(2, "b"), line(3, "c")}, nil, "b\nc\n", nil},
		{"since drops lines of unknown time", LogOptions{Tail: -1, Since: sec(0)}, []logLine{old("x"), line(1, "a")}, nil, "a\n", nil},
		{"since applies to followed lines", LogOptions{Tail: -1, Since: sec(5)}, nil, []logLine{line(4, "early"), line(6, "late")}, "late\n", nil},
		{"timestamps", LogOptions{Tail: -1, Timestamps: true}, []logLine{run(0), line(1, "a"), old("x")}, nil, "2026-12-05T03:00:01Z a\nx\n", nil},
		{"previous", LogOptions{Tail: -1, Previous: true}, []logLine{run(0), line(1, "a"), line(2, "b"), run(3), line(4, "c")}, nil, "a\nb\n", nil},
		{"previous of three runs", LogOptions{Tail: -1, Previous: true}, []logLine{run(0), line(1, "a"), run(2), line(3, "b"), run(4)}, nil, "b\n", nil},
		{"previous with tail", LogOptions{Tail: 1, Previous: true}, []logLine{run(0), line(1, "a"), line(2, "b"), run(3)}, nil, "b\n", nil},
		{"previous run that wrote nothing", LogOptions{Tail: -1, Previous: true}, []logLine{run(0), run(1), line(2, "c")}, nil, "", nil},
		{"previous: lines before the first marker are an older run", LogOptions{Tail: -1, Previous: true}, []logLine{old("x"), run(1), line(2, "c")}, nil, "x\n", nil},
		{"no previous run", LogOptions{Tail: -1, Previous: true}, []logLine{run(0), line(1, "a")}, nil, "", ErrNoPreviousRun},
		{"no previous run without markers", LogOptions{Tail: -1, Previous: true}, []logLine{old("x")}, nil, "", ErrNoPreviousRun},
		{"a restart while following goes on", LogOptions{Tail: -1, Follow: true}, []logLine{run(0), line(1, "a")}, []logLine{run(2), line(3, "b")}, "a\nb\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := selector{opts: c.opts}
			var out []byte
			for _, r := range c.records {
				out = append(out, s.add(r)...)
			}
			if len(out) != 0 {
				t.Fatalf("printed %q before catching up", out)
			}
			got, err := s.catchUp()
			if !errors.Is(err, c.err) {
				t.Fatalf("catchUp error %v, want %v", err, c.err)
			}
			for _, r := range c.later {
				got = append(got, s.add(r)...)
			}
			if string(got) != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
