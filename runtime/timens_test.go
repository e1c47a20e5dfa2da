package runtime

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func requireTimeNS(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		t.Skip("no time namespaces in this kernel")
	}
	fixture.RequireBinary(t, "nsenter", "util-linux")
}

// withTime gives a spec a new time namespace with offsets (secs) for the
// monotonic and boottime clocks.
func withTime(mono, boot int64) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: mono}, "boottime": {Secs: boot, Nanosecs: 5}}
		s.Linux.Resources = nil
	}
}

// both applies every edit in turn.
func both(fs ...func(*specs.Spec)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		for _, f := range fs {
			f(s)
		}
	}
}

// hostUptime is the host's boottime clock, in whole seconds.
func hostUptime(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return int64(f)
}

// containerUptime reads the "up=" line the test scripts print.
func containerUptime(t *testing.T, out string) int64 {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "up="); ok {
			f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			if err != nil {
				t.Fatalf("uptime %q: %v", v, err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no uptime in %q", out)
	return 0
}

// timeScript prints the offsets with single spaces (the kernel pads them).
const timeScript = "while read c s n; do echo $c $s $n; done </proc/self/timens_offsets; echo up=$(cat /proc/uptime); readlink /proc/self/ns/time"

// linux.timeOffsets shift the container's monotonic and boottime clocks:
// its uptime is the host's plus the boottime offset. With a new user
// namespace as well, and with a user namespace joined by path (then the
// relay makes the time namespace).
func TestTimeOffsets(t *testing.T) {
	e := newEnv(t)
	requireTimeNS(t)
	holder := e.start("tuser", []string{"sleep", "60"}, both(withUserNS, func(s *specs.Spec) { s.Linux.Resources = nil }))
	st, _ := e.r.State(holder)
	userPath := "/proc/" + strconv.Itoa(st.Pid) + "/ns/user"
	cases := map[string]func(*specs.Spec){
		"time namespace":            withTime(3600, 86400),
		"with a new user namespace": both(withTime(3600, 86400), withUserNS),
		"with a joined user namespace": both(withTime(3600, 86400), func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: userPath})
		}),
	}
	host := nsLinks(t, "self")["time"]
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			before := hostUptime(t)
			out, code := e.mustRun("toff", sh(timeScript), edit)
			after := hostUptime(t)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			for _, w := range []string{"monotonic 3600 0", "boottime 86400 5"} {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in %q", w, out)
				}
			}
			if up := containerUptime(t, out); up < before+86400 || up > after+86400+1 {
				t.Errorf("container uptime %d, want the host's (%d..%d) + 86400", up, before, after)
			}
			if strings.Contains(out, host) {
				t.Errorf("the container shares the host's time namespace: %s", out)
			}
		})
	}
}

// Bad offsets are refused at create, with nothing left behind.
func TestTimeOffsetsRefused(t *testing.T) {
	e := newEnv(t)
	requireTimeNS(t)
	cases := map[string]struct {
		edit func(*specs.Spec)
		want string
	}{
		"no time namespace": {func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}}
		}, "need a new time namespace"},
		"unknown clock": {both(withTime(1, 1), func(s *specs.Spec) {
			s.Linux.TimeOffsets["realtime"] = specs.LinuxTimeOffset{Secs: 1}
		}), `unknown clock "realtime"`},
		"nanoseconds past a second": {both(withTime(1, 1), func(s *specs.Spec) {
			s.Linux.TimeOffsets["monotonic"] = specs.LinuxTimeOffset{Nanosecs: 1e9}
		}), "not below one second"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			id := e.id("tbad")
			_, _, err := e.run(id, e.bundle("", []string{"true"}, c.edit))
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, c.want)
			}
			if _, err := e.r.State(id); err == nil {
				t.Errorf("state of %s left behind", id)
			}
		})
	}
}

// exec joins the container's time namespace (through nsenter, as a Go
// process cannot setns into one), with or without a user namespace.
func TestExecJoinsTimeNamespace(t *testing.T) {
	e := newEnv(t)
	requireTimeNS(t)
	for name, edit := range map[string]func(*specs.Spec){
		"time namespace":            withTime(7, 7200),
		"with a new user namespace": both(withTime(7, 7200), withUserNS),
	} {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(name, "user") {
				requireStaticTestBinary(t) // nsenter enters the mount namespace too
			}
			id := e.start("texec"+strconv.Itoa(len(name)), []string{"sleep", "60"}, edit)
			st, _ := e.r.State(id)
			want := nsLinks(t, strconv.Itoa(st.Pid))
			out, code, err := e.execOut(id, &specs.Process{Args: sh(timeScript + "; echo pid=$$"), Cwd: "/", Env: []string{"PATH=/bin"}})
			if err != nil || code != 0 {
				t.Fatalf("exec: %v, exit %d: %s", err, code, out)
			}
			for _, w := range []string{want["time"], "monotonic 7 0", "boottime 7200 5"} {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in %q", w, out)
				}
			}
			if strings.Contains(out, "pid=1\n") {
				t.Errorf("exec'd process is pid 1: %s", out)
			}
		})
	}
}

// A time namespace joined by path under a new user namespace: the relay
// enters the time namespace and maps the new user namespace's ids.
func TestJoinTimeNamespaceWithNewUserNamespace(t *testing.T) {
	e := newEnv(t)
	requireTimeNS(t)
	holder := e.start("tholder", []string{"sleep", "60"}, withTime(11, 11))
	st, _ := e.r.State(holder)
	want := nsLinks(t, strconv.Itoa(st.Pid))["time"]
	out, code := e.mustRun("tjoin", sh(timeScript+"; cat /proc/self/uid_map; id -u"), both(withUserNS, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace, Path: "/proc/" + strconv.Itoa(st.Pid) + "/ns/time"})
		s.Linux.Resources = nil
	}))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, w := range []string{want, "monotonic 11 0", "100000", "\n0\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("want %q in %q", w, out)
		}
	}
}
