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

// attach to a --rm container still gets its exit status (its record is gone
// by then), and a client that stops reading does not stop the container.
func TestAttachRemovedAndSlowClient(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--rm", "--network", "none"}, sec(t)...), bb, "sh", "-c", "sleep 0.5; echo bye; exit 3")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	out, errs, code := berth(t, "", "attach", "--no-stdin", id)
	if code != 3 || out != "bye\n" {
		t.Errorf("attach to a --rm container: exit %d %q %q", code, out, errs)
	}
	// A client that never reads: the container writes on, its log grows.
	a = append(append([]string{"run", "-d", "--network", "none"}, sec(t)...), bb, "sh", "-c", "sleep 0.3; i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; sleep 60")
	noisy := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", noisy) })
	cmd := exec.Command(berthBin, "--root", testRoot, "attach", "--no-stdin", noisy)
	pr, pw, _ := os.Pipe()
	cmd.Stdout = pw // nobody reads pr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pr.Close() })
	for i := 0; i < 250; i++ {
		if logs, _, _ := berth(t, "", "logs", "--tail", "1", noisy); strings.HasPrefix(logs, "line-2999-") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("a client that stopped reading held up the container's output")
}
