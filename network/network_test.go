package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fixture"
)

// The test binary doubles as a "container": re-executed in a new network
// namespace it serves HTTP on :80 and UDP echo on :9000 until killed.
func TestMain(m *testing.M) {
	if name := os.Getenv("BERTH_NETTEST_SERVE"); name != "" {
		serve(name)
		return
	}
	os.Exit(m.Run())
}

func serve(name string) {
	go func() {
		for {
			pc, err := net.ListenPacket("udp4", ":9000")
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					break
				}
				pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
			}
		}
	}()
	http.ListenAndServe(":80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", name)
	}))
}

// box is a fake container: a process in its own netns, with a hosts file.
type box struct {
	id, name, hosts string
	cmd             *exec.Cmd
}

func newBox(t *testing.T, name string) *box {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), "BERTH_NETTEST_SERVE="+name)
	// No Pdeathsig: it follows the forking thread, and inNetns throws threads away.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &box{id: newID(), name: name, cmd: cmd, hosts: filepath.Join(t.TempDir(), "hosts")}
	os.WriteFile(b.hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644)
	t.Cleanup(b.kill)
	return b
}

func (b *box) kill() {
	if b.cmd.ProcessState == nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
}

func (b *box) opts(network string, ports ...PortBinding) AttachOpts {
	return AttachOpts{Network: network, ContainerID: b.id, ContainerName: b.name, Pid: b.cmd.Process.Pid,
		HostsFile: b.hosts, Hostname: "h-" + b.name, Ports: ports}
}

// inNetns runs fn on a thread inside pid's network namespace; the thread
// is thrown away afterwards.
func inNetns(t *testing.T, pid int, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "nft", "nftables")
	m := Open(t.TempDir())
	t.Cleanup(func() {
		// Boxes are killed by their own cleanups (registered later, run
		// first); what they held goes with the prune.
		if _, err := m.Prune(); err != nil {
			t.Errorf("prune: %v", err)
		}
		assertNoTable(t, m)
	})
	return m
}

func assertNoTable(t *testing.T, m *Manager) {
	t.Helper()
	if out, err := exec.Command("nft", "list", "table", "ip", m.Table()).CombinedOutput(); err == nil {
		t.Errorf("table ip %s still exists:\n%s", m.Table(), out)
	}
	if _, err := os.Stat(m.rulesCache()); err == nil {
		t.Errorf("rules cache %s left", m.rulesCache())
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	var lastErr error
	for i := 0; i < 50; i++ { // the server may still be starting
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return "", lastErr
}

// rawGet does an HTTP/1.0 GET on a connection dialed from the calling
// goroutine (net/http dials on other goroutines, which may run on threads
// outside the netns inNetns entered).
func rawGet(addr string) (string, error) {
	var c net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if c, err = net.DialTimeout("tcp4", addr, 2*time.Second); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("not an HTTP answer: %q", b)
	}
	return body, nil
}

func udpEcho(addr, msg string) (string, error) {
	var lastErr error
	for i := 0; i < 30; i++ {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return "", err
		}
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		c.Write([]byte(msg))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		c.Close()
		if err == nil {
			return string(buf[:n]), nil
		}
		lastErr = err
	}
	return "", lastErr
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func TestPublishedPortsTCPAndUDP(t *testing.T) {
	m := newManager(t)
	b := newBox(t, "web")
	ep, err := m.Attach(b.opts("", PortBinding{Proto: "tcp", ContainerPort: 80},
		PortBinding{Proto: "udp", ContainerPort: 9000}))
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Ports) != 2 || ep.Ports[0].HostPort == 0 || ep.Ports[1].HostPort == 0 {
		t.Fatalf("random host ports not assigned: %+v", ep.Ports)
	}
	n, err := m.Inspect(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	if !linkExists(n.Bridge) || !linkExists(ep.HostVeth) {
		t.Fatalf("bridge %s or veth %s missing", n.Bridge, ep.HostVeth)
	}
	_, sn, _ := net.ParseCIDR(n.Subnet)
	if !sn.Contains(net.ParseIP(ep.IP)) || ep.IP == n.Gateway {
		t.Fatalf("address %s not a host address of %s", ep.IP, n.Subnet)
	}
	// MTU follows the host's default route interface.
	if l, _ := netlink.LinkByName(ep.HostVeth); l.Attrs().MTU != hostMTU() {
		t.Errorf("veth MTU %d, host's %d", l.Attrs().MTU, hostMTU())
	}
	tcpPort, udpPort := strconv.Itoa(ep.Ports[0].HostPort), strconv.Itoa(ep.Ports[1].HostPort)
	for _, host := range []string{"127.0.0.1", n.Gateway} {
		body, err := httpGet("http://" + net.JoinHostPort(host, tcpPort) + "/")
		if err != nil || body != "hello from web" {
			t.Errorf("GET via %s:%s: %q %v", host, tcpPort, body, err)
		}
		got, err := udpEcho(net.JoinHostPort(host, udpPort), "ping")
		if err != nil || got != "echo ping" {
			t.Errorf("UDP echo via %s:%s: %q %v", host, udpPort, got, err)
		}
	}
	// Directly on the container's address too.
	if body, err := httpGet("http://" + ep.IP + ":80/"); err != nil || body != "hello from web" {
		t.Errorf("GET %s:80: %q %v", ep.IP, body, err)
	}
	ports, _ := m.Ports(b.id)
	if len(ports) != 2 || !strings.HasPrefix(ports[0].String(), "80/tcp -> 0.0.0.0:") {
		t.Errorf("Ports: %v", ports)
	}
	// Inside: eth0 with the address and a default route via the gateway.
	err = inNetns(t, b.cmd.Process.Pid, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().HardwareAddr.String() != ep.MAC {
			return fmt.Errorf("eth0 MAC %s, want %s", l.Attrs().HardwareAddr, ep.MAC)
		}
		rs, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.String() == n.Gateway {
				return nil
			}
		}
		return fmt.Errorf("no default route via %s: %v", n.Gateway, rs)
	})
	if err != nil {
		t.Error(err)
	}

	if err := m.Detach(b.id, ""); err != nil {
		t.Fatal(err)
	}
	if linkExists(ep.HostVeth) || linkExists(n.Bridge) {
		t.Errorf("after detach: veth %v, bridge %v (test roots drop their default bridge)", linkExists(ep.HostVeth), linkExists(n.Bridge))
	}
	assertNoTable(t, m)
	if _, err := httpGet("http://127.0.0.1:" + tcpPort + "/"); err == nil {
		t.Error("published port still answers after detach")
	}
}

func TestUserNetworkNamesAndOutbound(t *testing.T) {
	m := newManager(t)
	n, err := m.Create(CreateOpts{Name: "berthtest-names", Subnet: "172.29.64.0/24", Gateway: "172.29.64.254"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Gateway != "172.29.64.254" || !linkExists(n.Bridge) {
		t.Fatalf("network %+v, bridge exists %v", n, linkExists(n.Bridge))
	}
	a, b := newBox(t, "alpha"), newBox(t, "beta")
	oa := a.opts("berthtest-names")
	oa.Aliases = []string{"first"}
	epA, err := m.Attach(oa)
	if err != nil {
		t.Fatal(err)
	}
	epB, err := m.Attach(b.opts("berthtest-names"))
	if err != nil {
		t.Fatal(err)
	}
	if epA.IP == epB.IP {
		t.Fatalf("same address twice: %s", epA.IP)
	}
	hostsA, _ := os.ReadFile(a.hosts)
	hostsB, _ := os.ReadFile(b.hosts)
	if !strings.Contains(string(hostsA), epB.IP+"\tbeta") || !strings.Contains(string(hostsB), epA.IP+"\talpha first") {
		t.Errorf("hosts entries missing:\nalpha:\n%s\nbeta:\n%s", hostsA, hostsB)
	}
	// alpha reaches beta's server through the bridge.
	err = inNetns(t, a.cmd.Process.Pid, func() error {
		body, err := rawGet(epB.IP + ":80")
		if err == nil && body != "hello from beta" {
			err = fmt.Errorf("got %q", body)
		}
		return err
	})
	if err != nil {
		t.Errorf("alpha -> beta: %v", err)
	}
	// Outbound: a server on the host's side of the bridge.
	l, err := net.Listen("tcp4", net.JoinHostPort(n.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host saw %s", r.RemoteAddr)
	}))
	err = inNetns(t, a.cmd.Process.Pid, func() error {
		body, err := rawGet(l.Addr().String())
		if err == nil && !strings.HasPrefix(body, "host saw "+epA.IP+":") {
			err = fmt.Errorf("got %q", body)
		}
		return err
	})
	if err != nil {
		t.Errorf("container -> host server: %v", err)
	}
	// Removing a network in use fails and changes nothing.
	if err := m.Remove("berthtest-names"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("removing a network in use: %v", err)
	}
	if !linkExists(n.Bridge) || !linkExists(epA.HostVeth) {
		t.Error("failed remove broke the network")
	}
	// beta leaves: alpha's hosts forget it.
	if err := m.Detach(b.id, "berthtest-names"); err != nil {
		t.Fatal(err)
	}
	hostsA, _ = os.ReadFile(a.hosts)
	if strings.Contains(string(hostsA), "beta") {
		t.Errorf("beta still in alpha's hosts:\n%s", hostsA)
	}
	if err := m.Detach(a.id, ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("berthtest-names"); err != nil {
		t.Fatal(err)
	}
	if linkExists(n.Bridge) {
		t.Error("bridge left after network rm")
	}
	if _, err := m.Inspect("berthtest-names"); err == nil {
		t.Error("network still listed after rm")
	}
}

func TestDefaultBridgeHasNoNames(t *testing.T) {
	m := newManager(t)
	a, b := newBox(t, "one"), newBox(t, "two")
	if _, err := m.Attach(a.opts("")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(b.opts("")); err != nil {
		t.Fatal(err)
	}
	h, _ := os.ReadFile(a.hosts)
	if strings.Contains(string(h), "h-two") {
		t.Errorf("default bridge wrote names:\n%s", h)
	}
	// Its own hostname maps to its address, after the engine's lines.
	ep, _ := m.Endpoints(a.id)
	if !strings.HasPrefix(string(h), "127.0.0.1\tlocalhost\n") || !strings.Contains(string(h), ep[DefaultName].IP+"\th-one\n") {
		t.Errorf("own hostname entry missing:\n%s", h)
	}
}

func TestParallelAttachDistinctAndClean(t *testing.T) {
	m := newManager(t)
	const k = 8
	boxes := make([]*box, k)
	for i := range boxes {
		boxes[i] = newBox(t, fmt.Sprintf("p%d", i))
	}
	eps := make([]*Endpoint, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range boxes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Separate managers, as separate berth processes would have.
			eps[i], errs[i] = Open(m.Root).Attach(boxes[i].opts("", PortBinding{Proto: "tcp", ContainerPort: 80}))
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	ports := map[int]bool{}
	for i, ep := range eps {
		if errs[i] != nil {
			t.Fatalf("attach %d: %v", i, errs[i])
		}
		if seen[ep.IP] || ports[ep.Ports[0].HostPort] {
			t.Fatalf("address %s or port %d handed out twice", ep.IP, ep.Ports[0].HostPort)
		}
		seen[ep.IP], ports[ep.Ports[0].HostPort] = true, true
	}
	for i, ep := range eps {
		body, err := httpGet("http://127.0.0.1:" + strconv.Itoa(ep.Ports[0].HostPort) + "/")
		if want := fmt.Sprintf("hello from p%d", i); err != nil || body != want {
			t.Errorf("container %d: %q %v", i, body, err)
		}
	}
	for i := range boxes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = Open(m.Root).Detach(boxes[i].id, "")
		}(i)
	}
	wg.Wait()
	for i, ep := range eps {
		if errs[i] != nil {
			t.Errorf("detach %d: %v", i, errs[i])
		}
		if linkExists(ep.HostVeth) {
			t.Errorf("veth %s left", ep.HostVeth)
		}
	}
	assertNoTable(t, m)
	if linkExists(m.defaultBridge()) {
		t.Error("default bridge of a test root left")
	}
}

func TestKilledContainerIsPruned(t *testing.T) {
	m := newManager(t)
	n, err := m.Create(CreateOpts{Name: "berthtest-prune"})
	if err != nil {
		t.Fatal(err)
	}
	b := newBox(t, "victim")
	ep, err := m.Attach(b.opts("berthtest-prune", PortBinding{Proto: "tcp", ContainerPort: 80}))
	if err != nil {
		t.Fatal(err)
	}
	b.kill() // berth never detaches: as after a kill -9
	// The network is no longer in use once its only container died.
	removed, err := m.Prune()
	if err != nil || len(removed) != 1 || removed[0] != "berthtest-prune" {
		t.Fatalf("prune: %v %v", removed, err)
	}
	if linkExists(ep.HostVeth) || linkExists(n.Bridge) {
		t.Error("veth or bridge left after prune")
	}
	assertNoTable(t, m)
}

func TestBadInput(t *testing.T) {
	m := newManager(t)
	if _, err := m.Create(CreateOpts{Name: "berthtest-a", Subnet: "172.29.80.0/24"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(m.statePath())
	cases := []struct {
		o    CreateOpts
		want string
	}{
		{CreateOpts{Name: "berthtest-b", Subnet: "172.29.80.128/25"}, "overlaps network berthtest-a"},
		{CreateOpts{Name: "berthtest-b", Subnet: "172.29.0.0/16"}, "overlaps network berthtest-a"},
		{CreateOpts{Name: "berthtest-a", Subnet: "172.29.81.0/24"}, "already exists"},
		{CreateOpts{Name: "bridge"}, "reserved"},
		{CreateOpts{Name: "bad/name"}, "invalid network name"},
		{CreateOpts{Name: "berthtest-b", Subnet: "172.29.81.1/24"}, "host bits"},
		{CreateOpts{Name: "berthtest-b", Subnet: "nonsense"}, "invalid subnet"},
		{CreateOpts{Name: "berthtest-b", Subnet: "172.29.81.0/24", Gateway: "172.29.82.1"}, "not a host address"},
		{CreateOpts{Name: "berthtest-b", Subnet: "127.0.0.0/16"}, "overlaps"},
	}
	for _, c := range cases {
		_, err := m.Create(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("create %+v: %v, want one line with %q", c.o, err, c.want)
		}
	}
	if after, _ := os.ReadFile(m.statePath()); string(after) != string(before) {
		t.Error("failed creates changed the state")
	}
	if linkExists("br-") {
		t.Error("half-made bridge")
	}
	b := newBox(t, "x")
	if _, err := m.Attach(b.opts("berthtest-nope")); err == nil || !strings.Contains(err.Error(), "network berthtest-nope not found") {
		t.Errorf("attach to a missing network: %v", err)
	}
	bad := b.opts("berthtest-a")
	bad.Aliases = []string{"evil\n1.2.3.4 victim"}
	if _, err := m.Attach(bad); err == nil || !strings.Contains(err.Error(), "invalid network alias") {
		t.Errorf("alias with a newline: %v", err)
	}
	// A host port some other program holds.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	_, err = m.Attach(b.opts("berthtest-a", PortBinding{Proto: "tcp", HostPort: busy, ContainerPort: 80}))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("host port %d/tcp is already in use", busy)) {
		t.Errorf("busy host port: %v", err)
	}
	if eps, _ := m.Endpoints(b.id); len(eps) != 0 || linkExists(vethName(b.id, mustFind(t, m, "berthtest-a"))) {
		t.Error("failed attach left an endpoint or veth")
	}
	// On the default network, made for this attach: no bridge is left.
	_, err = m.Attach(b.opts("", PortBinding{Proto: "tcp", HostPort: busy, ContainerPort: 80}))
	if err == nil || linkExists(m.defaultBridge()) {
		t.Errorf("busy host port on the default network: %v, bridge left %v", err, linkExists(m.defaultBridge()))
	}
	if _, err := m.Inspect(DefaultName); err == nil {
		t.Error("failed attach recorded the default network")
	}
	for _, s := range []string{"0", "70000", "80/sctp", "1.2.3:80:80", "8080-8081:80-81", "a:b:c:d"} {
		if _, err := ParsePort(s); err == nil {
			t.Errorf("ParsePort(%q) accepted", s)
		}
	}
	for s, want := range map[string]PortBinding{
		"80":                  {Proto: "tcp", ContainerPort: 80},
		"8080:80/udp":         {Proto: "udp", HostPort: 8080, ContainerPort: 80},
		"127.0.0.1:8080:80":   {Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80},
		"127.0.0.1::53/udp":   {Proto: "udp", HostIP: "127.0.0.1", ContainerPort: 53},
		"0.0.0.0:8080:80/TCP": {Proto: "tcp", HostPort: 8080, ContainerPort: 80},
	} {
		if got, err := ParsePort(s); err != nil || got != want {
			t.Errorf("ParsePort(%q) = %+v %v, want %+v", s, got, err, want)
		}
	}
}

func mustFind(t *testing.T, m *Manager, name string) *Network {
	n, err := m.Inspect(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAllocateSkipsUsedAndWraps(t *testing.T) {
	n := &Network{Name: "t", Subnet: "10.1.2.0/29", Gateway: "10.1.2.1", Endpoints: map[string]*Endpoint{}}
	var got []string
	for i := 0; i < 5; i++ {
		ip, err := allocate(n)
		if err != nil {
			t.Fatal(err)
		}
		n.Endpoints[ip.String()] = &Endpoint{IP: ip.String()}
		got = append(got, ip.String())
	}
	if strings.Join(got, " ") != "10.1.2.2 10.1.2.3 10.1.2.4 10.1.2.5 10.1.2.6" {
		t.Errorf("allocated %v", got)
	}
	if _, err := allocate(n); err == nil {
		t.Error("a full /29 handed out a sixth address")
	}
	delete(n.Endpoints, "10.1.2.3")
	if ip, _ := allocate(n); ip.String() != "10.1.2.3" {
		t.Errorf("freed address not found after wrap: %v", ip)
	}
}

// The table berth builds over netlink is, rule for rule, the one its text
// form describes: nft reads it back as that text.
func TestTableReadsBackAsText(t *testing.T) {
	m := newManager(t)
	st := &state{Networks: map[string]*Network{
		"a": {Name: "a", Bridge: "brt-a", Subnet: "172.29.96.0/20", Endpoints: map[string]*Endpoint{
			"c1": {ContainerName: "c1", IP: "172.29.96.2", Ports: []PortBinding{
				{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
				{Proto: "udp", HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53}}},
			"c2": {ContainerName: "c2", IP: "172.29.96.3"},
		}},
		"b": {Name: "b", Bridge: "brt-b", Subnet: "10.249.0.0/16", Endpoints: map[string]*Endpoint{
			"c3": {ContainerName: "c3", IP: "10.249.0.2", Ports: []PortBinding{
				{Proto: "tcp", HostIP: "10.249.0.1", HostPort: 2222, ContainerPort: 22}}},
		}},
	}}
	tab, err := m.natTable(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.syncRules(st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.syncRules(&state{Networks: map[string]*Network{}}); err != nil {
			t.Error(err)
		}
	})
	out, err := exec.Command("nft", "list", "table", "ip", m.Table()).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if got, want := strings.Join(lines, "\n")+"\n", tab.String(); got != want {
		t.Errorf("kernel's table:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{"ip saddr 172.29.96.0/20 oifname != \"brt-a\" masquerade",
		"ip daddr 127.0.0.1 udp dport 5353 dnat to 172.29.96.2:53", "tcp dport 8080 dnat to 172.29.96.2:80"} {
		if !strings.Contains(tab.String(), s) {
			t.Errorf("text lacks %q", s)
		}
	}
	// Applied again unchanged, the cache skips the transaction; but a
	// table flushed or deleted behind berth's back (a firewall reload)
	// is made again: otherwise containers went on without isolation or
	// loopback guards until a prune.
	for _, how := range []string{"flush", "delete"} {
		exec.Command("nft", how, "table", "ip", m.Table()).Run()
		if err := m.syncRules(st); err != nil {
			t.Fatal(err)
		}
		if out, _ := exec.Command("nft", "list", "table", "ip", m.Table()).Output(); !strings.Contains(string(out), "dnat") || !strings.Contains(string(out), "chain inbound") {
			t.Errorf("after nft %s table, the unchanged state did not make the table again:\n%s", how, out)
		}
	}
}

// Devices deleted together go in one kernel batch, as a device group:
// the batch takes exactly the devices named, no other.
func TestDeleteLinksTakesOnlyThoseNamed(t *testing.T) {
	fixture.RequireRoot(t)
	names := []string{"bnt-a", "bnt-b", "bnt-keep"}
	for _, n := range names {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteLink(n) })
	}
	keep, _ := netlink.LinkByName("bnt-keep")
	if err := netlink.LinkSetGroup(keep, 7); err != nil {
		t.Fatal(err)
	}
	if err := deleteLinks("bnt-a", "", "bnt-b", "bnt-missing"); err != nil {
		t.Fatal(err)
	}
	if linkExists("bnt-a") || linkExists("bnt-b") {
		t.Error("named devices left")
	}
	if l, err := netlink.LinkByName("bnt-keep"); err != nil || l.Attrs().Group != 7 {
		t.Errorf("a device not named was touched: %v %v", l, err)
	}
	if err := deleteLinks("bnt-missing"); err != nil {
		t.Errorf("deleting what is not there: %v", err)
	}
}

// Without nf_tables in the kernel the error says so, on one line.
func TestNftErrorNamesMissingKernelSupport(t *testing.T) {
	err := nftError(fmt.Errorf("conn.Receive: %w", errors.Join(unix.EOPNOTSUPP, unix.EOPNOTSUPP)))
	if !strings.Contains(err.Error(), "kernel lacks nf_tables support") || strings.Contains(err.Error(), "\n") {
		t.Errorf("got %q", err)
	}
	if err := nftError(fmt.Errorf("dial: %w", unix.EPROTONOSUPPORT)); !strings.Contains(err.Error(), "modprobe nf_tables") {
		t.Errorf("got %q", err)
	}
	if err := nftError(unix.EINVAL); strings.Contains(err.Error(), "lacks") {
		t.Errorf("an unrelated failure blamed on the kernel: %q", err)
	}
}
