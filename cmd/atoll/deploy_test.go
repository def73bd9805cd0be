package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The shipping files (docker-compose.yml, the Helm chart, the systemd
// units) pass flags to this binary that no compiler checks. These tests
// pull every `atoll ...` command line out of them and parse it with the
// real command tree, as the binary would at start.

// repoRoot is where the shipping files are, from this package's folder.
const repoRoot = "../.."

// invocation is one command line found in a shipping file.
type invocation struct {
	where string   // file and place, for messages
	argv  []string // the arguments after "atoll"
}

func (in invocation) String() string { return in.where + ": atoll " + strings.Join(in.argv, " ") }

// checkInvocation parses argv as `atoll argv...` would, without running
// anything: the subcommand must exist and run, every flag must exist and
// take its value (durations, numbers), positional arguments must fit.
func checkInvocation(argv []string) error {
	root := newRoot()
	cmd, rest, err := root.Find(argv)
	if err != nil {
		return err
	}
	if !cmd.Runnable() || cmd.Annotations[groupAnnotation] != "" {
		return fmt.Errorf("%q is a group of commands, not one that runs", cmd.CommandPath())
	}
	// Find stops at the last command it knows: a word right after it that
	// the command does not take is a misspelt subcommand.
	if cmd.HasSubCommands() && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && cmd.ValidateArgs(rest[:1]) != nil {
		return fmt.Errorf("unknown command %q for %q", rest[0], cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	// Flags that only work together, which the parser cannot know.
	if cmd.Name() == "hub" && cmd.Flags().Changed("nats-url") && !cmd.Flags().Changed("leaf-advertise") {
		return fmt.Errorf("%s: --nats-url needs --leaf-advertise (the hub refuses to start without)", cmd.CommandPath())
	}
	return nil
}

// composeVar matches compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// interpolateCompose replaces variables with their defaults, or with a
// placeholder where there is none (the flag still gets a value).
func interpolateCompose(s string) string {
	s = composeVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if strings.Contains(m, "-") {
			return sub[2]
		}
		return "value-of-" + sub[1]
	})
	return strings.ReplaceAll(s, "$$", "$")
}

// composeInvocations returns the atoll command lines of a compose file:
// the command of every service whose image is Atoll's (built from
// deploy/Dockerfile, entrypoint "atoll"), and every healthcheck that runs
// atoll.
func composeInvocations(name string, data []byte) ([]invocation, error) {
	var file struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build struct {
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Entrypoint any `yaml:"entrypoint"`
			Command    any `yaml:"command"`
			Health     struct {
				Test any `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(file.Services) == 0 {
		return nil, fmt.Errorf("%s: no services", name)
	}
	words := func(v any) []string {
		switch v := v.(type) {
		case string:
			return strings.Fields(interpolateCompose(v))
		case []any:
			out := make([]string, len(v))
			for i, w := range v {
				out[i] = interpolateCompose(fmt.Sprint(w))
			}
			return out
		}
		return nil
	}
	var out []invocation
	for svc, s := range file.Services {
		isAtoll := strings.HasSuffix(s.Build.Dockerfile, "deploy/Dockerfile") || strings.Contains(s.Image, "atoll")
		if isAtoll {
			if ep := words(s.Entrypoint); ep != nil && !slices.Equal(ep, []string{"atoll"}) {
				return nil, fmt.Errorf("%s: service %s overrides the atoll entrypoint with %v", name, svc, ep)
			}
			argv := words(s.Command)
			if argv == nil {
				return nil, fmt.Errorf("%s: service %s runs the atoll image without a command", name, svc)
			}
			out = append(out, invocation{where: name + " service " + svc, argv: argv})
		}
		test := words(s.Health.Test)
		if len(test) > 0 && test[0] == "CMD-SHELL" && len(test) == 2 {
			test = append([]string{"CMD"}, strings.Fields(test[1])...)
		}
		if len(test) > 2 && filepath.Base(test[1]) == "atoll" {
			out = append(out, invocation{where: name + " service " + svc + " healthcheck", argv: test[2:]})
		}
	}
	return out, nil
}

// valuePath reads a dotted path (".a.b") from Helm values.
func valuePath(values map[string]any, path string) (any, bool) {
	var cur any = values
	for _, k := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

var (
	helmExpr   = regexp.MustCompile(`\{\{-?\s*(.*?)\s*-?\}\}`)
	helmValue  = regexp.MustCompile(`^\.Values((?:\.[A-Za-z0-9_]+)+)(?:\s*\|\s*quote)?$`)
	helmJoin   = regexp.MustCompile(`^join\s+"([^"]*)"\s+\.Values((?:\.[A-Za-z0-9_]+)+)$`)
	helmAction = regexp.MustCompile(`^\s*\{\{-?\s*(if|else|end|with|range|/\*|include|toYaml|- ).*\}\}\s*$`)
)

// resolveHelm replaces the template expressions of one line: .Values
// paths (and joins of lists) by their value in values.yaml, anything else
// (`{{ . }}` inside with or range) by a placeholder.
func resolveHelm(line string, values map[string]any) string {
	return helmExpr.ReplaceAllStringFunc(line, func(m string) string {
		expr := helmExpr.FindStringSubmatch(m)[1]
		if sub := helmValue.FindStringSubmatch(expr); sub != nil {
			if v, ok := valuePath(values, sub[1]); ok && v != nil {
				switch v.(type) {
				case map[string]any, []any:
				default:
					return fmt.Sprint(v)
				}
			}
		}
		if sub := helmJoin.FindStringSubmatch(expr); sub != nil {
			if v, ok := valuePath(values, sub[2]); ok {
				if list, ok := v.([]any); ok && len(list) > 0 {
					parts := make([]string, len(list))
					for i, p := range list {
						parts[i] = fmt.Sprint(p)
					}
					return strings.Join(parts, sub[1])
				}
			}
		}
		return "placeholder"
	})
}

// helmInvocations returns the container argument lists of a chart
// template: the items of each `args:` block, every branch of its
// conditionals included, with values from values.yaml. An item that is a
// template expression alone comes from a values list (extraArgs), which
// the caller checks on its own.
func helmInvocations(name string, tmpl []byte, values map[string]any) []invocation {
	var out []invocation
	lines := strings.Split(string(tmpl), "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if trimmed != "args:" {
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		in := invocation{where: fmt.Sprintf("%s:%d", name, i+1)}
		for j := i + 1; j < len(lines); j++ {
			l := lines[j]
			t := strings.TrimSpace(l)
			if t == "" || helmAction.MatchString(l) {
				continue
			}
			if len(l)-len(strings.TrimLeft(l, " ")) <= indent || !strings.HasPrefix(t, "- ") {
				break
			}
			item := strings.TrimSpace(strings.TrimPrefix(t, "- "))
			if helmExpr.ReplaceAllString(item, "") == "" {
				continue // a whole item from a values list
			}
			item = strings.Trim(resolveHelm(item, values), `"'`)
			in.argv = append(in.argv, item)
		}
		out = append(out, in)
	}
	return out
}

// systemdWords splits a systemd command line: quotes group, a standalone
// $VAR expands to any number of words (dropped here), ${VAR} to one
// (a placeholder).
func systemdWords(line string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			flush()
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	flush()
	var out []string
	braced := regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)
	for _, w := range words {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			continue
		}
		out = append(out, braced.ReplaceAllString(w, "placeholder"))
	}
	return out
}

// systemdInvocations returns the atoll command lines of a unit's Exec*=
// settings.
func systemdInvocations(name string, data []byte) []invocation {
	var out []invocation
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for i, line := range strings.Split(text, "\n") {
		key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.HasPrefix(key, "Exec") {
			continue
		}
		words := systemdWords(strings.TrimLeft(val, "-@:+!|"))
		if len(words) == 0 || filepath.Base(words[0]) != "atoll" {
			continue
		}
		out = append(out, invocation{where: fmt.Sprintf("%s:%d %s", name, i+1, key), argv: words[1:]})
	}
	return out
}

// commandsIn names the subcommands the invocations run ("hub",
// "hub nats-config", ...).
func commandsIn(ins []invocation) map[string]bool {
	got := map[string]bool{}
	for _, in := range ins {
		cmd, _, err := newRoot().Find(in.argv)
		if err == nil {
			got[strings.TrimPrefix(cmd.CommandPath(), "atoll ")] = true
		}
	}
	return got
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatalf("want %s readable: %v", rel, err)
	}
	return b
}

// checkAll fails t for every invocation the binary would refuse, and
// when the files do not run each of want.
func checkAll(t *testing.T, ins []invocation, want ...string) {
	t.Helper()
	for _, in := range ins {
		t.Logf("checking %s", in)
		if err := checkInvocation(in.argv); err != nil {
			t.Errorf("%s\n  want a command line this binary accepts; got: %v", in, err)
		}
	}
	got := commandsIn(ins)
	for _, w := range want {
		if !got[w] {
			t.Errorf("want an `atoll %s` command among the %d found; got commands %v", w, len(ins), got)
		}
	}
}

func TestDeployComposeFlagsExist(t *testing.T) {
	t.Parallel()
	ins, err := composeInvocations("docker-compose.yml", readRepoFile(t, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, ins, "hub", "hub nats-config", "hub gen-key", "token create", "member", "node", "probe")
}

func TestDeployHelmFlagsExist(t *testing.T) {
	t.Parallel()
	chart := filepath.Join("deploy", "helm", "atoll")
	var values map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, filepath.Join(chart, "values.yaml")), &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	templates, err := filepath.Glob(filepath.Join(repoRoot, chart, "templates", "*.yaml"))
	if err != nil || len(templates) == 0 {
		t.Fatalf("want chart templates in %s; got %v (%v)", chart, templates, err)
	}
	var ins []invocation
	for _, path := range templates {
		rel, _ := filepath.Rel(repoRoot, path)
		ins = append(ins, helmInvocations(rel, readRepoFile(t, rel), values)...)
	}
	// extraArgs, in values.yaml and in the chart's CI values, are flags of
	// `atoll hub` too.
	valueFiles, _ := filepath.Glob(filepath.Join(repoRoot, chart, "ci", "*.yaml"))
	valueFiles = append(valueFiles, filepath.Join(repoRoot, chart, "values.yaml"))
	for _, path := range valueFiles {
		rel, _ := filepath.Rel(repoRoot, path)
		var v struct {
			ExtraArgs []string `yaml:"extraArgs"`
		}
		if err := yaml.Unmarshal(readRepoFile(t, rel), &v); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if len(v.ExtraArgs) > 0 {
			ins = append(ins, invocation{where: rel + " extraArgs", argv: append([]string{"hub"}, v.ExtraArgs...)})
		}
	}
	checkAll(t, ins, "hub")
}

func TestDeploySystemdFlagsExist(t *testing.T) {
	t.Parallel()
	units, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "systemd", "*.service"))
	if err != nil || len(units) == 0 {
		t.Fatalf("want units in deploy/systemd; got %v (%v)", units, err)
	}
	var ins []invocation
	for _, path := range units {
		rel, _ := filepath.Rel(repoRoot, path)
		ins = append(ins, systemdInvocations(rel, readRepoFile(t, rel))...)
	}
	checkAll(t, ins, "hub", "member", "node")
}

// secretFlags take a secret as their value: on a command line it is
// visible to every local user (ps, /proc), so shipping files use the
// -file form or the environment instead.
var secretFlags = []string{"--join-token", "--token"}

// checkSecrets returns what is wrong with the secrets of one invocation:
// a secret given as a flag's value, or a hub command that opens the
// database's NATS signing keys without --key-file.
func checkSecrets(in invocation) []string {
	var bad []string
	for _, a := range in.argv {
		name, _, _ := strings.Cut(a, "=")
		if slices.Contains(secretFlags, name) {
			bad = append(bad, fmt.Sprintf("%s: %s puts a secret on the command line; use %s-file", in.where, name, name))
		}
	}
	cmd, _, err := newRoot().Find(in.argv)
	if err != nil {
		return bad
	}
	needsKey := map[string]bool{"atoll hub": true, "atoll hub nats-config": true}
	if needsKey[cmd.CommandPath()] && !slices.ContainsFunc(in.argv, func(a string) bool { return a == "--key-file" || strings.HasPrefix(a, "--key-file=") }) {
		bad = append(bad, fmt.Sprintf("%s: `%s` without --key-file (the key-encryption key of the NATS signing keys)", in.where, cmd.CommandPath()))
	}
	return bad
}

// TestDeploySecretsOffTheCommandLine: no shipping file passes a token as a
// flag's value, and every hub command gets its key-encryption key from a
// file.
func TestDeploySecretsOffTheCommandLine(t *testing.T) {
	t.Parallel()
	ins, err := composeInvocations("docker-compose.yml", readRepoFile(t, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, "deploy/helm/atoll/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	ins = append(ins, helmInvocations("deployment.yaml", readRepoFile(t, "deploy/helm/atoll/templates/deployment.yaml"), values)...)
	units, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "systemd", "*.service"))
	for _, path := range units {
		rel, _ := filepath.Rel(repoRoot, path)
		ins = append(ins, systemdInvocations(rel, readRepoFile(t, rel))...)
	}
	if len(ins) < 10 {
		t.Fatalf("want the command lines of every shipping file; found %d", len(ins))
	}
	for _, in := range ins {
		for _, bad := range checkSecrets(in) {
			t.Error(bad)
		}
	}
	// The check can fail.
	for argv, want := range map[string]string{
		"member --name a --region r --join-token atollj_x":  "puts a secret on the command line",
		"token create x --join --token=secret":              "puts a secret on the command line",
		"hub --listen :8080 --data-dir /d":                  "without --key-file",
		"hub nats-config --output /x":                       "without --key-file",
		"hub --listen :8080 --key-file=/k":                  "",
		"member --name a --join-token-file /etc/atoll/join": "",
	} {
		got := checkSecrets(invocation{where: "inline", argv: strings.Fields(argv)})
		if (want == "") != (len(got) == 0) || (want != "" && !strings.Contains(strings.Join(got, "\n"), want)) {
			t.Errorf("atoll %s: want %q; got %v", argv, want, got)
		}
	}
}

// TestDeployCheckCatchesMistakes feeds the extractors small inline files
// with one mistake each: the checks above must be able to fail.
func TestDeployCheckCatchesMistakes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		extract func() ([]invocation, error)
		wantErr string // "" for a file that must pass
	}{
		{"compose: good", composeFile(`[hub, --listen=0.0.0.0:8080, --nats-url=nats://n:4222, --leaf-advertise=nats://n:7422]`), ""},
		{"compose: misspelt flag", composeFile(`[hub, --listen=0.0.0.0:8080, --leaf-advertize=nats://n:7422]`), "unknown flag: --leaf-advertize"},
		{"compose: unknown command", composeFile(`[hubb, --listen=:8080]`), `unknown command "hubb"`},
		{"compose: misspelt subcommand", composeFile(`[hub, nats-confg, --output=/x]`), "unknown command"},
		{"compose: group without a command", composeFile(`[token, --server=http://h:8080]`), "not one that runs"},
		{"compose: bad duration", composeFile(`"member --name=a --region=r --heartbeat-interval=${HB:-500}"`), "invalid argument"},
		{"compose: flags that need each other", composeFile(`[hub, --nats-url=nats://n:4222]`), "needs --leaf-advertise"},
		{"compose: healthcheck", composeHealth(`["CMD", "atoll", "probe", "--timout=2s", "http://127.0.0.1:8080/readyz"]`), "unknown flag: --timout"},
		{"helm: good", helmFile(`- "--heartbeat-interval={{ .Values.health.beat }}"`), ""},
		{"helm: misspelt flag", helmFile(`{{- if .Values.tls }}
            - "--tls-certificate=/etc/atoll/tls/tls.crt"
            {{- end }}`), "unknown flag: --tls-certificate"},
		{"helm: bad value from values.yaml", helmFile(`- "--unreachable-after={{ .Values.health.bad }}"`), "invalid argument"},
		{"helm: join of a values list", helmFile(`- "--nats-url={{ join "," .Values.nats.urls }}"`), "needs --leaf-advertise"},
		{"systemd: good", unitFile(`ExecStart=/usr/local/bin/atoll node --member ${URL} --name n1 $EXTRA`), ""},
		{"systemd: misspelt flag", unitFile(`ExecStart=/usr/local/bin/atoll member --name ${N} --regoin eu`), "unknown flag: --regoin"},
		{"systemd: continued line", unitFile("ExecStart=/usr/local/bin/atoll hub \\\n  --data-dri /var/lib/atoll"), "unknown flag: --data-dri"},
	}
	for _, c := range cases {
		ins, err := c.extract()
		if err != nil {
			t.Errorf("%s: extract: %v", c.name, err)
			continue
		}
		if len(ins) != 1 {
			t.Errorf("%s: want 1 command line found; got %d: %v", c.name, len(ins), ins)
			continue
		}
		err = checkInvocation(ins[0].argv)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: want %s accepted; got %v", c.name, ins[0], err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: want %s refused with %q; got %v", c.name, ins[0], c.wantErr, err)
		}
	}
}

func composeFile(command string) func() ([]invocation, error) {
	return func() ([]invocation, error) {
		return composeInvocations("inline", []byte("services:\n  x:\n    image: atoll:dev\n    command: "+command+"\n  db:\n    image: postgres:17\n    command: [postgres, --not-ours]\n"))
	}
}

func composeHealth(test string) func() ([]invocation, error) {
	return func() ([]invocation, error) {
		return composeInvocations("inline", []byte("services:\n  x:\n    image: other\n    healthcheck:\n      test: "+test+"\n"))
	}
}

func helmFile(items string) func() ([]invocation, error) {
	values := map[string]any{"health": map[string]any{"beat": "500ms", "bad": "500"}, "nats": map[string]any{"urls": []any{"nats://a:4222", "nats://b:4222"}}}
	return func() ([]invocation, error) {
		tmpl := "      containers:\n        - name: hub\n          args:\n            - \"hub\"\n            " + items + "\n          env: []\n"
		return helmInvocations("inline", []byte(tmpl), values), nil
	}
}

func unitFile(exec string) func() ([]invocation, error) {
	return func() ([]invocation, error) {
		return systemdInvocations("inline.service", []byte("[Service]\nType=exec\n"+exec+"\nRestart=on-failure\n")), nil
	}
}
