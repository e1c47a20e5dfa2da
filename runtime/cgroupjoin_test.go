package runtime

import (
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The container's process is in its cgroup in every hierarchy, v1 and the
// hybrid host's v2 one: whether the init joined the v1 hierarchies itself
// (the cgroup made while it started) or was born there (under a new user
// namespace, whose root may not write to cgroupfs), and an exec'd process
// too.
func TestCgroupMembership(t *testing.T) {
	e := newEnv(t)
	requireStaticTestBinary(t)
	mounted := mountedHierarchies(t)
	for name, edit := range map[string]func(*specs.Spec){
		"own user namespace":  withUserNS,
		"host user namespace": func(*specs.Spec) {},
	} {
		t.Run(name, func(t *testing.T) {
			path := "/berth-test/member-" + strconv.Itoa(len(name)) + "-" + strconv.Itoa(os.Getpid())
			mem := int64(256 << 20)
			id := e.start("member"+strconv.Itoa(len(name)), []string{"sleep", "60"}, func(s *specs.Spec) {
				edit(s)
				var ns []specs.LinuxNamespace
				for _, n := range s.Linux.Namespaces {
					if n.Type != specs.CgroupNamespace { // so that /proc/self/cgroup shows whole paths
						ns = append(ns, n)
					}
				}
				s.Linux.Namespaces = ns
				s.Linux.CgroupsPath = path
				s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem}}
			})
			st, _ := e.r.State(id)
			check := func(who, cg string) {
				t.Helper()
				n := 0
				for _, l := range strings.Split(strings.TrimSpace(cg), "\n") {
					f := strings.SplitN(l, ":", 3)
					if len(f) != 3 || !mounted[f[1]] {
						continue // a controller bound to no hierarchy (hugetlb here)
					}
					n++
					if f[2] != path {
						t.Errorf("%s: not in the container's cgroup: %q", who, l)
					}
				}
				if n != len(mounted) {
					t.Errorf("%s: in %d of the %d hierarchies: %q", who, n, len(mounted), cg)
				}
			}
			initCg, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cgroup")
			if err != nil {
				t.Fatal(err)
			}
			check("init", string(initCg))
			out, code, err := e.execOut(id, &specs.Process{Args: []string{"cat", "/proc/self/cgroup"}, Cwd: "/", Env: []string{"PATH=/bin"}})
			if err != nil || code != 0 {
				t.Fatalf("exec: %v, exit %d: %s", err, code, out)
			}
			check("exec", out)
		})
	}
}

// mountedHierarchies are the cgroup hierarchies mounted here, named as in
// /proc/<pid>/cgroup ("memory", "name=systemd", "" for v2).
func mountedHierarchies(t *testing.T) map[string]bool {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range strings.Split(string(mi), "\n") {
		_, fs, ok := strings.Cut(l, " - ")
		f := strings.Fields(fs)
		if !ok || len(f) < 3 {
			continue
		}
		switch f[0] {
		case "cgroup2":
			out[""] = true
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(f[2], ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent") && o != "clone_children" && o != "noprefix" && o != "xattr" {
					ctrls = append(ctrls, o)
				}
			}
			out[strings.Join(ctrls, ",")] = true
		}
	}
	return out
}
