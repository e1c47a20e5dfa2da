package runtime

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/runtime/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func testState() *specs.State {
	return &specs.State{Version: specs.Version, ID: "c1", Status: specs.StateCreated, Pid: 42, Bundle: "/b"}
}

func TestRunHooksStateArgsEnv(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	hook := writeScript(t, `cat > "$OUT.state"; echo "$1 $2 $FOO" > "$OUT"`)
	err := initproc.RunHooks([]specs.Hook{{
		Path: hook,
		Args: []string{"argv-zero", "a1", "a2"},
		Env:  []string{"OUT=" + out, "FOO=bar"},
	}}, testState())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if strings.TrimSpace(string(got)) != "a1 a2 bar" {
		t.Fatalf("hook saw %q", got)
	}
	var st specs.State
	data, _ := os.ReadFile(out + ".state")
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("state on stdin is not JSON: %v: %q", err, data)
	}
	if st.ID != "c1" || st.Pid != 42 || st.Status != specs.StateCreated || st.Bundle != "/b" {
		t.Fatalf("state on stdin = %+v", st)
	}
}

func TestRunHooksArgv0(t *testing.T) {
	// busybox dispatches on argv[0]: run as "true" it succeeds, as
	// "false" it fails, which shows args[0] reaches the hook as argv0.
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skip("busybox not found: install Debian package busybox-static")
	}
	if err := initproc.RunHooks([]specs.Hook{{Path: bb, Args: []string{"true"}}}, testState()); err != nil {
		t.Fatalf("busybox as true: %v", err)
	}
	if err := initproc.RunHooks([]specs.Hook{{Path: bb, Args: []string{"false"}}}, testState()); err == nil {
		t.Fatal("busybox run as argv0 \"false\" succeeded: argv0 not passed")
	}
}

func TestRunHooksInOrderStopsAtFailure(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	env := []string{"LOG=" + log}
	a := writeScript(t, `echo a >> "$LOG"`)
	bad := writeScript(t, `echo b >> "$LOG"; echo "something broke" >&2; exit 3`)
	c := writeScript(t, `echo c >> "$LOG"`)
	err := initproc.RunHooks([]specs.Hook{{Path: a, Env: env}, {Path: bad, Env: env}, {Path: c, Env: env}}, testState())
	if err == nil {
		t.Fatal("failing hook did not fail runHooks")
	}
	if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "exit status 3") ||
		!strings.Contains(err.Error(), "something broke") {
		t.Fatalf("error %q does not name the hook, its status and output", err)
	}
	got, _ := os.ReadFile(log)
	if string(got) != "a\nb\n" {
		t.Fatalf("hooks ran as %q, want a then b and not c", got)
	}
}

func TestRunHooksTimeoutKills(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The hook starts a grandchild too: the timeout must kill both.
	hook := writeScript(t, `sleep 30 & echo $! > "$PIDF"; wait`)
	one := 1
	start := time.Now()
	err := initproc.RunHooks([]specs.Hook{{Path: hook, Env: []string{"PIDF=" + pidFile}, Timeout: &one}}, testState())
	if err == nil || !strings.Contains(err.Error(), hook) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %v, want a timeout naming %s", err, hook)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("runHooks returned after %v: the hook was not killed", d)
	}
	data, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(data))
	if pid == "" {
		t.Fatal("hook did not record its child")
	}
	// The killed grandchild may linger as a zombie of init for a moment.
	for i := 0; i < 50; i++ {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("hook's child %s survived the timeout", pid)
}

func TestRunHooksBadHooks(t *testing.T) {
	zero := 0
	ok := writeScript(t, "exit 0")
	for _, h := range []specs.Hook{
		{Path: "relative/hook"},
		{Path: "/nonexistent/hook"},
		{Path: ok, Timeout: &zero},
	} {
		err := initproc.RunHooks([]specs.Hook{h}, testState())
		if err == nil || !strings.Contains(err.Error(), h.Path) {
			t.Errorf("hook %+v: err = %v, want an error naming it", h, err)
		}
	}
	if err := initproc.RunHooks(nil, testState()); err != nil {
		t.Fatal(err)
	}
}

// cliEnv builds berth and makes busybox bundles for hook tests run
// through the CLI, with a log directory visible at the same path inside.
type cliEnv struct {
	t                   *testing.T
	tmp, bin, root, log string
}

func newCLIEnv(t *testing.T) *cliEnv {
	fixture.RequireRoot(t)
	e := &cliEnv{t: t, tmp: t.TempDir()}
	e.bin = filepath.Join(e.tmp, "berth")
	build := exec.Command("go", "build", "-o", e.bin, "../cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building berth: %v\n%s", err, out)
	}
	e.root = filepath.Join(e.tmp, "state")
	os.MkdirAll(filepath.Join(e.tmp, "log"), 0o777)
	e.log = filepath.Join(e.tmp, "log", "hooks")
	return e
}

func (e *cliEnv) berth(args ...string) *exec.Cmd {
	return exec.Command(e.bin, append([]string{"runtime", "--root", e.root}, args...)...)
}

func (e *cliEnv) bundle(id string, hooks *specs.Hooks) string {
	t := e.t
	dir := filepath.Join(e.tmp, id)
	if err := fixture.Busybox(filepath.Join(dir, "rootfs")); err != nil {
		t.Fatal(err)
	}
	spec := exec.Command(e.bin, "runtime", "spec")
	spec.Dir = dir
	if out, err := spec.CombinedOutput(); err != nil {
		t.Fatalf("berth runtime spec: %v: %s", err, out)
	}
	var s specs.Spec
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = false
	s.Process.Args = []string{"/bin/true"}
	// Hooks run in the container's mount namespace write the same file.
	logDir := filepath.Dir(e.log)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: logDir, Type: "bind", Source: logDir, Options: []string{"rbind"}})
	s.Hooks = hooks
	data, _ = json.Marshal(&s)
	os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
	return dir
}

// hook logs its phase and the state it got on stdin; /bin/sh exists on
// the host and in the busybox rootfs alike.
func (e *cliEnv) hook(phase string) specs.Hook {
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `read -r s; echo "` + phase + ` $s" >> ` + e.log}}
}

// TestHooksFailingCreateRuntime: a failing createRuntime hook fails
// create, names the hook, stops the container before startContainer and
// leaves no container behind.
func TestHooksFailingCreateRuntime(t *testing.T) {
	e := newCLIEnv(t)
	dir := e.bundle("badhook", &specs.Hooks{
		CreateRuntime:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-said-no >&2; exit 9"}}},
		StartContainer: []specs.Hook{e.hook("startContainer")},
	})
	out, err := e.berth("create", "--bundle", dir, "badhook").CombinedOutput()
	if err == nil {
		e.berth("delete", "--force", "badhook").Run()
		t.Fatal("create succeeded although its createRuntime hook failed")
	}
	if !strings.Contains(string(out), "/bin/sh") {
		t.Errorf("error does not name the hook: %s", out)
	}
	if _, err := os.Stat(e.log); err == nil {
		t.Error("the container went on to startContainer after a failed createRuntime hook")
	}
	if st, err := e.berth("state", "badhook").CombinedOutput(); err == nil {
		t.Errorf("failed create left a container behind: %s", st)
	}
}

// TestHooksThroughCLI runs a container with a hook of every kind through
// the built berth binary and checks that each ran once, in the order the
// runtime spec gives, with the container's state on stdin.
func TestHooksThroughCLI(t *testing.T) {
	e := newCLIEnv(t)
	dir := e.bundle("hooked", &specs.Hooks{
		CreateRuntime:   []specs.Hook{e.hook("createRuntime")},
		CreateContainer: []specs.Hook{e.hook("createContainer")},
		StartContainer:  []specs.Hook{e.hook("startContainer")},
		Poststart:       []specs.Hook{e.hook("poststart")},
		Poststop:        []specs.Hook{e.hook("poststop")},
	})
	if out, err := e.berth("run", "--bundle", dir, "hooked").CombinedOutput(); err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		phase, js, _ := strings.Cut(line, " ")
		var st specs.State
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("%s hook got no JSON state on stdin: %q", phase, js)
		}
		if st.ID != "hooked" || st.Bundle != dir {
			t.Errorf("%s hook state: id %q bundle %q", phase, st.ID, st.Bundle)
		}
		if phase != "poststop" && st.Pid <= 0 {
			t.Errorf("%s hook state has no pid: %s", phase, js)
		}
		phases = append(phases, phase)
	}
	want := "createRuntime createContainer startContainer poststart poststop"
	if got := strings.Join(phases, " "); got != want {
		t.Fatalf("hooks ran as %q, want %q", got, want)
	}
}

// TestHooksGetTheRuntimesEnvironment: a hook that names no env gets the
// environment berth was started with, from the runtime and from the init
// alike, and nothing berth adds for itself (GOGC=off would turn a Go
// hook's garbage collector off).
func TestHooksGetTheRuntimesEnvironment(t *testing.T) {
	e := newCLIEnv(t)
	hook := func(phase string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `echo "` + phase + ` gogc=$(env | grep -c '^GOGC=') marker=$MARKER" >> ` + e.log}}
	}
	dir := e.bundle("hookenv", &specs.Hooks{
		CreateRuntime:   []specs.Hook{hook("createRuntime")},
		CreateContainer: []specs.Hook{hook("createContainer")},
		StartContainer:  []specs.Hook{hook("startContainer")},
	})
	run := e.berth("run", "--bundle", dir, "hookenv")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") {
			run.Env = append(run.Env, kv)
		}
	}
	run.Env = append(run.Env, "MARKER=from-the-caller")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"createRuntime", "createContainer", "startContainer"} {
		if want := phase + " gogc=0 marker=from-the-caller"; !strings.Contains(string(data), want) {
			t.Errorf("want %q in %q", want, data)
		}
	}
}
