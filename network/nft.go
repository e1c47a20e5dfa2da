package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// natTable is this root's whole nftables table as the state describes it:
// port publishing (DNAT in prerouting for traffic from outside and
// containers, in output for the host's own connections, loopback
// included), outbound masquerade for every network, and masquerade of
// loopback-sourced connections into a bridge (route_localnet lets them be
// routed there, the replies need an address the container can answer).
type natTable struct {
	name    string
	nets    []natNet     // by network name
	publish []publishing // by network, then container ID
}

type natNet struct {
	bridge string
	subnet *net.IPNet
}

type publishing struct {
	proto    string // tcp or udp
	hostIP   net.IP // nil: every local address
	hostPort uint16
	ip       net.IP // the container's
	port     uint16
}

func (m *Manager) natTable(st *state) (*natTable, error) {
	t := &natTable{name: m.Table()}
	var names []string
	for name := range st.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := st.Networks[name]
		_, sn, err := net.ParseCIDR(n.Subnet)
		if err != nil || sn.IP.To4() == nil {
			return nil, fmt.Errorf("network %s: bad subnet %q in the state", name, n.Subnet)
		}
		t.nets = append(t.nets, natNet{bridge: n.Bridge, subnet: sn})
		var ids []string
		for id := range n.Endpoints {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			ep := n.Endpoints[id]
			ip := net.ParseIP(ep.IP).To4()
			if ip == nil {
				return nil, fmt.Errorf("container %s: bad address %q in the state", ep.ContainerName, ep.IP)
			}
			for _, p := range ep.Ports {
				pub := publishing{proto: p.Proto, hostPort: uint16(p.HostPort), ip: ip, port: uint16(p.ContainerPort)}
				if p.HostIP != "" {
					if pub.hostIP = net.ParseIP(p.HostIP).To4(); pub.hostIP == nil {
						return nil, fmt.Errorf("container %s: bad host address %q in the state", ep.ContainerName, p.HostIP)
					}
				}
				t.publish = append(t.publish, pub)
			}
		}
	}
	return t, nil
}

// String is the table in nft's language: what `nft list table` shows of
// it, the rules cache's key, and what a person debugging reads.
func (t *natTable) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", t.name)
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tip daddr != 127.0.0.0/8 fib daddr type local jump publish\n\t}\n")
	b.WriteString("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tfib daddr type local jump publish\n\t}\n")
	b.WriteString("\tchain publish {\n")
	for _, p := range t.publish {
		b.WriteString("\t\t")
		if p.hostIP != nil {
			b.WriteString("ip daddr " + p.hostIP.String() + " ")
		}
		fmt.Fprintf(&b, "%s dport %d dnat to %s:%d\n", p.proto, p.hostPort, p.ip, p.port)
	}
	b.WriteString("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	for _, n := range t.nets {
		br := `"` + n.bridge + `"`
		fmt.Fprintf(&b, "\t\tip saddr %s oifname != %s masquerade\n", n.subnet, br)
		fmt.Fprintf(&b, "\t\toifname %s ip saddr 127.0.0.0/8 masquerade\n", br)
		fmt.Fprintf(&b, "\t\toifname %s ip saddr %s ct status dnat masquerade\n", br, n.subnet)
	}
	b.WriteString("\t}\n\tchain guard {\n\t\ttype filter hook prerouting priority raw; policy accept;\n")
	for _, n := range t.nets {
		fmt.Fprintf(&b, "\t\tiifname \"%s\" ip daddr 127.0.0.0/8 drop\n", n.bridge)
	}
	b.WriteString("\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, n := range t.nets {
		fmt.Fprintf(&b, "\t\toifname \"%s\" iifname != \"%s\" jump inbound\n", n.bridge, n.bridge)
	}
	b.WriteString("\t}\n\tchain inbound {\n\t\tct status dnat return\n\t\tct state established,related return\n\t\tdrop\n")
	b.WriteString("\t}\n}\n")
	return b.String()
}

// queue adds the table's chains and rules to c's batch, expression for
// expression what nft makes of String().
func (t *natTable) queue(c *nftables.Conn, tab *nftables.Table) {
	accept := nftables.ChainPolicyAccept
	base := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: tab, Type: nftables.ChainTypeNAT,
			Hooknum: hook, Priority: prio, Policy: &accept})
	}
	pre := base("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := base("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	pub := c.AddChain(&nftables.Chain{Name: "publish", Table: tab})
	post := base("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	add := func(ch *nftables.Chain, e ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: e})
	}

	loopback := &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}
	toLocal := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: pub.Name}}
	// ip daddr != 127.0.0.0/8 fib daddr type local jump publish: a packet
	// for 127/8 from outside the host (a container, the LAN) is never
	// DNATed, so the kernel drops it as a martian; otherwise a port
	// published on 127.0.0.1 was open to anyone who could reach the
	// host's MAC.
	add(pre, append([]expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127}}}, toLocal...)...)
	// fib daddr type local jump publish
	add(out, toLocal...)
	for _, p := range t.publish {
		var e []expr.Any
		if p.hostIP != nil {
			e = append(e, ipMatch(16, &net.IPNet{IP: p.hostIP, Mask: net.CIDRMask(32, 32)})...)
		}
		proto := byte(unix.IPPROTO_TCP)
		if p.proto == "udp" {
			proto = unix.IPPROTO_UDP
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.hostPort)},
			&expr.Immediate{Register: 1, Data: []byte(p.ip)},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
		add(pub, e...)
	}
	for _, n := range t.nets {
		oif := func(op expr.CmpOp) []expr.Any {
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
				&expr.Cmp{Op: op, Register: 1, Data: ifname(n.bridge)},
			}
		}
		// ip saddr SUBNET oifname != BRIDGE masquerade
		add(post, append(append(ipMatch(12, n.subnet), oif(expr.CmpOpNeq)...), &expr.Masq{})...)
		// oifname BRIDGE ip saddr 127.0.0.0/8 masquerade
		add(post, append(append(oif(expr.CmpOpEq), ipMatch(12, loopback)...), &expr.Masq{})...)
		// oifname BRIDGE ip saddr SUBNET ct status dnat masquerade: a
		// container reaching a published port of the host through its own
		// bridge; replies must come back through the host.
		e := append(oif(expr.CmpOpEq), ipMatch(12, n.subnet)...)
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Masq{})
		add(post, e...)
	}
	// The bridges have route_localnet on (the host's connections to
	// 127.0.0.1:PORT are DNATed into them, and their replies come back
	// for 127.0.0.1), which also made the kernel take a container's
	// packets for 127.0.0.0/8: the host's loopback-only services were
	// open to containers. Replies to the host are still addressed to the
	// gateway when this runs (before conntrack undoes the masquerade).
	raw := nftables.ChainPriorityRaw
	guard := c.AddChain(&nftables.Chain{Name: "guard", Table: tab, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: raw, Policy: &accept})
	for _, n := range t.nets {
		// iifname BRIDGE ip daddr 127.0.0.0/8 drop
		e := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(n.bridge)},
		}
		e = append(e, ipMatch(16, loopback)...)
		add(guard, append(e, &expr.Verdict{Kind: expr.VerdictDrop})...)
	}
	// What the host forwards into a bridge from elsewhere (another
	// network, the LAN) is dropped, unless it goes to a published port
	// (DNATed) or answers a connection made from inside: networks are
	// isolated from each other, and a neighbour routing a subnet via the
	// host reaches no unpublished port (as with docker 28).
	filter := nftables.ChainPriorityFilter
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: tab, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: filter, Policy: &accept})
	in := c.AddChain(&nftables.Chain{Name: "inbound", Table: tab})
	dev := func(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
		return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: ifname(name)}}
	}
	for _, n := range t.nets {
		// oifname BRIDGE iifname != BRIDGE jump inbound
		e := append(dev(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.bridge), dev(expr.MetaKeyIIFNAME, expr.CmpOpNeq, n.bridge)...)
		add(fwd, append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: in.Name})...)
	}
	ctBits := func(key expr.CtKey, bits uint32, v expr.VerdictKind) []expr.Any {
		return []expr.Any{
			&expr.Ct{Register: 1, Key: key},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Verdict{Kind: v}}
	}
	add(in, ctBits(expr.CtKeySTATUS, ipsDstNAT, expr.VerdictReturn)...)
	add(in, ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.VerdictReturn)...)
	add(in, &expr.Verdict{Kind: expr.VerdictDrop})
}

// ipMatch matches the IPv4 header's address at off (12 source, 16
// destination) against sn as nft does: a byte-aligned prefix compares
// only its bytes, any other is masked first.
func ipMatch(off uint32, sn *net.IPNet) []expr.Any {
	ones, _ := sn.Mask.Size()
	ip := sn.IP.To4()
	if ones%8 == 0 {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(ones / 8)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip[:ones/8])},
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(sn.Mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip)},
	}
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// zero-padded.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// rulesCache holds the table last applied: a container without ports
// joining or leaving a network that stays changes nothing, and skipping
// the transaction saves a netlink round trip a start. It lives under
// /run, so that after a reboot (which empties the kernel's tables) it is
// gone too.
func (m *Manager) rulesCache() string { return "/run/berth/nft-" + m.Table() + ".rules" }

// syncRules replaces the table with the one the state describes, in one
// netlink batch: the kernel applies all of it or nothing. Adding the
// table before deleting it makes the delete safe when it is missing.
func (m *Manager) syncRules(st *state) error {
	t, err := m.natTable(st)
	if err != nil {
		return err
	}
	text := t.String()
	if len(t.nets) == 0 {
		text = "" // no networks, no table
	}
	if b, err := os.ReadFile(m.rulesCache()); err == nil && string(b) == text && tableIntact(t.name) {
		return nil
	}
	os.Remove(m.rulesCache()) // unknown until the batch succeeds
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nftError(err)
	}
	// Closing the socket waits for the kernel to free the replaced table
	// (an RCU grace period, ~10 ms here): let that happen off the path.
	defer func() { go c.CloseLasting() }()
	tab := &nftables.Table{Name: t.name, Family: nftables.TableFamilyIPv4}
	c.AddTable(tab)
	c.DelTable(tab)
	if len(t.nets) > 0 {
		c.AddTable(tab)
		t.queue(c, tab)
	}
	if err := c.Flush(); err != nil {
		return nftError(err)
	}
	if text == "" {
		return nil // no table, no cache: temporary roots leave nothing in /run
	}
	if err := os.MkdirAll("/run/berth", 0o755); err == nil {
		os.WriteFile(m.rulesCache(), []byte(text), 0o600)
	}
	return nil
}

// tableIntact reports whether the kernel still has the table's inbound
// chain with its rules (one netlink dump): a firewall reload (`nft flush
// ruleset`, `nft -f` of a ruleset) deletes or empties it, and with the
// cache alone berth went on without isolation or loopback guards, and
// without NAT, until a prune.
func tableIntact(name string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	rules, err := c.GetRules(&nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}, &nftables.Chain{Name: "inbound"})
	return err == nil && len(rules) == 3
}

// nftError is one line, naming the missing kernel support when that is
// the cause.
func nftError(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	for _, e := range []error{unix.EPROTONOSUPPORT, unix.EOPNOTSUPP, unix.EAFNOSUPPORT} {
		if errors.Is(err, e) {
			return fmt.Errorf("nftables: the kernel lacks nf_tables support, which berth's bridge networking needs (modprobe nf_tables): %s", msg)
		}
	}
	return fmt.Errorf("nftables: %s", msg)
}

// ipsDstNAT is the conntrack status bit of a DNATed connection
// (IPS_DST_NAT in linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5
