package network

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostMTU is the MTU of the interface of the host's default route (1500
// if there is none): containers' packets must fit the way out.
func hostMTU() int {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU > 0 {
					return l.Attrs().MTU
				}
			}
		}
	}
	return 1500
}

// ensureBridge makes n's bridge device with the gateway address and brings
// it up, if it is not there yet (also after a reboot wiped it); it turns
// on forwarding, and route_localnet on the bridge so that connections to
// 127.0.0.1 can be DNATed into it.
func ensureBridge(n *Network) error {
	gw, sn, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return err
	}
	gw = net.ParseIP(n.Gateway)
	l, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: hostMTU()}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating bridge %s: %w", n.Bridge, err)
		}
		if l, err = netlink.LinkByName(n.Bridge); err != nil {
			return fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists on the host and is not a bridge", n.Bridge)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: sn.Mask}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", n.Bridge, addr.IPNet, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s: up: %w", n.Bridge, err)
	}
	for p, v := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                           "1",
		"/proc/sys/net/ipv4/conf/" + n.Bridge + "/route_localnet": "1",
		"/proc/sys/net/ipv6/conf/" + n.Bridge + "/disable_ipv6":   "1",
	} {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil && p != "/proc/sys/net/ipv6/conf/"+n.Bridge+"/disable_ipv6" {
			return fmt.Errorf("sysctl %s: %w", p, err)
		}
	}
	return nil
}

// deleteLink removes a host device if it exists (a veth takes its peer
// with it).
func deleteLink(name string) error {
	if name == "" {
		return nil
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// deleteLinks removes the host devices named (those that exist).
func deleteLinks(names ...string) error { return startDeleteLinks(names...)() }

// startDeleteLinks starts removing the host devices named (those that
// exist), for the caller to do other work meanwhile; the function it
// returns waits for the end. Unregistering a device ends with the kernel
// waiting out RCU grace periods, tens of milliseconds a device here, so
// several devices go in one batch (as a fresh device group, `ip link
// delete group`), sharing the waits.
func startDeleteLinks(names ...string) (wait func() error) {
	var links []netlink.Link
	for _, name := range names {
		if name == "" {
			continue
		}
		if l, err := netlink.LinkByName(name); err == nil {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return func() error { return nil }
	}
	del := func() error {
		var errs []error
		for _, l := range links {
			if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("deleting %s: %w", l.Attrs().Name, err))
			}
		}
		return errors.Join(errs...)
	}
	if len(links) > 1 {
		if g, ok := groupLinks(links); ok {
			del = func() error {
				req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
				req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
				req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(g)))
				if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, unix.ENODEV) {
					return fmt.Errorf("deleting %s: %w", linkNames(links), err)
				}
				return nil
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- del() }()
	return func() error { return <-done }
}

// groupLinks puts links into a device group no other device is in, for
// one RTM_DELLINK to take them all.
func groupLinks(links []netlink.Link) (uint32, bool) {
	all, err := netlink.LinkList()
	if err != nil {
		return 0, false
	}
	used := map[uint32]bool{}
	for _, l := range all {
		used[l.Attrs().Group] = true
	}
	var b [4]byte
	rand.Read(b[:])
	g := binary.NativeEndian.Uint32(b[:]) | 1<<31 // far from the small numbers people use
	if used[g] {
		return 0, false
	}
	for _, l := range links {
		if err := netlink.LinkSetGroup(l, int(g)); err != nil {
			for _, l := range links {
				netlink.LinkSetGroup(l, int(l.Attrs().Group))
			}
			return 0, false
		}
	}
	return g, true
}

func linkNames(links []netlink.Link) string {
	var s []string
	for _, l := range links {
		s = append(s, l.Attrs().Name)
	}
	return strings.Join(s, ", ")
}

// linkNames are the host veth's name and the container's interface name
// for container id on network n: ethN, the first free N in the netns.
func vethName(id string, n *Network) string {
	return fmt.Sprintf("vb%08x", fnv32(id+"/"+n.ID))
}

// macFor derives the MAC from the address (02:42 + IPv4), as docker
// does, so a reused address keeps its MAC in neighbours' caches.
func macFor(ip net.IP) net.HardwareAddr {
	ip = ip.To4()
	return net.HardwareAddr{0x02, 0x42, ip[0], ip[1], ip[2], ip[3]}
}

// plumb makes the veth pair for ep: the host end in n's bridge, the other
// end named ep.IfName inside the netns at nsPath with ep's address, up,
// with lo up and (if it has none yet) a default route via the gateway.
func plumb(n *Network, ep *Endpoint, nsPath string) (err error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("opening the container's network namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("entering the container's network namespace: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	ep.IfName = freeIfName(links)
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	ip := net.ParseIP(ep.IP).To4()
	mac := macFor(ip)
	if m, err := net.ParseMAC(ep.MAC); err == nil && ep.MAC != "" {
		mac = m // --mac-address
	}
	ep.MAC = mac.String()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: ep.HostVeth, MTU: br.Attrs().MTU, MasterIndex: br.Attrs().Index},
		PeerName:         ep.IfName,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if br.Attrs().MTU <= 0 {
		veth.MTU = hostMTU()
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s: %w", ep.HostVeth, err)
	}
	defer func() {
		if err != nil {
			deleteLink(ep.HostVeth)
		}
	}()
	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return err
	}
	// Hairpin: a container reaching its own published port through the
	// host comes back out of the port it went in by.
	netlink.LinkSetHairpin(host, true)
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s up: %w", ep.HostVeth, err)
	}
	in, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("container side of %s: %w", ep.HostVeth, err)
	}
	// No IPv6 on berth's networks, so none on the interface: with it on
	// (the kernel's default), the container took router advertisements,
	// and any neighbour on the bridge could make itself its IPv6 default
	// router. Set before the link is up, so it never gets an address.
	if err := disableIPv6(ns, ep.IfName); err != nil {
		return fmt.Errorf("disabling IPv6 on %s in the container: %w", ep.IfName, err)
	}
	_, sn, _ := net.ParseCIDR(n.Subnet)
	if err := h.AddrAdd(in, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: sn.Mask}}); err != nil {
		return fmt.Errorf("address %s in the container: %w", ip, err)
	}
	if err := h.LinkSetUp(in); err != nil {
		return fmt.Errorf("%s up in the container: %w", ep.IfName, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		h.LinkSetUp(lo)
	}
	routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
	hasDefault := false
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			hasDefault = true
		}
	}
	if !hasDefault {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: in.Attrs().Index, Gw: net.ParseIP(n.Gateway)}); err != nil {
			return fmt.Errorf("default route in the container: %w", err)
		}
	}
	return nil
}

func freeIfName(links []netlink.Link) string {
	have := map[string]bool{}
	for _, l := range links {
		have[l.Attrs().Name] = true
	}
	for i := 0; ; i++ {
		if n := fmt.Sprintf("eth%d", i); !have[n] {
			return n
		}
	}
}

// disableIPv6 sets disable_ipv6 on ifname in the netns ns. /proc/sys/net
// is that of the task opening it, so the write happens on a thread
// inside ns, thrown away afterwards (it is never unlocked).
func disableIPv6(ns netns.NsHandle, ifname string) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		p := "/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6"
		err := os.WriteFile(p, []byte("1"), 0o644)
		if errors.Is(err, os.ErrNotExist) {
			err = nil // a kernel without IPv6: nothing to turn off
		}
		errc <- err
	}()
	return <-errc
}
