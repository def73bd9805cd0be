package ports

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeIsBindableAndBelowTheEphemeralRange: the port picked can be
// bound, and lies below 32768 where the kernel's range starts there.
func TestFreeIsBindableAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		addr, err := Free("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		if n, _ := strconv.Atoi(port); n < lowest || n >= 32768 {
			t.Errorf("picked %s: want a port from %d below the ephemeral range", addr, lowest)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("picked %s, which cannot be bound: %v", addr, err)
		}
		l.Close()
	}
}
