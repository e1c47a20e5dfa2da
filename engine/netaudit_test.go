package engine

import (
	"strings"
	"testing"
)

// A --hostname or --add-host with a newline or blank wrote lines of the
// caller's choosing into the container's /etc/hosts (and the hostname
// went to sethostname and /etc/hostname as given). Each is refused before
// anything is made.
func TestEtcFilesRefuseInjection(t *testing.T) {
	ref := busyboxImage(t)
	for _, args := range [][]string{
		{"--hostname", "x\n6.6.6.6 bank.example"},
		{"--hostname", "a b"},
		{"--hostname", strings.Repeat("h", 65)},
		{"--add-host", "a\n6.6.6.6 bank.example:1.2.3.4"},
		{"--add-host", "a b:1.2.3.4"},
		{"--add-host", "bank.example:6.6.6.6\n7.7.7.7 other"},
		{"--add-host", "bank.example:not-an-ip"},
	} {
		a := append([]string{"--name", "netaudit-inject", "--network", "none"}, args...)
		out, errs, code := run(t, append(a, ref, "cat", "/etc/hosts", "/etc/hostname")...)
		if code != 125 || !strings.Contains(errs, "invalid "+args[0]) {
			t.Errorf("%q: exit %d, stderr %q, container saw:\n%s", args, code, errs, out)
		}
		if strings.Contains(out, "6.6.6.6") || strings.Contains(out, "7.7.7.7") {
			t.Errorf("%q: injected line in the container's files:\n%s", args, out)
		}
		berth(t, "", "rm", "-f", "netaudit-inject")
	}
	// What docker takes still works: IPv6, host-gateway, a dotted name.
	out, errs, code := run(t, "--network", "none", "--hostname", "web-1.example", "--add-host", "v6:::1",
		"--add-host", "gw:host-gateway", "--add-host", "db.local:10.0.0.5", ref, "sh", "-c", "hostname; cat /etc/hosts")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"web-1.example\n", "::1\tv6\n", "10.0.0.5\tdb.local\n", "\tgw\n", "127.0.1.1\tweb-1.example\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// /etc/hostname is the container's to write. `network connect` read it
// back from the host as the name to give the container's new address:
// whatever the container wrote (any size: read whole) became its name
// in its hosts file. The hostname is berth's record's.
func TestNetworkConnectIgnoresContainerWrittenHostname(t *testing.T) {
	bb := busyboxImage(t)
	const net1 = "berthtest-audit-hn"
	berthOK(t, "network", "create", net1)
	t.Cleanup(func() { berth(t, "", "network", "rm", net1) })
	id := netRun(t, "--name", "netaudit-hn", "--network", "bridge", bb, "sleep", "60")
	berthOK(t, "exec", "netaudit-hn", "sh", "-c", "echo bank.example > /etc/hostname")
	berthOK(t, "network", "connect", net1, "netaudit-hn")
	ep := inspectNetwork(t, net1).Endpoints[id]
	if ep == nil {
		t.Fatalf("not connected to %s", net1)
	}
	hosts := berthOK(t, "exec", "netaudit-hn", "cat", "/etc/hosts")
	if strings.Contains(hosts, "bank.example") || !strings.Contains(hosts, ep.IP+"\t"+id[:12]+"\n") {
		t.Errorf("hosts after connect (want %s\t%s):\n%s", ep.IP, id[:12], hosts)
	}
}
