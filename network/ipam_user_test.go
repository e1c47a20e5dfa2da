package network

import (
	"strings"
	"testing"
)

func TestReserveAndCheckMAC(t *testing.T) {
	n := &Network{Name: "user", Subnet: "10.77.0.0/24", Gateway: "10.77.0.1",
		Endpoints: map[string]*Endpoint{"a": {ContainerName: "a", IP: "10.77.0.5", MAC: "02:42:0a:4d:00:05"}}}
	if ip, err := reserve(n, "10.77.0.6"); err != nil || ip.String() != "10.77.0.6" {
		t.Errorf("a free address: %v %v", ip, err)
	}
	for addr, want := range map[string]string{
		"10.77.0.5": "in use", "10.77.0.1": "gateway", "10.77.0.0": "not a host address",
		"10.77.0.255": "not a host address", "10.78.0.5": "not a host address", "fe80::1": "not an IPv4", "x": "not an IPv4",
	} {
		if _, err := reserve(n, addr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", addr, err, want)
		}
	}
	if _, err := reserve(&Network{Name: DefaultName, Subnet: "172.17.0.0/16"}, "172.17.0.9"); err == nil {
		t.Error("a chosen address on the default bridge was accepted")
	}
	if m, err := checkMAC(n, "02:42:0a:4d:00:06"); err != nil || m.String() != "02:42:0a:4d:00:06" {
		t.Errorf("a free MAC: %v %v", m, err)
	}
	for _, bad := range []string{"02:42:0a:4d:00:05", "03:00:00:00:00:01", "zz", "02:42:0a:4d:00:06:07:08"} {
		if _, err := checkMAC(n, bad); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}
