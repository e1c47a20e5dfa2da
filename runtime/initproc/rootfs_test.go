package initproc

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithMountLabel(t *testing.T) {
	const label = "system_u:object_r:container_file_t:s0:c1,c2"
	for _, c := range []struct {
		name    string
		data    []string
		fstype  string
		label   string
		selinux bool
		want    []string
	}{
		{"tmpfs gets the label", []string{"mode=755"}, "tmpfs", label, true, []string{"mode=755", "context=" + label}},
		{"devpts too", nil, "devpts", label, true, []string{"context=" + label}},
		{"mqueue too", nil, "mqueue", label, true, []string{"context=" + label}},
		{"proc keeps the kernel's", nil, "proc", label, true, nil},
		{"sysfs keeps the kernel's", []string{"x"}, "sysfs", label, true, []string{"x"}},
		{"no SELinux: ignored, as under runc", []string{"mode=755"}, "tmpfs", label, false, []string{"mode=755"}},
		{"no label", []string{"mode=755"}, "tmpfs", "", true, []string{"mode=755"}},
		{"the spec's own context wins", []string{"context=a:b:c:s0"}, "tmpfs", label, true, []string{"context=a:b:c:s0"}},
	} {
		orig := slices.Clone(c.data)
		got := withMountLabel(c.data, c.fstype, c.label, c.selinux)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		if !slices.Equal(c.data, orig) {
			t.Errorf("%s: the caller's options changed to %q", c.name, c.data)
		}
	}
}

func TestTrimSpecKeepsMountLabel(t *testing.T) {
	s := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{MountLabel: "x_u:x_r:x_t:s0"}}
	if got := TrimSpec(s, s.Process).Linux.MountLabel; got != "x_u:x_r:x_t:s0" {
		t.Fatalf("the init's spec has mountLabel %q", got)
	}
}
