package runtime

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLI drives the runc-compatible command line of the built berth, as
// `berth runtime` and through a berth-runtime link: the flags containerd
// and runtime-tools use, the JSON they parse, and --log in runc's shape.
func TestCLI(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	// make test's berth, as it ships (its init embedded), else a plain build.
	bin := os.Getenv("BERTH_BIN")
	shipped := bin != ""
	if !shipped {
		bin = filepath.Join(dir, "berth")
		build := exec.Command("go", "build", "-o", bin, "../cmd/berth")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building berth: %v\n%s", err, out)
		}
	}
	link := filepath.Join(dir, "berth-runtime")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "state")
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(link, append([]string{"--root", root}, args...)...).CombinedOutput()
		return string(out), err
	}

	// spec writes runc's default config; refuses to overwrite it.
	b := filepath.Join(dir, "bundle")
	os.MkdirAll(b, 0o755)
	if out, err := exec.Command(bin, "runtime", "spec", "--bundle", b).CombinedOutput(); err != nil {
		t.Fatalf("spec: %v %s", err, out)
	}
	if out, err := exec.Command(bin, "runtime", "spec", "--bundle", b).CombinedOutput(); err == nil {
		t.Fatalf("second spec overwrote config.json: %s", out)
	}
	if _, _, _, err := loadBundle(b); err == nil || !strings.Contains(err.Error(), "rootfs") {
		t.Fatalf("default spec without rootfs: %v", err)
	}
	b = e.bundle("", []string{"sleep", "60"}, nil)

	pidFile := filepath.Join(dir, "pid")
	// The container keeps create's stdio: give it a file, not a pipe.
	logf, err := os.Create(filepath.Join(dir, "create.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	create := exec.Command(link, "--root", root, "create", "--bundle", b, "--pid-file", pidFile, "c1")
	create.Stdout, create.Stderr = logf, logf
	if err := create.Run(); err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("create: %v %s", err, log)
	}
	t.Cleanup(func() { cli("delete", "--force", "c1") })
	pidData, _ := os.ReadFile(pidFile)
	out, err := cli("state", "c1")
	var st struct {
		ID, Status, Bundle string
		Pid                int
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Status != "created" || strconv.Itoa(st.Pid) != string(pidData) || st.Bundle != b {
		t.Fatalf("state after create: %v %s (pid file %q)", err, out, pidData)
	}
	if shipped {
		// The created container's init runs from the small init berth
		// embeds (cmd/berth-init), not from berth itself.
		exe, err := os.Stat("/proc/" + strconv.Itoa(st.Pid) + "/exe")
		self, serr := os.Stat(bin)
		if err != nil || serr != nil || os.SameFile(exe, self) || exe.Size() > self.Size()/3 {
			t.Errorf("the init does not run from the embedded init: %v %v, %d bytes against berth's %d", err, serr, exe.Size(), self.Size())
		}
	}
	if out, err := cli("start", "c1"); err != nil {
		t.Fatalf("start: %v %s", err, out)
	}
	out, err = cli("list", "--format", "json")
	var list []struct{ ID, Status string }
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Status != "running" {
		t.Fatalf("list: %v %s", err, out)
	}
	if out, err := cli("ps", "--format", "json", "c1"); err != nil || strings.TrimSpace(out) != "["+string(pidData)+"]" {
		t.Fatalf("ps: %v %q want [%s]", err, out, pidData)
	}
	if out, err := cli("exec", "c1", "sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("exec exit status: %v %s", err, out)
	}
	if out, err := cli("kill", "c1", "NOSUCHSIG"); err == nil {
		t.Fatalf("kill with a bad signal: %s", out)
	}
	if out, err := cli("kill", "c1", "KILL"); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ = cli("state", "c1")
		if strings.Contains(out, `"stopped"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out, `"stopped"`) {
		t.Fatalf("not stopped after kill: %s", out)
	}
	if out, err := cli("delete", "c1"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}

	// run passes the exit status through (via `berth runtime` too).
	rb := e.bundle("", sh("exit 42"), nil)
	err = exec.Command(bin, "runtime", "--root", root, "run", "--bundle", rb, "r1").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 {
		t.Fatalf("run exit status: %v", err)
	}

	// Errors go to --log as runc's JSON lines, which containerd reads.
	logFile := filepath.Join(dir, "log.json")
	if _, err := cli("--log", logFile, "--log-format", "json", "create", "--bundle", filepath.Join(dir, "nope"), "c2"); err == nil {
		t.Fatal("create of a missing bundle succeeded")
	}
	data, _ := os.ReadFile(logFile)
	var entry map[string]string
	if err := json.Unmarshal(data, &entry); err != nil || entry["level"] != "error" || !strings.Contains(entry["msg"], "config.json") || entry["time"] == "" {
		t.Fatalf("log line %q: %v", data, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("state left behind: %v", ents)
	}
}
