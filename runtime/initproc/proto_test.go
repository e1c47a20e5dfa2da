package initproc

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// An exec'd process (a process.json) that leaves out capabilities or an
// LSM label must get the container's: with none it would run with all of
// the runtime's capabilities, or unconfined.
func TestTrimSpecExecFallsBackToTheContainers(t *testing.T) {
	caps := &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}}
	s := &specs.Spec{Process: &specs.Process{Capabilities: caps, ApparmorProfile: "ctr-profile", SelinuxLabel: "ctr_t"}}
	got := TrimSpec(s, &specs.Process{Args: []string{"sh"}}).Process
	if got.Capabilities != caps || got.ApparmorProfile != "ctr-profile" || got.SelinuxLabel != "ctr_t" {
		t.Fatalf("exec process without its own: capabilities %v, apparmor %q, selinux %q", got.Capabilities, got.ApparmorProfile, got.SelinuxLabel)
	}
	own := &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}
	got = TrimSpec(s, &specs.Process{Args: []string{"sh"}, Capabilities: own, ApparmorProfile: "mine"}).Process
	if got.Capabilities != own || got.ApparmorProfile != "mine" {
		t.Fatalf("exec process with its own: capabilities %v, apparmor %q", got.Capabilities, got.ApparmorProfile)
	}
}
