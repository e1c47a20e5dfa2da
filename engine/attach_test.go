package engine

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// attach gets a detached container's output from then on and gives it its
// input (-i), and returns the container's exit status when it exits.
func TestAttach(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "-i", "--network", "none"}, sec(t)...), bb, "sh", "-c", "read line; echo got:$line; echo err >&2; exit 5")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	cmd := exec.Command(berthBin, "--root", testRoot, "attach", id)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	pr, pw, _ := os.Pipe()
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	time.Sleep(200 * time.Millisecond) // attached before the line goes
	pw.WriteString("hello\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("attach did not end with the container")
	}
	pw.Close()
	if code := cmd.ProcessState.ExitCode(); code != 5 || out.String() != "got:hello\n" || errb.String() != "err\n" {
		t.Errorf("attach: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if logs := berthOK(t, "logs", id); !strings.Contains(logs, "got:hello") {
		t.Errorf("the log lost what attach saw: %q", logs)
	}
	// One that has exited cannot be attached to.
	if _, stderr, code := berth(t, "", "attach", id); code != 125 || !strings.Contains(stderr, "not running") {
		t.Errorf("attach to an exited container: %d %q", code, stderr)
	}
}
