package edit

import "testing"

func TestMergePatch(t *testing.T) {
	shown := "metadata:\n  name: w\n  resourceVersion: \"5\"\n  labels: {a: b, c: d}\nspec:\n  replicas: 2\n"
	cases := []struct{ edited, want string }{
		// Only what changed, with the version shown as precondition.
		{`{"metadata":{"name":"w","resourceVersion":"5","labels":{"a":"b"}},"spec":{"replicas":3}}`,
			`{"metadata":{"labels":{"c":null},"resourceVersion":"5"},"spec":{"replicas":3}}`},
		// A version the user typed is theirs to send.
		{`{"metadata":{"name":"w","resourceVersion":"9","labels":{"a":"b","c":"d"}},"spec":{"replicas":2}}`,
			`{"metadata":{"resourceVersion":"9"}}`},
	}
	for _, c := range cases {
		got, err := mergePatch(shown, []byte(c.edited))
		if err != nil || string(got) != c.want {
			t.Errorf("edited %s: want %s; got %s, %v", c.edited, c.want, got, err)
		}
	}
}

func TestStripCommentsAndSame(t *testing.T) {
	got := string(stripComments([]byte("# header\na: 1\n  # indented\nb: \"# not a comment\"\n")))
	if got != "a: 1\nb: \"# not a comment\"\n" {
		t.Fatalf("stripComments: got %q", got)
	}
	if !same([]byte("b: 2\na: 1\n"), []byte("a: 1\nb: 2\n")) || same([]byte("a: 2\n"), []byte("a: 1\n")) || !same([]byte("\n  \n"), []byte("a: 1\n")) {
		t.Fatal("same: want equal meaning (and an emptied file) to count as unchanged, and only that")
	}
}
