package api

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTextProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		multiline bool
		want      string // "" when fine, else a part of the problem
	}{
		{"", false, ""},
		{"web-1", false, ""},
		{"café ✓ 日本", false, ""},
		{"\uFFFD", false, ""}, // the replacement character itself is text
		{"a\x00b", true, "NUL"},
		{"\xff", true, "UTF-8"},
		{"\xc3\x28", true, "UTF-8"},
		{"\xed\xa0\x80", true, "UTF-8"}, // a surrogate, encoded
		{"a\x01", true, "U+0001"},
		{"\x1b[31mred", true, "U+001B"},
		{"\x7f", true, "U+007F"},
		{"\u0085", true, "U+0085"},
		{"line\nline\r\n\tindented", true, ""},
		{"line\nline", false, "U+000A"},
		{"a\tb", false, "U+0009"},
	}
	for _, tt := range tests {
		got := TextProblem(tt.in, tt.multiline)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("TextProblem(%q, %v) = %q, want %q", tt.in, tt.multiline, got, tt.want)
		}
	}
}

// TestTruncate: a long message is cut to at most n bytes, ellipsis
// included, never inside a multi-byte character; a short one is kept.
func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdefgh", 7, "abcd…"},
		{"日本語テキスト", 8, "日…"},  // 5 bytes left for text: one 3-byte character fits
		{"aé日🙂z", 8, "aé…"},   // 5 bytes left: 日 would end at 6
		{"aé日🙂z", 10, "aé日…"}, // 7 bytes left: the emoji (4 bytes) does not fit whole
		{"日本", 2, ""},         // no room for the ellipsis nor a character
		{"abc", 0, ""},
		{"abc", -1, ""},
	}
	for _, tc := range tests {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	s := "a" + strings.Repeat("é日🙂", 50)
	for n := 0; n <= len(s)+1; n++ {
		got := Truncate(s, n)
		if len(got) > max(n, 0) || !utf8.ValidString(got) || !strings.HasPrefix(s, strings.TrimSuffix(got, "…")) {
			t.Fatalf("Truncate(…, %d) = %q (%d bytes): want a valid UTF-8 prefix of at most %d bytes", n, got, len(got), n)
		}
	}
}
