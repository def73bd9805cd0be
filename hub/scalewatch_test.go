package hub_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The scale harness's watchers run in a process of their own (this test
// binary again, with scaleWatchEnv set): with them in the benchmark's
// process, 100 watchers decoding every event took the CPU the creating
// clients needed, and the creates' rate measured the benchmark, not the
// hub (BENCHMARKS.md, "The watch send again"). Each watcher is an SSE
// watch of workloads through the API; it reads an event's name from its
// "event:" line and, for ADDED only, the workload's name from the data
// line (the first "name" of a WatchEvent is the object's), as cheaply as
// a client can.
//
// Its lines: "connected" once every watcher saw the workload sc-warm,
// "watched <path>" once every watcher saw every workload ADDED (path: a
// JSON file, per watcher the unix nanoseconds at which it saw each
// workload, 0 for none), "error <text>". End of input ends it.

// scaleWatchEnv holds a watcher process's scaleWatchSpec (JSON).
const scaleWatchEnv = "ATOLL_SCALE_WATCH"

type scaleWatchSpec struct {
	URL       string `json:"url"`
	Token     string `json:"token"`
	Watchers  int    `json:"watchers"`
	Workloads int    `json:"workloads"` // named sc-000000 ...
	Out       string `json:"out"`
}

// runScaleWatchers is the watcher process's main; it never returns.
func runScaleWatchers(specJSON string) {
	out := newScaleLines(os.Stdout)
	fail := func(format string, args ...any) {
		out.printf("error "+format, args...)
		out.flush()
		os.Exit(1)
	}
	var spec scaleWatchSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fail("%s: %v", scaleWatchEnv, err)
	}
	go func() { // the benchmark gone, the watchers go
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
		}
		os.Exit(0)
	}()
	seen := make([][]int64, spec.Watchers)
	var connected, done sync.WaitGroup
	for i := range seen {
		seen[i] = make([]int64, spec.Workloads)
		connected.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			if err := scaleWatch(spec, seen[i], connected.Done); err != nil {
				fail("watcher %d: %v", i, err)
			}
		}()
	}
	connected.Wait()
	out.printf("connected")
	done.Wait()
	data, _ := json.Marshal(seen)
	if err := os.WriteFile(spec.Out, data, 0o600); err != nil {
		fail("%v", err)
	}
	out.printf("watched %s", spec.Out)
	select {}
}

// scaleWatch is one watcher: it returns once it saw every workload.
func scaleWatch(spec scaleWatchSpec, seen []int64, connected func()) error {
	req, err := http.NewRequest(http.MethodGet, spec.URL+"/api/v1/watch/workloads", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+spec.Token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	event, n, warm := "", 0, false
	name := []byte(`"name":"`)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")) && event == "ERROR":
			return fmt.Errorf("the watch ended: %s", line)
		case bytes.HasPrefix(line, []byte("data: ")) && event == "ADDED":
			at := time.Now().UnixNano()
			i := bytes.Index(line, name)
			if i < 0 {
				continue
			}
			rest := line[i+len(name):]
			w, _, _ := strings.Cut(string(rest[:min(len(rest), 64)]), `"`)
			if w == "sc-warm" && !warm {
				warm = true
				connected()
				continue
			}
			k, err := strconv.Atoi(strings.TrimPrefix(w, "sc-"))
			if err != nil || k < 0 || k >= len(seen) || seen[k] != 0 {
				continue
			}
			seen[k] = at
			if n++; n == len(seen) {
				return nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("the watch ended after %d of %d workloads", n, len(seen))
}
