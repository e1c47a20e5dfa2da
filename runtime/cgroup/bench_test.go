package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Benchmarks of cgroup setup for a fresh container with memory and pids
// limits (go test -run - -bench . ./runtime/cgroup/): New, the fork of a
// process, and its join. They compare berth's way (the forking thread
// joins, the process is born in the cgroup) with moving the process in
// afterwards: writes in sequence, concurrent writes, and the
// opencontainers/cgroups manager's own Apply.

var benchGap = 100 * time.Millisecond

// benchWork stands for the rest of the init's setup between New and Apply
// (BERTH_BENCH_WORK=5ms to try).
var benchWork, _ = time.ParseDuration(os.Getenv("BERTH_BENCH_WORK"))

func benchSetup(b *testing.B, join func(c *Cgroup, pid int) error) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}, Pids: &specs.LinuxPids{Limit: i64(32)}}
	var setup, joined []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		// Let any RCU sync state from the last iteration (or a neighbour)
		// expire, so each setup pays what a lone container start pays.
		time.Sleep(benchGap)
		b.StartTimer()
		t0 := time.Now()
		c, err := New(fmt.Sprintf("%s/bench-%d-%d", testParent, os.Getpid(), i), r)
		if err != nil {
			b.Fatal(err)
		}
		// The container's init is cloned between New and Apply.
		cmd := exec.Command("/bin/sleep", "10")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(benchWork)
		t1 := time.Now()
		if err := join(c, cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		b.StopTimer()
		setup = append(setup, t1.Sub(t0))
		joined = append(joined, t2.Sub(t1))
		reap(cmd, c)
		b.StartTimer()
	}
	report(b, setup, joined, "ms-new+fork(p50)")
}

// reap kills the benchmark's child and removes its cgroup (which the
// kernel may still hold for a moment after the child's death).
func reap(cmd *exec.Cmd, c *Cgroup) {
	cmd.Process.Kill()
	cmd.Wait()
	for range 100 {
		if err := c.Destroy(); err == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// report gives the medians (the machine is shared, and a neighbour's
// burst skews means) and removes the benchmark's parent cgroups.
func report(b *testing.B, setup, joined []time.Duration, setupName string) {
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(setup), setupName)
	b.ReportMetric(median(joined), "ms-join(p50)")
	for _, d := range (&Cgroup{mgr: mustMgr(b)}).joinDirs() {
		_ = os.Remove(filepath.Dir(d))
	}
}

func mustMgr(b *testing.B) cgroups.Manager {
	c, err := open(testParent + "/x")
	if err != nil {
		b.Fatal(err)
	}
	return c.mgr
}

func BenchmarkSetupProcsJoin(b *testing.B) {
	benchSetup(b, func(c *Cgroup, pid int) error { return c.Apply(pid) })
}

func BenchmarkSetupConcurrentProcsJoin(b *testing.B) {
	benchSetup(b, func(c *Cgroup, pid int) error {
		dirs := c.joinDirs()
		errs := make(chan error, len(dirs))
		for _, d := range dirs {
			go func() { errs <- c.join(d, pid) }()
		}
		var err error
		for range dirs {
			err = errors.Join(err, <-errs)
		}
		return err
	})
}

func BenchmarkSetupManagerApply(b *testing.B) {
	benchSetup(b, func(c *Cgroup, pid int) error { return c.mgr.Apply(pid) })
}

// BenchmarkSetupThreadJoin is berth's way: New, then a locked thread joins
// (JoinThread) and forks the process there; "join" is JoinThread.
func BenchmarkSetupThreadJoin(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}, Pids: &specs.LinuxPids{Limit: i64(32)}}
	var setup, joined []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		time.Sleep(benchGap)
		b.StartTimer()
		t0 := time.Now()
		c, err := New(fmt.Sprintf("%s/bench-%d-%d", testParent, os.Getpid(), i), r)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		cmd := exec.Command("/bin/sleep", "10")
		var t2 time.Time
		errc := make(chan error, 1)
		onThread(func() {
			if err := c.JoinThread(); err != nil {
				errc <- err
				return
			}
			t2 = time.Now()
			errc <- cmd.Start()
		})
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		setup = append(setup, t1.Sub(t0))
		joined = append(joined, t2.Sub(t1))
		reap(cmd, c)
		b.StartTimer()
	}
	report(b, setup, joined, "ms-new(p50)")
}

// onThread runs f on a locked thread other than the main one (which Go
// parks instead of ending, leaving it in the cgroup), as the runtime does.
func onThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			onThread(f)
			runtime.UnlockOSThread()
		} else {
			f()
		}
		close(done)
	}()
	<-done
}
