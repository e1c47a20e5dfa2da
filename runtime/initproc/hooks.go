package initproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hookOutputMax bounds how much of a hook's output is kept for its error.
const hookOutputMax = 4096

// runHooks runs hooks in order, each with the container state as JSON on
// its stdin, and stops at the first one that fails, times out or cannot
// start. The error names the hook's path so a user knows which one broke.
func RunHooks(hooks []specs.Hook, state *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	data, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("hook: encoding state: %w", err)
	}
	for i := range hooks {
		if err := runHook(&hooks[i], data); err != nil {
			return err
		}
	}
	return nil
}

func runHook(h *specs.Hook, state []byte) error {
	if !filepath.IsAbs(h.Path) {
		return fmt.Errorf("hook %q: path must be absolute", h.Path)
	}
	ctx := context.Background()
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("hook %s: timeout must be positive, got %d", h.Path, *h.Timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	out := &headWriter{max: hookOutputMax}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args // args[0] is the hook's argv0, as in execv
	}
	cmd.Env = h.Env // as runc: a hook without env inherits the runtime's
	cmd.Stdin = bytes.NewReader(state)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that a timeout kills the hook together
	// with everything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child of the hook may keep the output pipe open after the hook
	// exits; do not wait for it for long.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("hook %s: killed after timeout of %ds%s", h.Path, *h.Timeout, out.quote())
	}
	return fmt.Errorf("hook %s: %v%s", h.Path, err, out.quote())
}

// headWriter keeps the first max bytes written to it and drops the rest,
// so a chatty hook cannot grow the runtime's memory.
type headWriter struct {
	buf bytes.Buffer
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *headWriter) quote() string {
	s := strings.TrimSpace(w.buf.String())
	if s == "" {
		return ""
	}
	return ": " + strings.ReplaceAll(s, "\n", "; ")
}
