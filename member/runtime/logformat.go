package runtime

import (
	"bytes"
	"errors"
	"time"
)

// A replica's log files hold one record a line: the time the runtime read
// the line's first bytes (UTC, fixed width), a tag and the line itself:
//
//	2026-12-05T03:40:00.123456789Z F hello
//	2026-12-05T03:40:01.000000000Z R 2
//
// Tag F is a line of output; tag R marks where a run (a start of the
// replica's process) begins, with the run's number. Lines written by an
// older agent have no prefix: they are read as they are, without a time.
const (
	stampLayout = "2006-01-02T15:04:05.000000000Z"
	stampLen    = len(stampLayout)
	tagLine     = 'F'
	tagRun      = 'R'
)

// stamp is the prefix of a record tagged tag, written at t.
func stamp(t time.Time, tag byte) []byte {
	b := make([]byte, 0, stampLen+3)
	b = t.UTC().AppendFormat(b, stampLayout)
	return append(b, ' ', tag, ' ')
}

// logLine is one record read back.
type logLine struct {
	at   time.Time // zero for a line without a prefix
	run  bool      // a run marker
	text []byte    // the line without its prefix and newline
}

// parseLogLine reads one record (without its newline).
func parseLogLine(b []byte) logLine {
	if len(b) >= stampLen+2 && b[stampLen] == ' ' && (b[stampLen+1] == tagLine || b[stampLen+1] == tagRun) &&
		(len(b) == stampLen+2 || b[stampLen+2] == ' ') {
		if t, err := time.Parse(stampLayout, string(b[:stampLen])); err == nil {
			text := b[min(len(b), stampLen+3):]
			return logLine{at: t, run: b[stampLen+1] == tagRun, text: text}
		}
	}
	return logLine{text: b}
}

// LogOptions select what Runtime.Logs reads.
type LogOptions struct {
	// Follow keeps reading new output after what was written.
	Follow bool
	// Tail keeps the last Tail lines of what was written before the
	// read (negative: all of them).
	Tail int
	// Since drops lines written before it (and lines of unknown time).
	Since time.Time
	// Timestamps prefixes lines with their time (RFC 3339, UTC).
	Timestamps bool
	// Previous reads the run before the last start of the process
	// instead of the current (or last) run; it never follows.
	Previous bool
	// SayWhy, when following, gives a read that caught up without a
	// line one line "# <why there is none>" (for people; scripts leave
	// it out).
	SayWhy bool
}

// ErrNoPreviousRun is Logs' answer to Previous for a replica whose files
// hold no run before its current one.
var ErrNoPreviousRun = errors.New("no earlier run on record: the replica has not restarted (or its output was rotated away)")

// selector picks the lines a read returns: pure, fed records in order.
// Until catchUp (the end of what was written when the read began) it
// keeps the current run's lines and the previous run's; catchUp returns
// the chosen ones, and later lines (following) pass straight through.
type selector struct {
	opts      LogOptions
	live      bool
	runs      int  // run markers seen
	beforeRun bool // lines seen before the first marker (an older run)
	hasPrev   bool
	prev, cur []logLine
}

func (s *selector) keep(l logLine) bool {
	return s.opts.Since.IsZero() || (!l.at.IsZero() && !l.at.Before(s.opts.Since))
}

// add takes one record and returns what to print now (following only).
func (s *selector) add(l logLine) []byte {
	if s.live {
		if l.run || !s.keep(l) {
			return nil
		}
		return s.render(nil, l)
	}
	if l.run {
		s.prev, s.hasPrev = s.cur, s.runs > 0 || s.beforeRun
		s.cur = nil
		s.runs++
		return nil
	}
	if s.runs == 0 {
		s.beforeRun = true
	}
	if !s.keep(l) {
		return nil
	}
	l.text = bytes.Clone(l.text)
	s.cur = append(s.cur, l)
	if s.opts.Tail >= 0 && len(s.cur) > s.opts.Tail {
		s.cur = s.cur[len(s.cur)-s.opts.Tail:]
	}
	return nil
}

// catchUp returns the lines written before the read that it asked for,
// and from then on lets new lines through.
func (s *selector) catchUp() ([]byte, error) {
	if s.live {
		return nil, nil
	}
	s.live = true
	lines := s.cur
	if s.opts.Previous {
		if !s.hasPrev {
			return nil, ErrNoPreviousRun
		}
		lines = s.prev
	}
	var out []byte
	for _, l := range lines {
		out = s.render(out, l)
	}
	s.prev, s.cur = nil, nil
	return out, nil
}

func (s *selector) render(out []byte, l logLine) []byte {
	if s.opts.Timestamps && !l.at.IsZero() {
		out = l.at.AppendFormat(out, time.RFC3339Nano)
		out = append(out, ' ')
	}
	out = append(out, l.text...)
	return append(out, '\n')
}
