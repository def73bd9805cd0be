package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// ParseCPU turns a CPU quantity ("500m", "0.5", "2") into millicores.
func ParseCPU(s string) (int64, error) {
	if strings.HasSuffix(s, "m") {
		n, err := strconv.ParseInt(strings.TrimSuffix(s, "m"), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not a CPU quantity: use millicores like 500m or cores like 0.5")
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	// ParseFloat also reads Go syntax ("0x1p4", "1_000"); quantities are decimal.
	if err != nil || strings.ContainsAny(s, "_xXpP") || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e9 {
		return 0, fmt.Errorf("not a CPU quantity: use millicores like 500m or cores like 0.5")
	}
	return int64(math.Round(f * 1000)), nil
}

var memUnits = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseMemory turns a memory quantity ("256Mi", "1Gi", "512M", "1048576")
// into bytes.
func ParseMemory(s string) (int64, error) {
	bad := fmt.Errorf("not a memory quantity: use bytes or a unit, like 256Mi, 1Gi or 512M")
	mult := int64(1)
	num := s
	for _, u := range memUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, bad
	}
	return n * mult, nil
}

// Duration is a Go duration written as a string ("5s", "1m30s"), with
// days too ("30d", "1d12h").
type Duration string

// Get returns the duration, or def when it is empty or invalid (validation
// rejects invalid ones before they are stored).
func (d Duration) Get(def time.Duration) time.Duration {
	if d == "" {
		return def
	}
	v, err := ParseDuration(string(d))
	if err != nil {
		return def
	}
	return v
}

// ParseDuration reads a Go duration ("90s", "1h30m") that may start with
// a whole number of days ("30d", "1d12h"), a day being 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	neg := strings.HasPrefix(days, "-")
	n, err := strconv.ParseUint(strings.TrimPrefix(days, "-"), 10, 32)
	if err != nil || days == "" || strings.HasPrefix(rest, "-") {
		return 0, fmt.Errorf("time: invalid duration %q", s)
	}
	const maxDays = uint64(math.MaxInt64 / int64(24*time.Hour))
	if n > maxDays {
		return 0, fmt.Errorf("time: invalid duration %q (over %d days)", s, maxDays)
	}
	var more time.Duration
	if rest != "" {
		if more, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("time: invalid duration %q", s)
		}
	}
	d := time.Duration(n)*24*time.Hour + more
	if d < 0 { // overflowed
		return 0, fmt.Errorf("time: invalid duration %q (too long)", s)
	}
	if neg {
		d = -d
	}
	return d, nil
}

// durationHint is how a refused duration is explained.
const durationHint = "not a duration: use a number and a unit, like 500ms, 5s, 2m, 12h or 30d"

func validateDuration(e *errs, path string, d Duration) {
	if d == "" {
		return
	}
	v, err := ParseDuration(string(d))
	if err != nil {
		e.addValue(path, string(d), durationHint)
		return
	}
	if v < 0 {
		e.addValue(path, string(d), "must not be negative")
	}
}

// IntOrPercent is a count ("maxSurge: 1") or a percentage of the replicas
// ("maxSurge: 25%"), as in Kubernetes rolling updates.
type IntOrPercent struct {
	s string
}

// IntOrPercentOf makes an IntOrPercent from its text form.
func IntOrPercentOf(s string) IntOrPercent { return IntOrPercent{s: s} }

// Set reports whether a value was given.
func (v IntOrPercent) Set() bool { return v.s != "" }

// String is the text form: "1" or "25%".
func (v IntOrPercent) String() string { return v.s }

// IsZeroCount reports whether the value is 0 or 0% (or unset), however
// it is written ("00", "-0%").
func (v IntOrPercent) IsZeroCount() bool {
	num, _ := strings.CutSuffix(v.s, "%")
	n, err := strconv.Atoi(num)
	return v.s == "" || (err == nil && n == 0)
}

// Check reports whether the value is well formed.
func (v IntOrPercent) Check() error {
	if v.s == "" {
		return nil
	}
	num, pct := strings.CutSuffix(v.s, "%")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || (pct && n > 100) {
		return errors.New("must be a non-negative integer or a percentage from 0% to 100%")
	}
	return nil
}

// Resolve returns the count for a total of replicas, rounding percentages
// up when roundUp and down otherwise (as Kubernetes does for surge and
// unavailability).
func (v IntOrPercent) Resolve(total int, roundUp bool, def int) int {
	if v.s == "" || v.Check() != nil {
		return def
	}
	num, pct := strings.CutSuffix(v.s, "%")
	n, _ := strconv.Atoi(num)
	if !pct {
		return n
	}
	if roundUp {
		return (n*total + 99) / 100
	}
	return n * total / 100
}

// MarshalJSON writes a count as a number and a percentage as a string.
func (v IntOrPercent) MarshalJSON() ([]byte, error) {
	if n, err := strconv.Atoi(v.s); err == nil {
		return json.Marshal(n)
	}
	return json.Marshal(v.s)
}

// UnmarshalJSON accepts a number or a string.
func (v *IntOrPercent) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		v.s = n.String()
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be an integer or a percentage string")
	}
	v.s = s
	return nil
}

// Schema describes IntOrPercent in the OpenAPI document.
func (IntOrPercent) Schema(huma.Registry) *huma.Schema {
	min := 0.0
	return &huma.Schema{
		Description: "An integer count, or a percentage of the replicas such as \"25%\".",
		OneOf: []*huma.Schema{
			{Type: huma.TypeInteger, Minimum: &min},
			{Type: huma.TypeString, Pattern: `^[0-9]+%$`},
		},
	}
}
