package throttle

import (
	"context"
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBurstThenRefusedUntilRefilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	th := New(Config{Burst: 3, Every: 10 * time.Second, Now: clk.now})
	const a, b = "192.0.2.1:5000", "192.0.2.2:5000"
	for i := range 3 {
		if _, ok := th.Allow(ctx, "api", a); !ok {
			t.Fatalf("attempt %d: refused within the burst", i+1)
		}
		th.Fail(a)
	}
	wait, ok := th.Allow(ctx, "api", "192.0.2.1:6000") // another port, same client
	if ok || wait != 10*time.Second {
		t.Fatalf("after 3 failures: want a refusal for 10s, got ok=%v wait=%v", ok, wait)
	}
	if _, ok := th.Allow(ctx, "api", b); !ok {
		t.Fatal("another address was refused")
	}
	clk.t = clk.t.Add(4 * time.Second)
	if wait, ok := th.Allow(ctx, "api", a); ok || wait != 6*time.Second {
		t.Fatalf("4s later: want a refusal for 6s more, got ok=%v wait=%v", ok, wait)
	}
	clk.t = clk.t.Add(6 * time.Second)
	if _, ok := th.Allow(ctx, "api", a); !ok {
		t.Fatal("10s later: want one attempt allowed again")
	}
	th.Fail(a)
	if _, ok := th.Allow(ctx, "api", a); ok {
		t.Fatal("that one failed too: want a refusal again")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	th := New(Config{Burst: 2, Every: time.Second, MaxClients: 100, Now: clk.now})
	for i := range 1000 {
		th.Fail(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256))
		if n := th.Tracked(); n > 100 {
			t.Fatalf("after %d addresses failed: %d tracked, want at most 100", i+1, n)
		}
	}
	// Refilled buckets go first: one that keeps failing is kept.
	clk.t = clk.t.Add(time.Hour)
	const bad = "203.0.113.9:1"
	th.Fail(bad)
	th.Fail(bad)
	for i := range 150 {
		th.Fail(fmt.Sprintf("10.1.%d.%d:1", i/256, i%256))
	}
	if _, ok := th.Allow(context.Background(), "api", bad); ok {
		t.Error("the failing address was forgotten while refilled ones were kept")
	}
}

func TestClient(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1:443":                  "192.0.2.1",
		"192.0.2.1":                      "192.0.2.1",
		"[::ffff:192.0.2.1]:80":          "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:22": "2001:db8:1:2::/64",
		"pipe":                           "pipe",
	} {
		if got := Client(in); got != want {
			t.Errorf("Client(%q) = %q, want %q", in, got, want)
		}
	}
}
