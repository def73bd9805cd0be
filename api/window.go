package api

import (
	"fmt"
	"strings"
	"time"
)

// AnnotationRolloutWindow, on a cluster, is when progressive rollouts may
// give it a new revision: one or more windows separated by ";", each days
// and a time range in UTC, such as "Mon-Fri 09:00-17:00" or
// "Sat,Sun 02:00-06:00; Wed 22:00-02:00" (a range past midnight ends the
// next day). Outside them the cluster defers rollouts: its wave waits for
// it (or skips it, with onDeferred: skip) until a window opens.
const AnnotationRolloutWindow = "atoll.dev/rollout-window"

// RolloutWindows are a cluster's parsed rollout windows.
type RolloutWindows []rolloutWindow

type rolloutWindow struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes of the day; end <= start crosses midnight
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseRolloutWindows reads an atoll.dev/rollout-window annotation.
func ParseRolloutWindows(s string) (RolloutWindows, error) {
	var out RolloutWindows
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		days, hours, ok := strings.Cut(part, " ")
		if !ok {
			return nil, fmt.Errorf("%q: want days and a time range, such as \"Mon-Fri 09:00-17:00\"", part)
		}
		var w rolloutWindow
		for d := range strings.SplitSeq(days, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "*" || d == "daily" {
				w.days = [7]bool{true, true, true, true, true, true, true}
				continue
			}
			from, to, isRange := strings.Cut(d, "-")
			a, okA := weekdays[from]
			b, okB := weekdays[to]
			if !okA || (isRange && !okB) {
				return nil, fmt.Errorf("%q: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges such as Mon-Fri, lists such as Sat,Sun, or *", days)
			}
			if !isRange {
				b = a
			}
			for day := a; ; day = (day + 1) % 7 {
				w.days[day] = true
				if day == b {
					break
				}
			}
		}
		from, to, ok := strings.Cut(strings.TrimSpace(hours), "-")
		start, errA := minuteOfDay(from)
		end, errB := minuteOfDay(to)
		if !ok || errA != nil || errB != nil || start == end {
			return nil, fmt.Errorf("%q: want a time range in UTC such as 09:00-17:00 (HH:MM, start and end differ)", hours)
		}
		w.start, w.end = start, end
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no window: want one such as \"Mon-Fri 09:00-17:00\"")
	}
	return out, nil
}

func minuteOfDay(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Open reports whether t (UTC) is inside a window, and otherwise when the
// next one opens.
func (ws RolloutWindows) Open(t time.Time) (open bool, next time.Time) {
	t = t.UTC()
	for _, w := range ws {
		if w.contains(t) {
			return true, time.Time{}
		}
	}
	// The next opening: the first window start after t, within a week.
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for d := 0; d <= 7; d++ {
		date := day.AddDate(0, 0, d)
		for _, w := range ws {
			if !w.days[date.Weekday()] {
				continue
			}
			at := date.Add(time.Duration(w.start) * time.Minute)
			if at.After(t) && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		if !next.IsZero() {
			return false, next
		}
	}
	return false, next
}

// contains says whether t falls in the window: on one of its days from
// start, until end (the next day's end when the range crosses midnight).
func (w rolloutWindow) contains(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	if w.start < w.end {
		return w.days[t.Weekday()] && m >= w.start && m < w.end
	}
	// Past midnight: the evening part on its day, the morning part the day after.
	return (w.days[t.Weekday()] && m >= w.start) || (w.days[(t.Weekday()+6)%7] && m < w.end)
}
