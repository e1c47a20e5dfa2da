package build

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/network"
)

// seenConn is what the test's TCP server saw of the RUN step's
// connection, and the host's links and addresses while the step ran.
type seenConn struct {
	local, remote string // IPs
	line          string
	links, addrs  string // `ip -o link` / `ip -o addr` during the step
}

// serveOnce accepts one connection on addr, snapshots the host's links
// while the step is still running, answers "pong" and reports.
func serveOnce(t *testing.T, addr string) (port int, seen <-chan seenConn) {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan seenConn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var s seenConn
		s.local = c.LocalAddr().(*net.TCPAddr).IP.String()
		s.remote = c.RemoteAddr().(*net.TCPAddr).IP.String()
		s.line, _ = bufio.NewReader(c).ReadString('\n')
		links, _ := exec.Command("ip", "-o", "link").Output()
		addrs, _ := exec.Command("ip", "-o", "-4", "addr").Output()
		s.links, s.addrs = string(links), string(addrs)
		fmt.Fprintf(c, "pong\n")
		ch <- s
	}()
	return l.Addr().(*net.TCPAddr).Port, ch
}

// devOf is the interface holding ip in `ip -o -4 addr` output.
func devOf(addrs, ip string) string {
	for _, l := range strings.Split(addrs, "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && strings.HasPrefix(f[3], ip+"/") {
			return f[1]
		}
	}
	return ""
}

// vethsOf lists the links enslaved to bridge in `ip -o link` output.
func vethsOf(links, bridge string) []string {
	var out []string
	for _, l := range strings.Split(links, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && strings.Contains(l, " master "+bridge+" ") {
			out = append(out, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return out
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// netDockerfile records the step's eth0 address, default route and
// hosts file, and talks to the test's server on the gateway.
const netDockerfile = `FROM busybox
ARG PORT
RUN %s ip -o -4 addr show eth0 > /addr && ip route > /route && cat /etc/hosts > /hosts && \
    GW=$(ip route | awk '/^default/ {print $3}') && echo ping | nc $GW $PORT > /reply
`

// checkNetRun checks the image's records against what the server saw
// and returns the step's address and the veths it had.
func checkNetRun(t *testing.T, e *env, r *Result, s seenConn) (ip string, veths []string, bridge string) {
	t.Helper()
	root := rootfsOf(t, onlyImage(t, r))
	addr := readFile(t, root+"/addr")
	f := strings.Fields(addr)
	if len(f) < 4 || f[1] != "eth0" {
		t.Fatalf("no IPv4 address on eth0: %q", addr)
	}
	ip = strings.SplitN(f[3], "/", 2)[0]
	if ip != s.remote {
		t.Errorf("eth0 has %s but the server saw the connection from %s", ip, s.remote)
	}
	if route := readFile(t, root+"/route"); !strings.Contains(route, "default via "+s.local+" ") {
		t.Errorf("default route not via the gateway %s the server answered on:\n%s", s.local, route)
	}
	if s.line != "ping\n" {
		t.Errorf("server read %q, want ping", s.line)
	}
	if got := readFile(t, root+"/reply"); got != "pong\n" {
		t.Errorf("RUN got %q from the server, want pong", got)
	}
	if hosts := readFile(t, root+"/hosts"); !strings.Contains(hosts, ip+"\t"+runHostname) {
		t.Errorf("hosts file lacks the step's own address:\n%s", hosts)
	}
	bridge = devOf(s.addrs, s.local)
	if bridge == "" {
		t.Fatalf("no host interface had the gateway %s during the step:\n%s", s.local, s.addrs)
	}
	veths = vethsOf(s.links, bridge)
	if len(veths) != 1 {
		t.Errorf("want one veth in %s during the step, got %v", bridge, veths)
	}
	for _, v := range veths {
		if linkExists(v) {
			t.Errorf("veth %s still exists after the build", v)
		}
	}
	return ip, veths, bridge
}

// nftTable is the root's nftables table, or "" when there is none.
func nftTable(root string) string {
	out, err := exec.Command("nft", "list", "table", "ip", network.Open(root).Table()).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// `berth build --network bridge`: the step gets the store's default
// bridge, which (a temporary root's) goes with it.
func TestRunNetworkBridge(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "nft", "nftables")
	e := newEnv(t)
	e.importBusybox("busybox")
	port, seen := serveOnce(t, "0.0.0.0:0")
	dir := writeContext(t, map[string]string{"Dockerfile": fmt.Sprintf(netDockerfile, "")})
	r, out := e.mustBuild(dir, func(o *Options) {
		o.Network = "bridge"
		o.BuildArgs = map[string]string{"PORT": strconv.Itoa(port)}
	})
	var s seenConn
	select {
	case s = <-seen:
	default:
		t.Fatalf("the server saw no connection\n%s", out)
	}
	ip, _, bridge := checkNetRun(t, e, r, s)
	t.Logf("step address %s, gateway %s on %s", ip, s.local, bridge)
	if linkExists(bridge) {
		t.Errorf("the temporary root's default bridge %s is still there", bridge)
	}
	ns, err := network.Open(e.root).List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 0 {
		t.Errorf("networks left in the state: %v", ns)
	}
	if tb := nftTable(e.root); tb != "" {
		t.Errorf("nft table left:\n%s", tb)
	}
}

// RUN --network=NAME puts one step of a host-network build on a
// user-defined network; its endpoint goes, the network stays.
func TestRunNetworkUserDefined(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "nft", "nftables")
	e := newEnv(t)
	e.importBusybox("busybox")
	m := network.Open(e.root)
	n, err := m.Create(network.CreateOpts{Name: "buildnet"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove("buildnet") })
	_, subnet, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		t.Fatal(err)
	}
	// Only on the gateway: the step can reach nothing else of the test.
	port, seen := serveOnce(t, net.JoinHostPort(n.Gateway, "0"))
	dir := writeContext(t, map[string]string{"Dockerfile": fmt.Sprintf(netDockerfile, "--network=buildnet")})
	r, out := e.mustBuild(dir, func(o *Options) {
		o.BuildArgs = map[string]string{"PORT": strconv.Itoa(port)}
	})
	var s seenConn
	select {
	case s = <-seen:
	default:
		t.Fatalf("the server saw no connection\n%s", out)
	}
	ip, veths, bridge := checkNetRun(t, e, r, s)
	if !subnet.Contains(net.ParseIP(ip)) {
		t.Errorf("step address %s is not in the network's subnet %s", ip, n.Subnet)
	}
	if bridge != n.Bridge {
		t.Errorf("gateway on %s, want the network's bridge %s", bridge, n.Bridge)
	}
	after, err := m.Inspect("buildnet")
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Endpoints) != 0 {
		t.Errorf("endpoints left on the network: %v", after.Endpoints)
	}
	tb := nftTable(e.root)
	for _, v := range veths {
		if strings.Contains(tb, v) {
			t.Errorf("nft rules still name veth %s:\n%s", v, tb)
		}
	}
	if strings.Contains(tb, ip+" ") {
		t.Errorf("nft rules still name the step's address %s:\n%s", ip, tb)
	}
}

// A failing step on a bridge is detached too; a network that does not
// exist is refused before anything runs.
func TestRunNetworkFailAndBadInput(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "nft", "nftables")
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --network=bridge ip -o -4 addr show eth0 | grep -q inet && exit 3\n"})
	_, out, err := e.build(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "status 3") {
		t.Fatalf("want the step's exit status 3 (eth0 had an address), got %v\n%s", err, out)
	}
	bridge := "brt" + strings.TrimPrefix(network.Open(e.root).Table(), "berth_")
	if linkExists(bridge) {
		t.Errorf("default bridge %s left after the failed step", bridge)
	}
	if ns, _ := network.Open(e.root).List(); len(ns) != 0 {
		t.Errorf("networks left in the state: %v", ns)
	}
	if tb := nftTable(e.root); tb != "" {
		t.Errorf("nft table left:\n%s", tb)
	}

	if _, _, err := e.build(dir, func(o *Options) { o.Network = "nosuch" }); err == nil || !strings.Contains(err.Error(), "network nosuch not found") {
		t.Errorf("--network nosuch: got %v", err)
	}
	bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --network=nosuch touch /x\n"})
	if _, _, err := e.build(bad, nil); err == nil || !strings.Contains(err.Error(), "network nosuch not found") || !strings.Contains(err.Error(), ":2") {
		t.Errorf("RUN --network=nosuch: want a line-2 error naming the network, got %v", err)
	}
	if _, _, err := e.build(bad, func(o *Options) { o.Network = "container:x" }); err == nil || !strings.Contains(err.Error(), "not supported for builds") {
		t.Errorf("--network container:x: got %v", err)
	}
}
