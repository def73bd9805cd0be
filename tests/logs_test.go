package tests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestLogsCLI: `atoll logs` against atoll dev: --tail and --timestamps on
// a running process; a replica, a workload or a previous run that does
// not exist is an error (exit status 1); a simulated replica's logs say
// why there are none. The console's logs panel (Chromium) shows the
// process's lines with their times and follows new ones; one replica
// that does not exist shows the API's reason.
func TestLogsCLI(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)
	talker, sim := uniqueName("logs-talker"), uniqueName("logs-sim")
	d.mustAtoll(t, fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 1
  template: {driver: process, command: /bin/sh, args: ["-c", "echo hello; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]}
---
apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 1
  template: {driver: sim}
`, talker, sim), "apply", "-f", "-")
	t.Cleanup(func() {
		d.atoll(t, nil, "", "delete", "workload", talker)
		d.atoll(t, nil, "", "delete", "workload", sim)
	})

	// The replica's name, from the prefix of a whole read.
	prefix := regexp.MustCompile(`^\[([a-z0-9-]+)/(` + talker + `-[a-z0-9]+)\] hello$`)
	var cluster, replica string
	deadline := time.Now().Add(60 * time.Second)
	for replica == "" {
		if time.Now().After(deadline) {
			t.Fatalf("want %s's hello line within 60 s", talker)
		}
		r := d.atoll(t, nil, "", "logs", talker)
		for _, l := range strings.Split(r.stdout, "\n") {
			if m := prefix.FindStringSubmatch(l); m != nil {
				cluster, replica = m[1], m[2]
			}
		}
		if replica == "" {
			time.Sleep(200 * time.Millisecond) // polling the CLI for the replica to start
		}
	}

	r := d.mustAtoll(t, "", "logs", talker, "--replica", replica, "--cluster", cluster, "--tail", "2", "--timestamps")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (hello|tick \d+)$`)
	if len(lines) != 2 || !stamped.MatchString(lines[0]) || !stamped.MatchString(lines[1]) {
		t.Errorf("want two time-stamped lines from --tail 2 --timestamps; got:\n%s", r.stdout)
	}
	if r := d.mustAtoll(t, "", "logs", talker, "--replica", replica, "--since", "1h"); !strings.HasPrefix(r.stdout, "hello\n") {
		t.Errorf("want --since 1h to start with the hello line; got:\n%s", r.stdout)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		// --cluster: a cluster another test left behind, its member gone,
		// cannot say it has no such replica (the CLI then says it did not
		// answer and cannot fail for it).
		{[]string{"logs", talker, "--replica", talker + "-nope", "--cluster", cluster}, "no replica " + talker + "-nope"},
		{[]string{"logs", "no-such-workload"}, "not found"},
		{[]string{"logs", talker, "--replica", replica, "--previous", "--cluster", cluster}, "no previous run"},
		{[]string{"logs", talker, "--since", "yesterday"}, "since"},
		{[]string{"logs", talker, "--tail", "-3"}, "--tail -3"},
		{[]string{"logs", talker, "--previous", "-f"}, "cannot be followed"},
	} {
		r := d.atoll(t, nil, "", c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("want `atoll %s` to fail saying %q; got:\n%s", strings.Join(c.args, " "), c.want, r)
		}
	}

	deadline = time.Now().Add(60 * time.Second)
	for {
		// Not mustAtoll: the shared hub holds clusters other tests left,
		// and one may hold (or have held) the replica with its member
		// gone: a read that lacks a cluster exits 1, with what the others
		// said.
		r := d.atoll(t, nil, "", "logs", sim)
		if strings.Contains(r.stdout, "is simulated: it has no process and writes no output") {
			if strings.Contains(r.stdout, "no logs of") {
				t.Errorf("want the reason alone, not also a bare \"no logs\"; got:\n%s", r.stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the simulated replica's logs to say why there are none; got:\n%s", r.stdout)
		}
		time.Sleep(200 * time.Millisecond) // polling the CLI for the replica to be placed
	}

	a := &tab{t: t, ctx: startBrowser(t), name: "console", dir: artifactsDir(t)}
	a.do("sign in", chromedp.Navigate(d.url+"/signin"), chromedp.WaitVisible(`#token`), chromedp.SendKeys(`#token`, d.token), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))
	a.do("open the talker's page", chromedp.Navigate(d.url+"/workloads/"+talker), chromedp.WaitVisible(`[data-logs]`))
	a.waitJS("the logs panel following, with the hello line stamped with its time",
		`document.querySelector('[data-logs]').dataset.state === 'following' && /\d{4}-\d\d-\d\dT[^ ]+Z hello/.test(document.querySelector('[data-logs]').textContent)`)
	ticks := func() int {
		n := 0
		fmt.Sscan(a.eval(`String((document.querySelector('[data-logs]').textContent.match(/ tick \d+/g) || []).length)`), &n)
		return n
	}
	seen := ticks()
	a.waitJS("new lines followed without a reload", fmt.Sprintf(`(document.querySelector('[data-logs]').textContent.match(/ tick \d+/g) || []).length > %d`, seen))
	a.shot("logs-panel")
	a.do("ask for a replica that does not exist", chromedp.SetValue(`[data-logs-form] input[name=replica]`, talker+"-nope"), chromedp.Click(`[data-action="logs"]`))
	a.waitJS("the panel saying why there are no logs", `document.querySelector('[data-logs]').dataset.state === 'error' && document.querySelector('[data-logs-status]').textContent.includes('no replica')`)
}
