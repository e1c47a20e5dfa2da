package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthproject/berth/network"
)

// netRun is `berth run -d [sec] args...`, removed at the end of the test;
// it returns the container ID.
func netRun(t *testing.T, args ...string) string {
	t.Helper()
	a := append(append([]string{"run", "-d"}, sec(t)...), args...)
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	return id
}

func inspectNetwork(t *testing.T, name string) *network.Network {
	t.Helper()
	var ns []*network.Network
	if err := json.Unmarshal([]byte(berthOK(t, "network", "inspect", name)), &ns); err != nil || len(ns) != 1 {
		t.Fatalf("network inspect %s: %v", name, err)
	}
	return ns[0]
}

// assertNetClean checks that the given host veths are gone and that the
// test root's nft table went with its last network.
func assertNetClean(t *testing.T, veths ...string) {
	t.Helper()
	for _, v := range veths {
		if _, err := os.Stat("/sys/class/net/" + v); err == nil {
			t.Errorf("veth %s left", v)
		}
	}
	m := network.Open(testRoot)
	if nets, _ := m.List(); len(nets) == 0 {
		if out, err := exec.Command("nft", "list", "table", "ip", m.Table()).CombinedOutput(); err == nil {
			t.Errorf("nft table %s left:\n%s", m.Table(), out)
		}
	}
}

// veths are the host ends of the containers' interfaces on network name.
func veths(t *testing.T, name string, ids ...string) []string {
	t.Helper()
	n := inspectNetwork(t, name)
	var out []string
	for _, id := range ids {
		ep := n.Endpoints[id]
		if ep == nil {
			t.Fatalf("container %s is not on network %s", id[:12], name)
		}
		if _, err := os.Stat("/sys/class/net/" + ep.HostVeth); err != nil {
			t.Fatalf("veth %s of %s missing", ep.HostVeth, id[:12])
		}
		out = append(out, ep.HostVeth)
	}
	return out
}

func getURL(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	var err error
	for i := 0; i < 60; i++ { // httpd may still be starting
		var resp *http.Response
		if resp, err = c.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", err
}

// netToolImage is a scratch image with a static Go tool (busybox-static's
// wget and ping crash resolving names without glibc's NSS modules):
// "/nt echo" echoes UDP on :9000; "/nt get URL" prints a page, retrying
// for a few seconds; "/nt hosts NAME" prints NAME's address from
// /etc/hosts (never DNS: tests send nothing off this machine).
func netToolImage(t *testing.T) string {
	bin := goBinary(t, "amd64", `package main
import ("fmt"; "io"; "net"; "net/http"; "os"; "strings"; "time")
func main() {
	switch os.Args[1] {
	case "echo":
		pc, err := net.ListenPacket("udp4", ":9000")
		if err != nil { panic(err) }
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil { return }
			pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	case "get":
		c := &http.Client{Timeout: 2 * time.Second}
		var err error
		for i := 0; i < 50; i++ {
			var r *http.Response
			if r, err = c.Get(os.Args[2]); err == nil {
				io.Copy(os.Stdout, r.Body)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case "hosts":
		b, _ := os.ReadFile("/etc/hosts")
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			for _, n := range f[min(1, len(f)):] {
				if n == os.Args[2] { fmt.Println(f[0]); return }
			}
		}
		os.Exit(1)
	}
}`)
	return scratchImage(t, "nettool:test", "amd64", []tarFile{{Name: "nt", Mode: 0o755, Body: bin}},
		v1.Config{Entrypoint: []string{"/nt"}, Cmd: []string{"echo"}, ExposedPorts: map[string]struct{}{"9000/udp": {}}})
}

const httpdCmd = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"

func TestNetworkPublishTCPAndUDP(t *testing.T) {
	bb := busyboxImage(t)
	echo := netToolImage(t)
	web := netRun(t, "--network", "bridge", "-p", "127.0.0.1::80", "-p", "80", "--hostname", "web", bb, "sh", "-c", httpdCmd)
	udp := netRun(t, "--network", "bridge", "-P", echo)
	gw := inspectNetwork(t, "bridge").Gateway

	ports := strings.Fields(berthOK(t, "port", web))
	if len(ports) != 6 || ports[0] != "80/tcp" {
		t.Fatalf("berth port: %q", ports)
	}
	var loop, all string
	for _, l := range strings.Split(strings.TrimSpace(berthOK(t, "port", web)), "\n") {
		_, hp, _ := strings.Cut(l, " -> ")
		if strings.HasPrefix(hp, "127.0.0.1:") {
			loop = hp
		} else {
			all = hp
		}
	}
	_, allPort, _ := net.SplitHostPort(all)
	for _, u := range []string{loop, "127.0.0.1:" + allPort, net.JoinHostPort(gw, allPort)} {
		if body, err := getURL("http://" + u + "/"); err != nil || body != "hello-web\n" {
			t.Errorf("GET %s: %q %v", u, body, err)
		}
	}
	// Another container reaches the published port through the host's
	// bridge address (DNAT in prerouting, replies back through the host).
	if out, errs, code := run(t, "--network", "bridge", echo, "get", "http://"+net.JoinHostPort(gw, allPort)+"/"); code != 0 || out != "hello-web\n" {
		t.Errorf("container -> published port via %s: exit %d %q %q", gw, code, out, errs)
	}
	// The 127.0.0.1-only binding is not on the bridge address.
	_, loopPort, _ := net.SplitHostPort(loop)
	if c, err := net.DialTimeout("tcp4", net.JoinHostPort(gw, loopPort), time.Second); err == nil {
		c.Close()
		t.Errorf("127.0.0.1-only port answers on %s", gw)
	}

	up := strings.TrimSpace(berthOK(t, "port", udp, "9000/udp"))
	_, udpPort, _ := net.SplitHostPort(up)
	for _, host := range []string{"127.0.0.1", gw} {
		got := ""
		for i := 0; i < 30 && got == ""; i++ {
			c, err := net.Dial("udp4", net.JoinHostPort(host, udpPort))
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(300 * time.Millisecond))
			c.Write([]byte("ping"))
			buf := make([]byte, 100)
			if n, err := c.Read(buf); err == nil {
				got = string(buf[:n])
			}
			c.Close()
		}
		if got != "echo ping" {
			t.Errorf("UDP echo via %s:%s: %q", host, udpPort, got)
		}
	}
	vs := veths(t, "bridge", web, udp)
	berthOK(t, "rm", "-f", web, udp)
	if _, err := getURL("http://" + loop + "/"); err == nil {
		t.Error("published port answers after rm")
	}
	assertNetClean(t, vs...)
}

func TestNetworkNamesAndOutbound(t *testing.T) {
	bb := busyboxImage(t)
	const net1 = "berthtest-e2e"
	berthOK(t, "network", "create", "--subnet", "172.29.120.0/24", net1)
	t.Cleanup(func() { berth(t, "", "network", "rm", net1) })
	netRun(t, "--name", "nt-server", "--network", net1, "--network-alias", "srv-alias", bb, "sh", "-c", httpdCmd)
	nt := netToolImage(t)
	for _, name := range []string{"nt-server", "srv-alias"} {
		out, errs, code := run(t, "--network", net1, nt, "get", "http://"+name+"/")
		if code != 0 || out != "hello-"+hostnameOf(t, "nt-server")+"\n" {
			t.Errorf("get %s on %s: exit %d %q %q", name, net1, code, out, errs)
		}
	}
	// On the default bridge names are not there, as on docker's.
	netRun(t, "--name", "nt-plain", "--network", "bridge", bb, "sleep", "60")
	if out, errs, code := run(t, "--network", "bridge", nt, "hosts", "nt-plain"); code != 1 {
		t.Errorf("nt-plain named on the default bridge: exit %d %q %q", code, out, errs)
	}
	// A container's own hostname is its bridge address.
	if out, _, code := run(t, "--network", "bridge", "--hostname", "selfname", nt, "hosts", "selfname"); code != 0 || !strings.HasPrefix(out, strings.TrimSuffix(inspectNetwork(t, "bridge").Subnet, "0.0/16")) {
		t.Errorf("own hostname: exit %d %q", code, out)
	}
	// ... while on the user-defined network its hosts entry is the
	// server's address.
	srv := inspectNetwork(t, net1)
	var srvIP string
	for _, ep := range srv.Endpoints {
		if ep.ContainerName == "nt-server" {
			srvIP = ep.IP
		}
	}
	if out, _, code := run(t, "--network", net1, nt, "hosts", "srv-alias"); code != 0 || strings.TrimSpace(out) != srvIP {
		t.Errorf("hosts srv-alias: exit %d %q, want %s", code, out, srvIP)
	}
	// Outbound: a server on the host's bridge address (NAT's stand-in).
	gw := srv.Gateway
	l, err := net.Listen("tcp4", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "from-host") }))
	out, errs, code := run(t, "--network", net1, nt, "get", "http://"+l.Addr().String()+"/")
	if code != 0 || out != "from-host" {
		t.Errorf("container -> host server: exit %d %q %q", code, out, errs)
	}
	// connect and disconnect a running container.
	cn := netRun(t, "--name", "nt-joiner", "--network", "bridge", bb, "sleep", "60")
	berthOK(t, "network", "connect", "--alias", "late", net1, "nt-joiner")
	if ep := inspectNetwork(t, net1).Endpoints[cn]; ep == nil || ep.IfName != "eth1" {
		t.Errorf("after connect: %+v", ep)
	}
	if out, _, code := run(t, "--network", net1, nt, "hosts", "late"); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("connected container not named: exit %d %q", code, out)
	}
	berthOK(t, "network", "disconnect", net1, "nt-joiner")
	if _, _, code := run(t, "--network", net1, nt, "hosts", "late"); code != 1 {
		t.Error("disconnected container still named")
	}
	// container:NAME shares the server's netns: its loopback serves.
	out, errs, code = run(t, "--network", "container:nt-server", nt, "get", "http://127.0.0.1/")
	if code != 0 || !strings.HasPrefix(out, "hello-") {
		t.Errorf("--network container:nt-server: exit %d %q %q", code, out, errs)
	}
	if _, errs, code := run(t, "--network", "container:nt-nope", bb, "true"); code != 125 || !strings.Contains(errs, "no such container: nt-nope") {
		t.Errorf("container:missing: exit %d %q", code, errs)
	}
	// A network in use cannot go; a network that does not exist is named.
	if _, errs, code := berth(t, "", "network", "rm", net1); code == 0 || !strings.Contains(errs, "in use") {
		t.Errorf("network rm in use: exit %d %q", code, errs)
	}
	_, errs, code = run(t, "--network", "berthtest-nope", bb, "true")
	if code != 125 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "network berthtest-nope not found") {
		t.Errorf("missing network: exit %d %q", code, errs)
	}
	_, errs, code = berth(t, "", "network", "create", "--subnet", "172.29.120.128/25", "berthtest-overlap")
	if code == 0 || !strings.Contains(errs, "overlaps network "+net1) {
		t.Errorf("overlapping subnet: exit %d %q", code, errs)
	}
}

func TestNetworkParallelDistinctAndClean(t *testing.T) {
	bb := busyboxImage(t)
	const k = 8
	ids := make([]string, k)
	errs := make([]string, k)
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a := append(append([]string{"run", "-d"}, sec(t)...), "--network", "bridge", "-p", "80", bb, "sleep", "60")
			out, e, code := berth(t, "", a...)
			if code != 0 {
				errs[i] = e
			}
			ids[i] = strings.TrimSpace(out)
		}(i)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			if id != "" {
				berth(t, "", "rm", "-f", id)
			}
		}
	})
	for i, e := range errs {
		if e != "" {
			t.Fatalf("run %d: %s", i, e)
		}
	}
	n := inspectNetwork(t, "bridge")
	seen := map[string]bool{}
	for _, id := range ids {
		ep := n.Endpoints[id]
		if ep == nil {
			t.Fatalf("container %s not on the bridge", id[:12])
		}
		if seen[ep.IP] {
			t.Errorf("address %s handed out twice", ep.IP)
		}
		seen[ep.IP] = true
	}
	vs := veths(t, "bridge", ids...)
	berthOK(t, append([]string{"rm", "-f"}, ids...)...)
	assertNetClean(t, vs...)
	if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
		t.Errorf("the test root's bridge %s is left", n.Bridge)
	}
}

func TestNetworkBadPortAndCrashCleanup(t *testing.T) {
	bb := busyboxImage(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_, errs, code := run(t, "--network", "bridge", "-p", busy+":80", bb, "true")
	if code != 125 || !strings.Contains(errs, "host port "+busy+"/tcp is already in use") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("busy port: exit %d %q", code, errs)
	}
	if _, errs, code := run(t, "--network", "bridge", "--network-alias", "x", bb, "true"); code != 125 || !strings.Contains(errs, "--network-alias needs a user-defined network") {
		t.Errorf("alias on the default bridge: exit %d %q", code, errs)
	}
	for _, bad := range []string{"99999:80", "80/sctp"} {
		if _, errs, code := run(t, "--network", "bridge", "-p", bad, bb, "true"); code != 125 || !strings.Contains(errs, "invalid port") {
			t.Errorf("-p %s: exit %d %q", bad, code, errs)
		}
	}
	assertNetClean(t)

	// kill -9 of the monitor and the container: the endpoint, address and
	// rules are mopped up by container prune.
	id := netRun(t, "--network", "bridge", "-p", "80", bb, "sleep", "60")
	c, err := testEngine(t).Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	m := network.Open(testRoot)
	if ps, _ := m.Ports(id); len(ps) != 1 {
		t.Fatalf("ports: %v", ps)
	}
	vs := veths(t, "bridge", id)
	syscallKill(c.State.MonitorPid)
	syscallKill(c.State.Pid)
	for i := 0; i < 100 && procStart(c.State.Pid) != 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	berthOK(t, "container", "prune", "-f")
	if eps, _ := m.Endpoints(id); len(eps) != 0 {
		t.Errorf("endpoints left: %v", eps)
	}
	if st, _ := os.ReadFile(testRoot + "/networks/networks.json"); strings.Contains(string(st), id) {
		t.Errorf("state still holds %s:\n%s", id[:12], st)
	}
	assertNetClean(t, vs...)
}

// hostnameOf is the hostname berth gave a container (its short ID).
func hostnameOf(t *testing.T, name string) string {
	c, err := testEngine(t).Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return c.ShortID()
}

func syscallKill(pid int) {
	if p, err := os.FindProcess(pid); err == nil && pid > 0 {
		p.Kill()
	}
}

// TestAddHostGateway: --add-host NAME:host-gateway is the host's address
// on the container's bridge network, as under docker (not the container's
// own loopback), on the default bridge and on a user network alike.
func TestAddHostGateway(t *testing.T) {
	bb := busyboxImage(t)
	const net1 = "berthtest-hostgw"
	berthOK(t, "network", "create", net1)
	t.Cleanup(func() { berth(t, "", "network", "rm", net1) })
	for _, netName := range []string{"bridge", net1} {
		name := "hostgw-" + strings.TrimPrefix(netName, "berthtest-")
		netRun(t, "--name", name, "--network", netName, "--add-host", "gw:host-gateway", "--add-host", "db:10.0.0.5", bb, "sleep", "60")
		gw := inspectNetwork(t, netName).Gateway
		hosts := berthOK(t, "exec", name, "cat", "/etc/hosts")
		if gw == "" || !strings.Contains(hosts, "\n"+gw+"\tgw\n") || strings.Contains(hosts, "127.0.0.1\tgw") {
			t.Errorf("%s: want %s\tgw in /etc/hosts:\n%s", netName, gw, hosts)
		}
		if !strings.Contains(hosts, "10.0.0.5\tdb\n") {
			t.Errorf("%s: the other --add-host is gone:\n%s", netName, hosts)
		}
	}
	// A neighbour joining rewrites the hosts file: the gateway's name stays.
	netRun(t, "--name", "hostgw-neighbour", "--network", net1, bb, "sleep", "60")
	gw := inspectNetwork(t, net1).Gateway
	hosts := berthOK(t, "exec", "hostgw-hostgw", "cat", "/etc/hosts")
	if !strings.Contains(hosts, "\n"+gw+"\tgw\n") || !strings.Contains(hosts, "hostgw-neighbour") {
		t.Errorf("after a neighbour joined, want %s\tgw and the neighbour in /etc/hosts:\n%s", gw, hosts)
	}
}

// --ip and --mac-address on a user-defined network.
func TestStaticIPAndMAC(t *testing.T) {
	bb := busyboxImage(t)
	const netName = "berthtest-static"
	berthOK(t, "network", "create", "--subnet", "10.211.7.0/24", netName)
	t.Cleanup(func() { berth(t, "", "network", "rm", netName) })
	out, errs, code := run(t, "--network", netName, "--ip", "10.211.7.77", "--mac-address", "02:42:0a:d3:07:99", bb, "ip", "addr", "show", "eth0")
	if code != 0 || !strings.Contains(out, "inet 10.211.7.77/24") || !strings.Contains(out, "link/ether 02:42:0a:d3:07:99") {
		t.Errorf("--ip/--mac-address: exit %d %q %q", code, out, errs)
	}
	if _, errs, code := run(t, "--ip", "10.211.7.78", bb, "true"); code != 125 || !strings.Contains(errs, "user-defined network") {
		t.Errorf("--ip on the default bridge: exit %d %q", code, errs)
	}
	if _, errs, code := run(t, "--network", netName, "--ip", "10.99.0.1", bb, "true"); code == 0 || !strings.Contains(errs, "not a host address") {
		t.Errorf("--ip outside the subnet: exit %d %q", code, errs)
	}
	// network connect --ip, to a second network.
	const net2 = "berthtest-static2"
	berthOK(t, "network", "create", "--subnet", "10.211.8.0/24", net2)
	t.Cleanup(func() { berth(t, "", "network", "rm", net2) })
	id := netRun(t, "--network", netName, bb, "sleep", "60")
	berthOK(t, "network", "connect", "--ip", "10.211.8.33", net2, id)
	if out := berthOK(t, "exec", id, "ip", "addr"); !strings.Contains(out, "inet 10.211.8.33/24") {
		t.Errorf("network connect --ip:\n%s", out)
	}
}

// inspect's NetworkSettings has docker's shape, which scripts read:
// .NetworkSettings.IPAddress for the default bridge, and each network's
// IPAddress, Gateway, MacAddress and IPPrefixLen.
func TestInspectNetworkSettings(t *testing.T) {
	bb := busyboxImage(t)
	id := netRun(t, bb, "sleep", "60")
	got := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}} {{with index .NetworkSettings.Networks \"bridge\"}}{{.IPAddress}} {{.Gateway}} {{.MacAddress}} {{.IPPrefixLen}}{{end}}", id))
	f := strings.Fields(got)
	n := inspectNetwork(t, "bridge")
	if len(f) != 6 || f[0] == "" || f[0] != f[2] || f[1] != n.Gateway || f[3] != n.Gateway || !strings.HasPrefix(f[4], "02:42:") || f[5] == "0" {
		t.Errorf("NetworkSettings: %q (gateway %s)", got, n.Gateway)
	}
	if out := berthOK(t, "exec", id, "ip", "addr", "show", "eth0"); !strings.Contains(out, "inet "+f[0]+"/"+f[5]) {
		t.Errorf("inspect says %s/%s, the container has:\n%s", f[0], f[5], out)
	}
}

func TestNetworkLsFilter(t *testing.T) {
	requireRuntime(t)
	for _, n := range []string{"berthtest-lsf-a", "berthtest-lsf-b"} {
		berthOK(t, "network", "create", n)
		name := n
		t.Cleanup(func() { berth(t, "", "network", "rm", name) })
	}
	out := berthOK(t, "network", "ls", "--filter", "name=lsf-a")
	if !strings.Contains(out, "berthtest-lsf-a") || strings.Contains(out, "berthtest-lsf-b") || strings.Contains(out, "host") {
		t.Errorf("network ls --filter name=:\n%s", out)
	}
	if _, stderr, code := berth(t, "", "network", "ls", "--filter", "x=y"); code != 125 || !strings.Contains(stderr, "invalid --filter") {
		t.Errorf("a bad filter: %d %q", code, stderr)
	}
}
