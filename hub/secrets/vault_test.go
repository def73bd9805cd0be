package secrets_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/secrets"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestSealOpen: data comes back as sealed; another uid, another key or a
// flipped byte does not open; the sealed bytes do not hold the values.
func TestSealOpen(t *testing.T) {
	data := api.DataSpec{Data: map[string]string{"password": "hunter2-hunter2"}, BinaryData: map[string]string{"k": "AAEC"}}
	sealed, err := secrets.Seal(key(1), "uid-1", data)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("the sealed bytes hold the value")
	}
	got, err := secrets.Open(key(1), "uid-1", sealed)
	if err != nil || !secrets.Equal(got, data) {
		t.Fatalf("want the data back; got %+v, %v", got, err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, try := range map[string]func() error{
		"another uid": func() error { _, err := secrets.Open(key(1), "uid-2", sealed); return err },
		"another key": func() error { _, err := secrets.Open(key(2), "uid-1", sealed); return err },
		"flipped":     func() error { _, err := secrets.Open(key(1), "uid-1", flipped); return err },
		"truncated":   func() error { _, err := secrets.Open(key(1), "uid-1", sealed[:10]); return err },
	} {
		if err := try(); !errors.Is(err, secrets.ErrCorrupt) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: want ErrCorrupt; got %v", name, err)
		}
	}
}

// TestEqual: same keys and values in the same maps, nothing else.
func TestEqual(t *testing.T) {
	a := api.DataSpec{Data: map[string]string{"a": "1"}}
	for _, c := range []struct {
		b    api.DataSpec
		want bool
	}{
		{api.DataSpec{Data: map[string]string{"a": "1"}}, true},
		{api.DataSpec{Data: map[string]string{"a": "2"}}, false},
		{api.DataSpec{Data: map[string]string{"a": "1", "b": ""}}, false},
		{api.DataSpec{BinaryData: map[string]string{"a": "MQ=="}}, false}, // same bytes, binary
		{api.DataSpec{}, false},
	} {
		if got := secrets.Equal(a, c.b); got != c.want {
			t.Errorf("Equal(%v, %v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

// BenchmarkOpen is the decrypt-on-read cost of one secret once its data
// key is unwrapped: AES-256-GCM and the JSON of its values.
func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{64, 4096} {
		data := api.DataSpec{Data: map[string]string{"password": strings.Repeat("x", size), "user": "app"}}
		sealed, _ := secrets.Seal(key(1), "uid-1", data)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			for b.Loop() {
				if _, err := secrets.Open(key(1), "uid-1", sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
