package portfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain runs the echo helper when re-executed inside a network
// namespace of its own.
func TestMain(m *testing.M) {
	if port := os.Getenv("PORTFWD_ECHO"); port != "" {
		echo(port)
		return
	}
	os.Exit(m.Run())
}

// echo brings the namespace's loopback up, then echoes every connection
// to 127.0.0.1:port line by line, prefixed with "echo ".
func echo(port string) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		panic(err)
	}
	ifr, _ := unix.NewIfreq("lo")
	ifr.SetUint16(unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		panic(err)
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "echo %s\n", sc.Text())
			}
		}()
	}
}

// inNamespace starts the echo helper in a network namespace of its own.
func inNamespace(t *testing.T, port int) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a network namespace of its own needs root")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"PORTFWD_ECHO=" + strconv.Itoa(port)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the helper in a new network namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("the helper did not get ready: %q, %v", line, err)
	}
	return cmd.Process.Pid
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func roundTrip(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// TestForwardIntoNamespace: a connection to the host port reaches the
// listener inside the namespace, which the node cannot reach on the
// container port; without a target the connection is closed; Close
// releases the port.
func TestForwardIntoNamespace(t *testing.T) {
	t.Parallel()
	inside := freePort(t)
	pid := inNamespace(t, inside)
	var target atomic.Int64
	target.Store(int64(pid))
	f, err := Listen(0, inside, func() int { return int(target.Load()) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(f.Port()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c, "hello"); err != nil || got != "echo hello\n" {
		t.Fatalf("through the forward: %q, %v; want %q", got, err, "echo hello\n")
	}
	// Half-close passes on: the helper sees EOF and closes its side.
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after the half-close: %q, %v; want EOF", rest, err)
	}
	c.Close()

	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(inside), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("the container port %d answers on the node's own network", inside)
	}

	target.Store(0) // no container runs
	c, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(f.Port()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c, "anyone"); err == nil {
		t.Fatalf("without a container the forward answered %q", got)
	}
	c.Close()

	f.Close()
	f.Close()
	if l, err := net.Listen("tcp", ":"+strconv.Itoa(f.Port())); err != nil {
		t.Errorf("the host port is still held after Close: %v", err)
	} else {
		l.Close()
	}
}

// TestDialRefusesTheNodesNamespace: a pid in the node's own namespace
// (a container gone, its pid reused) is never dialled.
func TestDialRefusesTheNodesNamespace(t *testing.T) {
	t.Parallel()
	_, err := DialInNamespace(context.Background(), os.Getpid(), "127.0.0.1:1")
	if !errors.Is(err, ErrHostNamespace) {
		t.Fatalf("dial into this process's own namespace: %v, want ErrHostNamespace", err)
	}
	_, err = DialInNamespace(context.Background(), 1<<30, "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "open the network namespace") {
		t.Fatalf("dial into a pid that does not exist: %v", err)
	}
}
