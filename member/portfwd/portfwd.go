// Package portfwd forwards TCP connections from a port of the node into
// another network namespace: the node agent's port mapping for
// containers that have a network of their own (loopback only), without
// iptables, bridges or veth pairs.
//
// A Forward listens on the host port for as long as its replica holds
// the port (across the container's restarts). For each connection it
// asks its target for the container's init pid, enters that process's
// network namespace on a locked OS thread (setns on
// /proc/<pid>/ns/net), opens the connection to 127.0.0.1:<container
// port> there, and returns the thread to the node's namespace: a socket
// keeps the namespace it was made in. Bytes then flow both ways with
// half-closes passed on. A connection that arrives while no container
// runs, or whose dial is refused inside, is closed at once.
//
// The package must not decide which ports a replica gets (the runtime
// does) nor forward anything but TCP. Forwards live in the agent: while
// no agent runs, a mapped port does not answer (the container keeps
// running and the next agent forwards again).
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sys/unix"
)

// Target names the process whose network namespace a connection goes
// into: the container's init (0 when no container runs now).
type Target func() int

// Forward is one forwarded port. Make one with Listen.
type Forward struct {
	ln      net.Listener
	port    int
	inside  int
	target  Target
	log     *slog.Logger
	dialMax time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

var (
	metricsOnce sync.Once
	connCount   metric.Int64Counter
)

func counter() metric.Int64Counter {
	metricsOnce.Do(func() {
		connCount, _ = otel.Meter("github.com/atollhq/atoll/member/portfwd").Int64Counter("portfwd.connections",
			metric.WithUnit("{connection}"),
			metric.WithDescription("Connections to mapped container ports, by outcome (forwarded, no_container, refused)."))
	})
	return connCount
}

// Listen forwards TCP connections to hostPort (on every address of the
// node) to 127.0.0.1:containerPort inside target's network namespace.
func Listen(hostPort, containerPort int, target Target, log *slog.Logger) (*Forward, error) {
	if containerPort < 1 || containerPort > 65535 {
		return nil, fmt.Errorf("forward port %d: container port %d out of range", hostPort, containerPort)
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(hostPort))
	if err != nil {
		return nil, fmt.Errorf("forward port %d: %w", hostPort, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forward{
		ln: ln, port: ln.Addr().(*net.TCPAddr).Port, inside: containerPort, target: target,
		log: log, dialMax: 5 * time.Second, conns: map[net.Conn]struct{}{},
	}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Port is the host port the forward listens on.
func (f *Forward) Port() int { return f.port }

// Close stops listening and closes the connections being forwarded.
// Safe to call twice.
func (f *Forward) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *Forward) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			f.log.Warn("port forward: accept", "port", f.port, "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.handle(c)
	}
}

func (f *Forward) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forward) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *Forward) handle(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	pid := f.target()
	if pid <= 0 {
		counter().Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", "no_container")))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.dialMax)
	in, err := DialInNamespace(ctx, pid, "127.0.0.1:"+strconv.Itoa(f.inside))
	cancel()
	if err != nil {
		counter().Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", "refused")))
		f.log.Debug("port forward: dial inside the container", "port", f.port, "container_port", f.inside, "pid", pid, "err", err)
		return
	}
	if !f.track(in) {
		in.Close()
		return
	}
	defer f.untrack(in)
	counter().Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", "forwarded")))
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // pass the half-close on
		}
		done <- struct{}{}
	}
	go pipe(in, c)
	go pipe(c, in)
	<-done
	<-done
}

// ErrHostNamespace is returned when pid's network namespace is the
// node's own: the process is not (or no longer) a container with a
// network of its own, and a dial there would reach the node's ports.
var ErrHostNamespace = errors.New("the process shares the node's network namespace")

// dialSlots bounds the dials in progress in the process: each holds an
// OS thread locked for up to its deadline (a container whose listen
// backlog is full drops the SYNs), and a flood of connections to a
// mapped port must not reach the runtime's thread limit (fatal) but
// wait here for a slot, as long as its context lets it.
var dialSlots = make(chan struct{}, 64)

// DialInNamespace opens a TCP connection to addr from inside the network
// namespace of pid.
func DialInNamespace(ctx context.Context, pid int, addr string) (net.Conn, error) {
	select {
	case dialSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-dialSlots }()
	ns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open the network namespace of %d: %w", pid, err)
	}
	defer ns.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// A thread of its own: setns changes only the calling thread,
		// and a thread whose namespace could not be restored must die
		// with this goroutine (it stays locked).
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open this thread's network namespace: %w", err)}
			return
		}
		defer home.Close()
		if same, err := sameFile(home, ns); err != nil || same {
			runtime.UnlockOSThread()
			ch <- result{err: cmpErr(err, ErrHostNamespace)}
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter the network namespace of %d: %w", pid, err)}
			return
		}
		// The socket is made here, in the container's namespace (the
		// goroutine stays on this thread until the dial ends).
		var d net.Dialer
		c, derr := d.DialContext(ctx, "tcp", addr)
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime ends this thread with the goroutine.
			ch <- result{c: c, err: derr}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c: c, err: derr}
	}()
	r := <-ch
	return r.c, r.err
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// sameFile reports whether a and b are the same namespace (device and
// inode).
func sameFile(a, b *os.File) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a.Fd()), &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(int(b.Fd()), &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
