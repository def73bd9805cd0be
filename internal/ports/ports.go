// Package ports picks TCP ports to bind later: a port that is free now,
// below the kernel's range of ephemeral ports when it can be. A port
// picked now and bound a moment later by another process (a NATS server,
// a member started by a test) may meanwhile be handed to any outgoing
// connection on the machine when it lies in the ephemeral range, which a
// busy machine does often; below the range, only another listener
// picking the same port can take it. It owns nothing else.
package ports

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port picked outside the ephemeral range.
const lowest = 10000

// Free returns host:port for a port that was free a moment ago.
func Free(host string) (string, error) {
	low := 32768 // Linux's default start of the ephemeral range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for i := 0; i < 64 && low > lowest; i++ {
		addr := net.JoinHostPort(host, strconv.Itoa(lowest+rand.IntN(low-lowest)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}
