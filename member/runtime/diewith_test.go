package runtime

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDieWithAgent: with DieWithAgent, a SIGKILLed agent takes its replica
// processes with it (no replica outlives its agent unsupervised).
func TestDieWithAgent(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe)
	agent.Env = append(os.Environ(), helperEnv+"=agent", "AGENT_DIR="+t.TempDir())
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	pidc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
				pid, _ := strconv.Atoi(rest)
				pidc <- pid
				return
			}
		}
	}()
	var pid int
	select {
	case pid = <-pidc:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not start its replica")
	}
	if processGone(pid) {
		t.Fatalf("replica %d is not running", pid)
	}
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("replica %d outlived its SIGKILLed agent by 5s", pid)
		}
		time.Sleep(10 * time.Millisecond) // an external process's exit: bounded poll
	}
}
