package network

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
)

// subnetPool is where subnets are picked from when none is given: the
// first one that overlaps no host route and no other network is taken.
var subnetPool = func() []string {
	p := []string{"172.30.0.0/16", "172.31.0.0/16"}
	for i := 18; i <= 29; i++ {
		p = append(p, fmt.Sprintf("172.%d.0.0/16", i))
	}
	for i := 200; i < 250; i++ {
		p = append(p, fmt.Sprintf("10.%d.0.0/16", i))
	}
	return p
}()

// chooseSubnet sets n's subnet and gateway from the user's (validated) or
// the first free one of the pool. Callers hold the host lock.
func (m *Manager) chooseSubnet(st *state, n *Network, subnet, gateway string) error {
	taken, err := takenNets(st)
	if err != nil {
		return err
	}
	if subnet == "" {
		if gateway != "" {
			return fmt.Errorf("--gateway needs --subnet")
		}
		for _, s := range subnetPool {
			_, cand, _ := net.ParseCIDR(s)
			if overlapsAny(cand, taken) == "" {
				n.Subnet = cand.String()
				n.Gateway = ipAdd(cand.IP, 1).String()
				return nil
			}
		}
		return fmt.Errorf("no free subnet left in berth's pool: give one with --subnet")
	}
	ip, sn, err := net.ParseCIDR(subnet)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("invalid subnet %q: want an IPv4 CIDR like 172.20.0.0/16", subnet)
	}
	if !ip.Equal(sn.IP) {
		return fmt.Errorf("invalid subnet %q: host bits are set (did you mean %s?)", subnet, sn)
	}
	if ones, _ := sn.Mask.Size(); ones > 30 || ones < 8 {
		return fmt.Errorf("invalid subnet %q: the prefix must be between /8 and /30", subnet)
	}
	if what := overlapsAny(sn, taken); what != "" {
		return fmt.Errorf("subnet %s overlaps %s", sn, what)
	}
	gw := ipAdd(sn.IP, 1)
	if gateway != "" {
		gw = net.ParseIP(gateway).To4()
		if gw == nil {
			return fmt.Errorf("invalid gateway %q: want an IPv4 address", gateway)
		}
		if !sn.Contains(gw) || gw.Equal(sn.IP) || gw.Equal(broadcast(sn)) {
			return fmt.Errorf("gateway %s is not a host address of subnet %s", gw, sn)
		}
	}
	n.Subnet = sn.String()
	n.Gateway = gw.String()
	return nil
}

// takenNet is an address range in use and who uses it.
type takenNet struct {
	net  *net.IPNet
	what string
}

// takenNets are this root's networks and the host's routes (which include
// other roots' bridges).
func takenNets(st *state) ([]takenNet, error) {
	var t []takenNet
	for _, n := range st.Networks {
		_, sn, err := net.ParseCIDR(n.Subnet)
		if err == nil {
			t = append(t, takenNet{sn, "network " + n.Name + " (" + n.Subnet + ")"})
		}
	}
	for _, r := range []string{"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"} {
		_, sn, _ := net.ParseCIDR(r)
		t = append(t, takenNet{sn, "the reserved range " + r})
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing the host's routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue // the default route overlaps everything by design
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		dev := ""
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			dev = " dev " + l.Attrs().Name
		}
		t = append(t, takenNet{r.Dst, "the host route " + r.Dst.String() + dev})
	}
	return t, nil
}

func overlapsAny(sn *net.IPNet, taken []takenNet) string {
	for _, t := range taken {
		if t.net.Contains(sn.IP) || sn.Contains(t.net.IP) {
			return t.what
		}
	}
	return ""
}

func ipAdd(ip net.IP, n uint32) net.IP {
	v := binary.BigEndian.Uint32(ip.To4()) + n
	out := make(net.IP, 4)
	binary.BigEndian.PutUint32(out, v)
	return out
}

func broadcast(sn *net.IPNet) net.IP {
	ip := sn.IP.To4()
	out := make(net.IP, 4)
	for i := range out {
		out[i] = ip[i] | ^sn.Mask[i]
	}
	return out
}

// allocate hands out the next free address of n after its last one
// (wrapping), never the network, gateway or broadcast address nor one an
// endpoint holds. Callers hold the lock and save the state.
func allocate(n *Network) (net.IP, error) {
	_, sn, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{n.Gateway: true}
	for _, ep := range n.Endpoints {
		used[ep.IP] = true
	}
	ones, bits := sn.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	base := binary.BigEndian.Uint32(sn.IP.To4())
	start := uint32(0)
	if last := net.ParseIP(n.LastIP).To4(); last != nil && sn.Contains(last) {
		start = binary.BigEndian.Uint32(last) - base
	}
	for i := uint32(1); i <= size; i++ {
		off := (start + i) % size
		if off == 0 || off == size-1 {
			continue // network and broadcast addresses
		}
		ip := ipAdd(sn.IP, off)
		if !used[ip.String()] {
			n.LastIP = ip.String()
			return ip, nil
		}
	}
	return nil, fmt.Errorf("network %s: no free address left in %s", n.Name, n.Subnet)
}

// reserve checks that addr, a user's choice, can be n's next endpoint's:
// an IPv4 host address of a user-defined network's subnet that nobody
// has, nor the gateway.
func reserve(n *Network, addr string) (net.IP, error) {
	if n.Name == DefaultName {
		return nil, fmt.Errorf("--ip %s: a chosen address needs a user-defined network (the default bridge assigns its own)", addr)
	}
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return nil, fmt.Errorf("--ip %q: not an IPv4 address", addr)
	}
	_, sn, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return nil, err
	}
	ones, bits := sn.Mask.Size()
	off := binary.BigEndian.Uint32(ip) - binary.BigEndian.Uint32(sn.IP.To4())
	if !sn.Contains(ip) || off == 0 || off == uint32(1)<<uint(bits-ones)-1 {
		return nil, fmt.Errorf("--ip %s: not a host address of network %s (%s)", addr, n.Name, n.Subnet)
	}
	if ip.String() == n.Gateway {
		return nil, fmt.Errorf("--ip %s: network %s's gateway", addr, n.Name)
	}
	for _, ep := range n.Endpoints {
		if ep.IP == ip.String() {
			return nil, fmt.Errorf("--ip %s: in use on network %s by %s", addr, n.Name, ep.ContainerName)
		}
	}
	return ip, nil
}

// checkMAC checks a user's --mac-address: a unicast address no other
// endpoint of n has.
func checkMAC(n *Network, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
		return nil, fmt.Errorf("--mac-address %q: want a unicast Ethernet address like 02:42:ac:11:00:02", s)
	}
	for _, ep := range n.Endpoints {
		if strings.EqualFold(ep.MAC, mac.String()) {
			return nil, fmt.Errorf("--mac-address %s: in use on network %s by %s", s, n.Name, ep.ContainerName)
		}
	}
	return mac, nil
}
