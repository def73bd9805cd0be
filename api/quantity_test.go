package api

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"500m", 500},
		{"0m", 0},
		{"1m", 1},
		{"2000m", 2000},
		{"0", 0},
		{"0.5", 500},
		{"2", 2000},
		{"1.5", 1500},
		{"0.25", 250},
		{"0.0004", 0}, // rounded to the nearest millicore
		{"0.0006", 1},
		{"1000000000", 1e12},
		{"9223372036854775807m", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := ParseCPU(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseCPUErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "m", "-1", "-0.5", "-100m", "1.5m", "abc", "one", "1 ", " 1", "1 m",
		"1000000001",           // more cores than any cluster has
		"1e10",                 // the same, with an exponent
		"9223372036854775808m", // overflows int64
		"NaN", "Inf", "-Inf", "+Inf",
		"100M", "1Gi", "500mm",
		"0x10", "0x1p4", "1_000", // Go number syntax, not quantities
	} {
		if got, err := ParseCPU(in); err == nil {
			t.Errorf("ParseCPU(%q) = %d; want an error", in, got)
		} else if !strings.Contains(err.Error(), "CPU") {
			t.Errorf("ParseCPU(%q): want an error that says what a CPU quantity is, got %q", in, err)
		}
	}
}

func TestParseMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"1Ki", 1 << 10},
		{"256Mi", 256 << 20},
		{"1Gi", 1 << 30},
		{"2Ti", 2 << 40},
		{"1k", 1000},
		{"1K", 1000},
		{"512M", 512e6},
		{"3G", 3e9},
		{"1T", 1e12},
		{"8589934591Gi", 8589934591 << 30}, // the largest whole number of Gi in an int64
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := ParseMemory(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseMemoryErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "Mi", "Gi", "k", "-1", "-1Mi", "abc",
		"1.5Gi", "0.5", "1.5", // only whole numbers of bytes or units
		"1m", "100m", // milli-bytes are not a thing
		"1Ei", "1E", "1Pi", "1GB", "1gi", "1 Gi", " 1Gi", "1Gi ",
		"8589934592Gi",        // 2^63 bytes overflows int64
		"9223373T",            // so does this
		"9223372036854775808", // and this
		"0x10", "1_000",
	} {
		if got, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) = %d; want an error", in, got)
		} else if !strings.Contains(err.Error(), "memory") {
			t.Errorf("ParseMemory(%q): want an error that says what a memory quantity is, got %q", in, err)
		}
	}
}

func TestIntOrPercentJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		json, text string
	}{
		{`1`, "1"},
		{`0`, "0"},
		{`"25%"`, "25%"},
		{`"0%"`, "0%"},
		{`"100%"`, "100%"},
	}
	for _, tt := range tests {
		var v IntOrPercent
		if err := json.Unmarshal([]byte(tt.json), &v); err != nil {
			t.Fatalf("Unmarshal(%s): want %q, got error %v", tt.json, tt.text, err)
		}
		if v.String() != tt.text || !v.Set() {
			t.Errorf("Unmarshal(%s) = %q (set %v), want %q (set)", tt.json, v.String(), v.Set(), tt.text)
		}
		out, err := json.Marshal(v)
		if err != nil || string(out) != tt.json {
			t.Errorf("Marshal(%q) = %s, %v; want %s, nil", tt.text, out, err, tt.json)
		}
	}

	// Inside a struct: unset values are left out.
	in := `{"maxSurge":1,"maxUnavailable":"25%"}`
	var u UpdateStrategy
	if err := json.Unmarshal([]byte(in), &u); err != nil {
		t.Fatalf("Unmarshal(%s): %v", in, err)
	}
	if u.MaxSurge != IntOrPercentOf("1") || u.MaxUnavailable != IntOrPercentOf("25%") {
		t.Errorf("Unmarshal(%s) = %+v, want maxSurge 1 and maxUnavailable 25%%", in, u)
	}
	if out, err := json.Marshal(u); err != nil || string(out) != in {
		t.Errorf("Marshal(%+v) = %s, %v; want %s", u, out, err, in)
	}
	if out, err := json.Marshal(UpdateStrategy{}); err != nil || string(out) != `{}` {
		t.Errorf("Marshal(UpdateStrategy{}) = %s, %v; want {}", out, err)
	}
}

func TestIntOrPercentUnmarshalErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`true`, `{}`, `[1]`, `{"a":1}`} {
		var v IntOrPercent
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("Unmarshal(%s) = %q; want an error", in, v.String())
		}
	}
}

func TestIntOrPercentCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		valid bool
	}{
		{"", true},
		{"0", true},
		{"5", true},
		{"1000", true},
		{"0%", true},
		{"25%", true},
		{"100%", true},
		{"-1", false},
		{"-1%", false},
		{"101%", false},
		{"150%", false},
		{"1.5", false},
		{"2.5%", false},
		{"%", false},
		{"25%%", false},
		{"abc", false},
		{" 1", false},
		{"1 %", false},
	}
	for _, tt := range tests {
		err := IntOrPercentOf(tt.in).Check()
		if (err == nil) != tt.valid {
			t.Errorf("IntOrPercentOf(%q).Check() = %v, want valid %v", tt.in, err, tt.valid)
		}
	}
}

func TestIntOrPercentResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		total   int
		roundUp bool
		want    int
	}{
		{"", 10, true, 7}, // unset: the default
		{"bad", 10, true, 7},
		{"150%", 10, false, 7},
		{"3", 10, true, 3},
		{"3", 10, false, 3},
		{"30", 10, false, 30}, // a count is not capped by the total
		{"25%", 10, true, 3},
		{"25%", 10, false, 2},
		{"25%", 4, true, 1},
		{"25%", 4, false, 1},
		{"33%", 3, true, 1},
		{"33%", 3, false, 0},
		{"1%", 1, true, 1},
		{"1%", 1, false, 0},
		{"0%", 10, true, 0},
		{"100%", 7, false, 7},
		{"100%", 7, true, 7},
		{"50%", 0, true, 0},
	}
	for _, tt := range tests {
		if got := IntOrPercentOf(tt.in).Resolve(tt.total, tt.roundUp, 7); got != tt.want {
			t.Errorf("IntOrPercentOf(%q).Resolve(%d, roundUp %v, def 7) = %d, want %d", tt.in, tt.total, tt.roundUp, got, tt.want)
		}
	}
}

func TestIntOrPercentIsZeroCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"0", true},
		{"0%", true},
		{"00", true},
		{"-0", true},
		{"000%", true},
		{"1", false},
		{"1%", false},
		{"10", false},
		{"abc", false},
	}
	for _, tt := range tests {
		if got := IntOrPercentOf(tt.in).IsZeroCount(); got != tt.want {
			t.Errorf("IntOrPercentOf(%q).IsZeroCount() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseDurationTakesDays(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"30d": 30 * day, "1d12h": day + 12*time.Hour, "0d": 0, "-2d": -2 * day, "2d30m15s": 2*day + 30*time.Minute + 15*time.Second,
		"90s": 90 * time.Second, "720h": 720 * time.Hour, "106751d": 106751 * day,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "1.5d", "d5h", "1d-5h", "1dd", "5x", "", "106752d", "106751d23h59m59s", "1d2d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v; want an error", in, got)
		}
	}
}
