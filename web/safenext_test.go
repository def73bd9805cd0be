package web

import "testing"

// TestSafeNext: the sign-in redirect goes only to a path on this site;
// every class of known open-redirect bypass falls back to "/".
func TestSafeNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		class, next, want string
	}{
		{"a page", "/workloads", "/workloads"},
		{"a page with a query", "/clusters?sort=region&page=2", "/clusters?sort=region&page=2"},
		{"a page with an encoded query", "/workloads?q=a%20b", "/workloads?q=a%20b"},
		{"a fragment", "/drills/d1#timeline", "/drills/d1#timeline"},
		{"the root", "/", "/"},
		{"empty", "", "/"},
		{"userinfo-looking path (same origin)", "/@evil.example", "/@evil.example"},

		{"absolute URL", "https://evil.example/", "/"},
		{"absolute URL, other case", "HTTPS://evil.example", "/"},
		{"scheme-relative", "//evil.example", "/"},
		{"scheme-relative with userinfo", "//user:pass@evil.example/", "/"},
		{"three slashes", "///evil.example", "/"},
		{"javascript", "javascript:alert(1)", "/"},
		{"data", "data:text/html,<script>alert(1)</script>", "/"},
		{"relative without a slash", "evil.example", "/"},
		{"userinfo in an absolute URL", "https://atoll@evil.example", "/"},

		{"backslash after slash", "/\\evil.example", "/"},
		{"two backslashes", "\\\\evil.example", "/"},
		{"slash backslash mixed", "/\\/evil.example", "/"},
		{"backslash later", "/a\\b", "/"},

		{"tab after slash", "/\t/evil.example", "/"},
		{"newline after slash", "/\n/evil.example", "/"},
		{"carriage return", "/\r/evil.example", "/"},
		{"leading space", " //evil.example", "/"},
		{"space inside", "/ /evil.example", "/"},
		{"NUL", "/\x00/evil.example", "/"},
		{"other control", "/\x0b/evil.example", "/"},
		{"C1 control", "/\u0085/evil.example", "/"},
		{"ideographic space", "/\u3000/evil.example", "/"},
		{"invalid UTF-8", "/\xff/evil.example", "/"},

		{"encoded slashes", "/%2F%2Fevil.example", "/"},
		{"encoded slash after slash", "/%2Fevil.example", "/"},
		{"encoded backslash", "/%5Cevil.example", "/"},
		{"encoded backslash, lower case", "/%5cevil.example", "/"},
		{"encoded tab", "/%09/evil.example", "/"},
		{"encoded newline", "/%0a/evil.example", "/"},
		{"encoded NUL", "/%00/evil.example", "/"},
		{"encoded space", "/%20/evil.example", "/"},
		{"bad escape", "/%zz", "/"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.next); got != tt.want {
			t.Errorf("%s: safeNext(%q) = %q, want %q", tt.class, tt.next, got, tt.want)
		}
	}
}
