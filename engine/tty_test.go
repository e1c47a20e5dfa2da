package engine

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestTTYResizeInterruptEOF drives `berth run -it` from a real terminal:
// the container sees the terminal's size and its changes, ^C interrupts
// the foreground command (not berth), ^D ends the shell and berth with it.
func TestTTYResizeInterruptEOF(t *testing.T) {
	bb := busyboxImage(t)
	args := append(append([]string{"--root", testRoot, "run", "--rm", "-it", "--network", "none"}, sec(t)...), bb, "sh")
	cmd := exec.Command(berthBin, args...)
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	var mu sync.Mutex
	var out bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := term.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	expect := func(what string, d time.Duration) bool {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := strings.Contains(out.String(), what)
			mu.Unlock()
			if ok {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	term.Write([]byte("stty size; echo mark-$((1+1))\n"))
	if !expect("mark-2", 20*time.Second) || !expect("30 100", time.Second) {
		t.Fatalf("initial size not seen: %q", out.String())
	}
	pty.Setsize(term, &pty.Winsize{Rows: 40, Cols: 120}) // the kernel sends berth SIGWINCH
	time.Sleep(300 * time.Millisecond)
	term.Write([]byte("stty size; echo mark-$((2+1))\n"))
	if !expect("mark-3", 10*time.Second) || !expect("40 120", time.Second) {
		t.Errorf("resize not seen: %q", out.String())
	}
	term.Write([]byte("sleep 60\n"))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	term.Write([]byte{3}) // ^C
	term.Write([]byte("echo mark-$((3+1))\n"))
	if !expect("mark-4", 15*time.Second) || time.Since(start) > 15*time.Second {
		t.Errorf("^C did not interrupt sleep: %q", out.String())
	}
	term.Write([]byte{4}) // ^D at the prompt: the shell exits
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("berth run -it after ^D: %v", err)
		}
	case <-time.After(20 * time.Second):
		ps, _, _ := berth(t, "", "ps", "-a")
		cmd.Process.Kill()
		mu.Lock()
		t.Errorf("^D did not end berth run -it: %q\nps -a:\n%s", out.String(), ps)
		mu.Unlock()
	}
}

func TestExecTTY(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	cmd := exec.Command(berthBin, "--root", testRoot, "exec", "-it", id, "sh")
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 77})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.Write([]byte("tty; stty size; exit 3\n"))
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := term.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 3 || !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "33 77") {
			t.Errorf("exec -it: %v %q", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Errorf("exec -it did not end: %q", out.String())
	}
}
