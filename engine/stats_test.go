package engine

import (
	"strings"
	"testing"
	"time"
)

// stats reads a container's CPU rate, memory against its limit and pids
// from its cgroup, as docker stats shows them.
func TestStats(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--memory", "64m", "--network", "none"}, sec(t)...), bb, "sh", "-c", "while :; do :; done")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	u1, err := e.Usage(id)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	u2, err := e.Usage(id)
	if err != nil {
		t.Fatal(err)
	}
	if cpu := CPUPercent(u1, u2); cpu < 30 || cpu > 210 {
		t.Errorf("a busy loop used %.1f%% CPU (two cores here)", cpu)
	}
	if !u2.Running || u2.MemLimit != 64<<20 || u2.MemUsage == 0 || u2.MemUsage > u2.MemLimit || u2.Pids != 1 {
		t.Errorf("usage: %+v", u2)
	}
	out := berthOK(t, "stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}} {{.PIDs}}", id)
	if f := strings.Fields(out); len(f) != 5 || f[0] != id[:12] || f[3] != "64.00MiB" || f[4] != "1" {
		t.Errorf("stats --no-stream: %q", out)
	}
	berthOK(t, "stop", "-t", "0", id)
	if u, err := e.Usage(id); err != nil || u.Running || u.CPUNanos != 0 {
		t.Errorf("a stopped container: %+v %v", u, err)
	}
	if _, stderr, code := berth(t, "", "stats", "--no-stream", "nosuch"); code != 125 || !strings.Contains(stderr, "no such container") {
		t.Errorf("stats of a missing container: %d %q", code, stderr)
	}
}
