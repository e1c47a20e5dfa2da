package engine

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// update changes a running container's limits in its cgroup and record; a
// bad value changes neither.
func TestUpdate(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--memory", "64m", "--network", "none"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	berthOK(t, "update", "--memory", "128m", "--pids-limit", "10", id)
	e := testEngine(t)
	u, err := e.Usage(id)
	if err != nil || u.MemLimit != 128<<20 {
		t.Errorf("memory limit after update: %+v %v", u, err)
	}
	// The limit holds: 11 more processes cannot start.
	out, _, _ := berth(t, "", "exec", id, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11; do sleep 1 & done 2>&1; wait")
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Errorf("pids limit 10 not enforced: %q", out)
	}
	if got := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", id)); got != "134217728 10" {
		t.Errorf("record after update: %q", got)
	}
	if _, stderr, code := berth(t, "", "update", "--memory", "1k", id); code != 125 || !strings.Contains(stderr, "minimum memory limit") {
		t.Errorf("update --memory 1k: %d %q", code, stderr)
	}
	if got := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.HostConfig.Memory}}", id)); got != "134217728" {
		t.Errorf("a refused update changed the record: %q", got)
	}
}

// version and info, as docker's: the kernel info shows is the host's, the
// one every container shares.
func TestVersionAndInfo(t *testing.T) {
	if v := berthOK(t, "version"); !strings.Contains(v, "Version:") || !strings.Contains(v, "runtime-spec") {
		t.Errorf("version: %q", v)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	info := berthOK(t, "info")
	for _, want := range []string{"Containers: ", "Images: ", "Root: " + testRoot, "Cgroup Version: ", "Kernel Version: " + unix.ByteSliceToString(uts.Release[:])} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
}

// inspect's Config.Env is the image's with -e on top, once each, as docker's.
func TestInspectConfigEnv(t *testing.T) {
	bb := busyboxImage(t)
	id := strings.TrimSpace(berthOK(t, "create", "-e", "A=1", "-e", "PATH=/x", bb, "true"))
	t.Cleanup(func() { berth(t, "", "rm", id) })
	if got := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{json .Config.Env}}", id)); got != `["PATH=/x","A=1"]` {
		t.Errorf("Config.Env %s", got)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "Less than a second", time.Second: "1 second", 30 * time.Second: "30 seconds", 90 * time.Second: "About a minute",
		10 * time.Minute: "10 minutes", 70 * time.Minute: "About an hour", 5 * time.Hour: "5 hours", 72 * time.Hour: "3 days",
		21 * 24 * time.Hour: "3 weeks", 90 * 24 * time.Hour: "3 months", 3 * 365 * 24 * time.Hour: "3 years",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
