package network

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attacks on the host's loopback from a container and from the LAN. A
// container has CAP_NET_RAW by default (as in docker), so it can put any
// IPv4 packet on its eth0; the tests send theirs from the box's netns
// with an AF_PACKET socket, as such a container would.

// sendIPv4UDP puts one UDP datagram src:sport -> dst:dport on ifname (in
// the calling thread's netns) addressed to the MAC dstMAC, bypassing the
// sender's routing.
func sendIPv4UDP(ifname string, dstMAC net.HardwareAddr, src, dst net.IP, sport, dport uint16, payload []byte) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	pkt := make([]byte, 20+8+len(payload))
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64
	pkt[9] = unix.IPPROTO_UDP
	copy(pkt[12:16], src.To4())
	copy(pkt[16:20], dst.To4())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(pkt[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(pkt[20:], sport)
	binary.BigEndian.PutUint16(pkt[22:], dport)
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload))) // checksum 0: none (IPv4)
	copy(pkt[28:], payload)

	proto := uint16(unix.ETH_P_IP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto<<8|proto>>8))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: proto<<8 | proto>>8, Ifindex: l.Attrs().Index, Halen: 6}
	copy(sa.Addr[:], dstMAC)
	return unix.Sendto(fd, pkt, 0, sa)
}

// heard reads datagrams from pc until one says "control" (the probe that
// must get through, sent after the attack) and reports whether "attack"
// came before it.
func heard(t *testing.T, pc net.PacketConn) (attack bool) {
	t.Helper()
	buf := make([]byte, 512)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("the control datagram never came (%v): the test's packets do not get through at all", err)
		}
		switch string(buf[:n]) {
		case "attack":
			attack = true
		case "control":
			return attack
		}
	}
}

// warm sends "warmup" datagrams (send's) until one reaches pc: links just
// made up may drop the first packets, which must not pass for the
// attack's failure.
func warm(t *testing.T, pc net.PacketConn, send func([]byte) error) {
	t.Helper()
	buf := make([]byte, 512)
	for i := 0; i < 25; i++ {
		if err := send([]byte("warmup")); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == "warmup" {
				return
			}
		}
	}
	t.Fatal("no warmup datagram got through: the test's packets do not arrive at all")
}

// linkMAC is the MAC of a host device.
func linkMAC(t *testing.T, name string) net.HardwareAddr {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// The bridge has route_localnet on (for -p 127.0.0.1:... from the host),
// which makes the kernel take packets for 127.0.0.0/8 arriving on it: a
// container reached services bound to the host's 127.0.0.1 only
// (CVE-2020-8558's kind).
func TestContainerCannotReachHostLoopback(t *testing.T) {
	m := newManager(t)
	a := newBox(t, "intruder")
	ep, err := m.Attach(a.opts(""))
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Inspect(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	// A host service: on every address, so that the control datagram to
	// the gateway reaches it too.
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	gwMAC := linkMAC(t, n.Bridge)
	src := net.ParseIP(ep.IP)
	warm(t, pc, func(p []byte) error {
		return inNetns(t, a.cmd.Process.Pid, func() error {
			return sendIPv4UDP("eth0", gwMAC, src, net.ParseIP(n.Gateway), 4000, port, p)
		})
	})
	err = inNetns(t, a.cmd.Process.Pid, func() error {
		if err := sendIPv4UDP("eth0", gwMAC, src, net.IPv4(127, 0, 0, 1), 4000, port, []byte("attack")); err != nil {
			return err
		}
		return sendIPv4UDP("eth0", gwMAC, src, net.ParseIP(n.Gateway), 4000, port, []byte("control"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if heard(t, pc) {
		t.Error("a container's packet to 127.0.0.1 reached a host service on loopback")
	}
	// Nor may it pass for the host itself: a packet from 127.0.0.1 (which
	// route_localnet lets past the martian check; the kernel's source
	// validation drops it, as the address is local) to a service that
	// trusts loopback.
	err = inNetns(t, a.cmd.Process.Pid, func() error {
		if err := sendIPv4UDP("eth0", gwMAC, net.IPv4(127, 0, 0, 1), net.ParseIP(n.Gateway), 4000, port, []byte("attack")); err != nil {
			return err
		}
		return sendIPv4UDP("eth0", gwMAC, src, net.ParseIP(n.Gateway), 4000, port, []byte("control"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if heard(t, pc) {
		t.Error("a container's packet from 127.0.0.1 reached a host service")
	}
}

// A port published on 127.0.0.1 is for the host's own programs. The DNAT
// in prerouting turned packets for 127.0.0.1 arriving from anywhere (a
// container, a neighbour on the LAN sending to the host's MAC) into
// packets for the container before the kernel could drop them as
// martians.
func TestLoopbackPublishedPortStaysLocal(t *testing.T) {
	m := newManager(t)
	srv, intruder, lan := newBox(t, "srv"), newBox(t, "intruder"), newBox(t, "lan")

	// The published port's listener lives in srv's netns.
	var pc net.PacketConn
	if err := inNetns(t, srv.cmd.Process.Pid, func() (err error) {
		pc, err = net.ListenPacket("udp4", "0.0.0.0:9001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// The same port also on every address, for the LAN's control probe
	// (the LAN reaches published ports only).
	epS, err := m.Attach(srv.opts("", PortBinding{Proto: "udp", HostIP: "127.0.0.1", ContainerPort: 9001},
		PortBinding{Proto: "udp", ContainerPort: 9001}))
	if err != nil {
		t.Fatal(err)
	}
	hostPort := uint16(epS.Ports[0].HostPort)
	// The host's own connection to it works.
	warm(t, pc, func(p []byte) error {
		c, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(int(hostPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(p)
		return err
	})

	epI, err := m.Attach(intruder.opts(""))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := m.Inspect(DefaultName)
	gwMAC := linkMAC(t, n.Bridge)
	// From a container on the bridge: to the gateway's MAC, for 127.0.0.1.
	warm(t, pc, func(p []byte) error {
		return inNetns(t, intruder.cmd.Process.Pid, func() error {
			return sendIPv4UDP("eth0", gwMAC, net.ParseIP(epI.IP), net.ParseIP(epS.IP), 4000, 9001, p)
		})
	})
	err = inNetns(t, intruder.cmd.Process.Pid, func() error {
		src := net.ParseIP(epI.IP)
		if err := sendIPv4UDP("eth0", gwMAC, src, net.IPv4(127, 0, 0, 1), 4000, hostPort, []byte("attack")); err != nil {
			return err
		}
		return sendIPv4UDP("eth0", gwMAC, src, net.ParseIP(epS.IP), 4000, 9001, []byte("control"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if heard(t, pc) {
		t.Error("a container reached a port published on 127.0.0.1")
	}

	// From the LAN: lan's netns hangs off a host interface that is no
	// berth bridge (a veth standing for eth0), in a /30 of its own.
	hostEnd, lanEnd := fmt.Sprintf("vbt%05d", lan.cmd.Process.Pid%100000), "lan0"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd}, PeerName: lanEnd,
		PeerNamespace: netlink.NsPid(lan.cmd.Process.Pid)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteLink(hostEnd) })
	hl, err := netlink.LinkByName(hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	hostIP, lanIP := net.IPv4(192, 0, 2, 249), net.IPv4(192, 0, 2, 250) // TEST-NET-1
	if err := netlink.AddrAdd(hl, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP, Mask: net.CIDRMask(30, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	err = inNetns(t, lan.cmd.Process.Pid, func() error {
		l, err := netlink.LinkByName(lanEnd)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: lanIP, Mask: net.CIDRMask(30, 32)}}); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	lanControl := uint16(epS.Ports[1].HostPort)
	warm(t, pc, func(p []byte) error {
		return inNetns(t, lan.cmd.Process.Pid, func() error {
			return sendIPv4UDP(lanEnd, hl.Attrs().HardwareAddr, lanIP, hostIP, 4000, lanControl, p)
		})
	})
	err = inNetns(t, lan.cmd.Process.Pid, func() error {
		if err := sendIPv4UDP(lanEnd, hl.Attrs().HardwareAddr, lanIP, net.IPv4(127, 0, 0, 1), 4000, hostPort, []byte("attack")); err != nil {
			return err
		}
		return sendIPv4UDP(lanEnd, hl.Attrs().HardwareAddr, lanIP, hostIP, 4000, lanControl, []byte("control"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if heard(t, pc) {
		t.Error("a LAN neighbour reached a port published on 127.0.0.1")
	}
}

// User-defined networks are isolated from each other, as docker's: a
// container on one could open connections to any container on another,
// since the host routed between the bridges. Published ports stay
// reachable from every network (they are the host's).
func TestNetworksAreIsolated(t *testing.T) {
	m := newManager(t)
	for _, name := range []string{"berthtest-iso-a", "berthtest-iso-b"} {
		if _, err := m.Create(CreateOpts{Name: name}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Remove(name) })
	}
	a, b, c := newBox(t, "iso-a"), newBox(t, "iso-b"), newBox(t, "iso-c")
	epA, err := m.Attach(a.opts("berthtest-iso-a"))
	if err != nil {
		t.Fatal(err)
	}
	epB, err := m.Attach(b.opts("berthtest-iso-b", PortBinding{Proto: "tcp", ContainerPort: 80}))
	if err != nil {
		t.Fatal(err)
	}
	epC, err := m.Attach(c.opts("")) // the default bridge is a network like the others
	if err != nil {
		t.Fatal(err)
	}
	na, _ := m.Inspect("berthtest-iso-a")
	pub := net.JoinHostPort(na.Gateway, strconv.Itoa(epB.Ports[0].HostPort))
	dial := func(addr string) error {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, x := range []struct {
		from *box
		to   string
	}{{a, epB.IP}, {b, epA.IP}, {c, epA.IP}, {a, epC.IP}} {
		err = inNetns(t, x.from.cmd.Process.Pid, func() error {
			// The published port answers (routing works)...
			if body, err := rawGet(pub); err != nil || body != "hello from iso-b" {
				return fmt.Errorf("published port %s: %q %v", pub, body, err)
			}
			// ...the other network's container does not.
			if dial(x.to+":80") == nil {
				return fmt.Errorf("connected to %s:80 on another network", x.to)
			}
			return nil
		})
		if err != nil {
			t.Errorf("from %s: %v", x.from.name, err)
		}
	}
}

// berth has no IPv6, yet the containers' interfaces had it on, taking
// router advertisements: a container (CAP_NET_RAW) could send one on
// the bridge and become the IPv6 default router of its neighbours, who
// then sent it their IPv6 traffic (CVE-2020-13401's kind). Interfaces
// on berth's networks have IPv6 off, as docker's on networks without
// IPv6.
func TestRogueRouterAdvertisementIgnored(t *testing.T) {
	m := newManager(t)
	a, b := newBox(t, "rogue"), newBox(t, "victim")
	if _, err := m.Attach(a.opts("")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(b.opts("")); err != nil {
		t.Fatal(err)
	}
	ra := routerAdvertisement()
	err := inNetns(t, a.cmd.Process.Pid, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		copy(ra[6:12], l.Attrs().HardwareAddr)
		proto := uint16(unix.ETH_P_IPV6)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto<<8|proto>>8))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Protocol: proto<<8 | proto>>8, Ifindex: l.Attrs().Index, Halen: 6}
		copy(sa.Addr[:], ra[:6])
		for i := 0; i < 3; i++ {
			if err := unix.Sendto(fd, ra, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// An RA is taken as it arrives; allow the kernel a moment.
	var routes []netlink.Route
	var addrs []netlink.Addr
	for i := 0; i < 10; i++ {
		err = inNetns(t, b.cmd.Process.Pid, func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			routes, _ = netlink.RouteList(l, netlink.FAMILY_V6)
			addrs, _ = netlink.AddrList(l, netlink.FAMILY_V6)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(routes) > 0 || len(addrs) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(routes) > 0 || len(addrs) > 0 {
		t.Errorf("the victim's eth0 has IPv6 routes %v and addresses %v (after a neighbour's RA)", routes, addrs)
	}
}

// routerAdvertisement is an Ethernet frame to all nodes (source MAC left
// zero): fe80::bad is the default router, 2001:db8:bad::/64 to
// autoconfigure from.
func routerAdvertisement() []byte {
	icmp := []byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}
	prefix := []byte{3, 4, 64, 0xc0, 0, 0, 0x1c, 0x20, 0, 0, 0x1c, 0x20, 0, 0, 0, 0}
	prefix = append(prefix, net.ParseIP("2001:db8:bad::")...)
	icmp = append(icmp, prefix...)
	src, dst := net.ParseIP("fe80::bad"), net.ParseIP("ff02::1")
	// checksum over the pseudo-header and the message
	var sum uint32
	pseudo := append(append(append([]byte{}, src...), dst...), 0, 0, byte(len(icmp)>>8), byte(len(icmp)), 0, 0, 0, 58)
	for _, part := range [][]byte{pseudo, icmp} {
		for i := 0; i+1 < len(part); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(part[i:]))
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(icmp[2:], ^uint16(sum))
	ip := []byte{0x60, 0, 0, 0, byte(len(icmp) >> 8), byte(len(icmp)), 58, 255}
	ip = append(append(append(ip, src...), dst...), icmp...)
	eth := append([]byte{0x33, 0x33, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x86, 0xdd}, ip...)
	return eth
}

// A container may write its own /etc/hosts, the file berth rewrites when
// a neighbour comes or goes: made huge, it was read whole into memory by
// every berth attaching or detaching a container on its networks. One
// larger than any hosts file is left alone, and the others go on.
func TestHugeHostsFileLeftAlone(t *testing.T) {
	m := newManager(t)
	if _, err := m.Create(CreateOpts{Name: "berthtest-hosts"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove("berthtest-hosts") })
	a, b, c := newBox(t, "big"), newBox(t, "small"), newBox(t, "late")
	if _, err := m.Attach(a.opts("berthtest-hosts")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(b.opts("berthtest-hosts")); err != nil {
		t.Fatal(err)
	}
	// a grows its hosts file (sparse: no disk used) past any sane size.
	const size = 64 << 20
	if err := os.Truncate(a.hosts, size); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(c.opts("berthtest-hosts")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(a.hosts); st.Size() != size {
		t.Errorf("the huge hosts file was rewritten: %d bytes, was %d", st.Size(), size)
	}
	if h, _ := os.ReadFile(b.hosts); !strings.Contains(string(h), "\tlate ") {
		t.Errorf("the neighbour's hosts file lacks the new container:\n%s", h)
	}
}

// lanPeer links box b's netns to the host by a veth that is no berth
// bridge (standing for the host's eth0 and a neighbour on its LAN), in
// 192.0.2.252/30, with a route to subnet via the host.
func lanPeer(t *testing.T, b *box, subnet string) (hostIP, lanIP net.IP) {
	t.Helper()
	hostEnd := fmt.Sprintf("vbl%05d", b.cmd.Process.Pid%100000)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd}, PeerName: "lan0",
		PeerNamespace: netlink.NsPid(b.cmd.Process.Pid)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteLink(hostEnd) })
	hostIP, lanIP = net.IPv4(192, 0, 2, 253), net.IPv4(192, 0, 2, 254)
	mask := net.CIDRMask(30, 32)
	hl, err := netlink.LinkByName(hostEnd)
	if err == nil {
		err = netlink.AddrAdd(hl, &netlink.Addr{IPNet: &net.IPNet{IP: hostIP, Mask: mask}})
	}
	if err == nil {
		err = netlink.LinkSetUp(hl)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, sn, _ := net.ParseCIDR(subnet)
	err = inNetns(t, b.cmd.Process.Pid, func() error {
		l, err := netlink.LinkByName("lan0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: lanIP, Mask: mask}}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: sn, Gw: hostIP})
	})
	if err != nil {
		t.Fatal(err)
	}
	return hostIP, lanIP
}

// A neighbour on the LAN that routes a network's subnet via the host
// reached every port of every container, published or not: the host
// forwarded anything into the bridges. Only published ports (DNATed)
// and answers to the containers' own connections get in, as with
// docker 28.
func TestLANReachesOnlyPublishedPorts(t *testing.T) {
	m := newManager(t)
	web, lan := newBox(t, "web"), newBox(t, "lan")
	ep, err := m.Attach(web.opts("", PortBinding{Proto: "tcp", ContainerPort: 80}))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := m.Inspect(DefaultName)
	hostIP, lanIP := lanPeer(t, lan, n.Subnet)
	// A server on the LAN, for the container's outbound connection.
	var l net.Listener
	if err := inNetns(t, lan.cmd.Process.Pid, func() (err error) {
		l, err = net.Listen("tcp4", net.JoinHostPort(lanIP.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "lan server") }))

	err = inNetns(t, lan.cmd.Process.Pid, func() error {
		pub := net.JoinHostPort(hostIP.String(), strconv.Itoa(ep.Ports[0].HostPort))
		if body, err := rawGet(pub); err != nil || body != "hello from web" {
			return fmt.Errorf("published port %s: %q %v", pub, body, err)
		}
		c, err := net.DialTimeout("tcp4", ep.IP+":80", time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("connected to the container's unpublished %s:80 from the LAN", ep.IP)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	err = inNetns(t, web.cmd.Process.Pid, func() error {
		if body, err := rawGet(l.Addr().String()); err != nil || body != "lan server" {
			return fmt.Errorf("container -> LAN server %s: %q %v", l.Addr(), body, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// An image's EXPOSE keys were read as -p values: with -P, an image
// exposing "0.0.0.0:22:22/tcp" chose the host port and address it took.
func TestExposedPortsChooseNoHostPort(t *testing.T) {
	for _, k := range []string{"0.0.0.0:22:22/tcp", "8080:80", "127.0.0.1::53/udp"} {
		if ps, err := ExposedPorts(map[string]struct{}{k: {}}); err == nil {
			t.Errorf("EXPOSE %q taken: %+v", k, ps)
		}
	}
	ps, err := ExposedPorts(map[string]struct{}{"80/tcp": {}, "53/udp": {}})
	if err != nil || len(ps) != 2 || ps[0].HostPort != 0 || ps[0].HostIP != "" || ps[1].HostPort != 0 {
		t.Errorf("plain EXPOSE: %+v %v", ps, err)
	}
}
