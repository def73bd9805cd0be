package natsbus_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/atollhq/atoll/hub/natsbus"
)

// TestLeafCompression: "off" at the hub turns compression off on a
// member's leaf connection (the member's server asks for S2 auto, as
// nats-server does by default); "auto" keeps S2; an unknown mode is
// refused.
func TestLeafCompression(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode string
		want func(string) bool
		what string
	}{
		{"off", func(c string) bool { return c == server.CompressionOff }, "off"},
		{"auto", func(c string) bool { return strings.HasPrefix(c, "s2_") }, "an S2 mode"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			bus, err := natsbus.Start(t.Context(), natsbus.Config{Seeds: newSeeds(t), DataDir: t.TempDir(),
				ClientListen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", LeafCompression: tc.mode})
			if err != nil {
				t.Fatalf("start the hub's NATS: %v", err)
			}
			t.Cleanup(bus.Close)
			a := register(t, bus, "a")
			hubResponder(t, bus, "atoll.m.a.ping")
			l := startLeaf(t, bus, a)
			l.awaitLinked(t, "atoll.m.a.ping")
			lz, err := bus.Server().Leafz(nil)
			if err != nil || len(lz.Leafs) != 1 {
				t.Fatalf("Leafz: %v, %+v; want one leaf connection", err, lz)
			}
			if got := lz.Leafs[0].Compression; !tc.want(got) {
				t.Errorf("--leaf-compression %s: the leaf connection's compression is %q; want %s", tc.mode, got, tc.what)
			}
		})
	}
	if _, err := natsbus.Start(t.Context(), natsbus.Config{Seeds: newSeeds(t), DataDir: t.TempDir(),
		ClientListen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", LeafCompression: "s2"}); err == nil || !strings.Contains(err.Error(), "leaf compression") {
		t.Errorf("LeafCompression s2: %v; want a refusal", err)
	}
}
