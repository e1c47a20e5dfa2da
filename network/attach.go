package network

import (
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AttachOpts say which container joins which network, and how.
type AttachOpts struct {
	Network       string // name or ID; empty is the default bridge
	ContainerID   string
	ContainerName string
	Aliases       []string // extra names on user-defined networks
	Pid           int      // the container's init: its netns is joined
	HostsFile     string   // the container's /etc/hosts on the host, kept current
	Hostname      string   // the container's hostname, given its address there
	// GatewayNames are names given the network's gateway, the host's
	// address there (docker's --add-host NAME:host-gateway).
	GatewayNames []string
	Ports        []PortBinding
	IP, MAC      string // chosen by the user (--ip, --mac-address); empty: berth's choice
}

// Attach connects the network namespace of o.Pid to the network: veth,
// address, routes, published ports, hosts entries. The default network
// (and its bridge) is made on first use. On error nothing is left.
func (m *Manager) Attach(o AttachOpts) (*Endpoint, error) {
	if o.Network == "" {
		o.Network = DefaultName
	}
	// Names go into hosts files: one line per entry, so no blanks, no
	// newlines, nothing a resolver would not take.
	for _, a := range append([]string{o.ContainerName}, o.Aliases...) {
		if !nameRe.MatchString(a) {
			return nil, fmt.Errorf("invalid network alias %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", a)
		}
	}
	for _, g := range o.GatewayNames {
		if !nameRe.MatchString(g) {
			return nil, fmt.Errorf("invalid host name %q for the gateway: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", g)
		}
	}
	if !nameRe.MatchString(o.Hostname) {
		o.Hostname = ""
	}
	if procStart(o.Pid) == 0 {
		return nil, fmt.Errorf("container %s: its process %d is not running", o.ContainerName, o.Pid)
	}
	st, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	m.gc(st)
	n, err := find(st, o.Network)
	made := false
	if err != nil && o.Network == DefaultName {
		n, err = m.makeDefault(st)
		made = true
	}
	if err != nil {
		return nil, err
	}
	if _, ok := n.Endpoints[o.ContainerID]; ok {
		return nil, fmt.Errorf("container %s is already connected to network %s", o.ContainerName, n.Name)
	}
	ports, err := claimPorts(st, o.Ports)
	if err != nil {
		return nil, err
	}
	var ip net.IP
	if o.IP != "" {
		if ip, err = reserve(n, o.IP); err != nil {
			return nil, err
		}
	} else if ip, err = allocate(n); err != nil {
		return nil, err
	}
	var mac net.HardwareAddr
	if o.MAC != "" {
		if mac, err = checkMAC(n, o.MAC); err != nil {
			return nil, err
		}
	}
	// A default bridge made for this attach goes again if it fails.
	fail := func(err error) (*Endpoint, error) {
		if made {
			deleteLink(n.Bridge)
		}
		return nil, err
	}
	hunlock, err := hostLock()
	if err != nil {
		return nil, err
	}
	err = ensureBridge(n)
	hunlock()
	if err != nil {
		return fail(err)
	}
	ep := &Endpoint{ContainerID: o.ContainerID, ContainerName: o.ContainerName, IP: ip.String(),
		HostVeth: vethName(o.ContainerID, n), Pid: o.Pid, PidStart: procStart(o.Pid),
		HostsFile: o.HostsFile, Hostname: o.Hostname, GatewayNames: o.GatewayNames, Ports: ports}
	if mac != nil {
		ep.MAC = mac.String() // plumb keeps it
	}
	if len(ep.GatewayNames) > 0 && n.Gateway == "" {
		return fail(fmt.Errorf("host-gateway: network %s has no gateway", n.Name))
	}
	if n.Name != DefaultName {
		ep.Aliases = o.Aliases // the default bridge has no names, as docker's
	}
	if err := plumb(n, ep, "/proc/"+strconv.Itoa(o.Pid)+"/ns/net"); err != nil {
		return fail(err)
	}
	n.Endpoints[o.ContainerID] = ep
	if err := m.apply(st); err != nil {
		deleteLink(ep.HostVeth)
		delete(n.Endpoints, o.ContainerID)
		if made {
			delete(st.Networks, n.Name)
		}
		m.apply(st)
		return fail(err)
	}
	if n.Name == DefaultName && ep.HostsFile != "" {
		writeHosts(st, o.ContainerID, ep.HostsFile)
	}
	refreshHosts(st, n)
	cp := *ep
	return &cp, nil
}

// makeDefault records the default network with a free subnet.
func (m *Manager) makeDefault(st *state) (*Network, error) {
	hunlock, err := hostLock()
	if err != nil {
		return nil, err
	}
	defer hunlock()
	n := &Network{Name: DefaultName, ID: newID(), Driver: "bridge", Bridge: m.defaultBridge(),
		Created: time.Now().UTC(), Endpoints: map[string]*Endpoint{}}
	// A bridge left by an earlier state (a wiped root) must not make its
	// own subnet look taken.
	deleteLink(n.Bridge)
	if err := m.chooseSubnet(st, n, "", ""); err != nil {
		return nil, err
	}
	st.Networks[n.Name] = n
	return n, nil
}

// Detach disconnects the container from network (every network if
// empty): its veth, address, rules and hosts entries go. Detaching what is
// not attached is no error.
func (m *Manager) Detach(containerID, network string) error {
	st, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	if containerID != "" && network == "" && !m.holds(st, containerID) {
		return nil // nothing to undo: no nft transaction for none/host containers
	}
	var only *Network
	if network != "" {
		if only, err = find(st, network); err != nil {
			return err
		}
		if _, ok := only.Endpoints[containerID]; !ok {
			return fmt.Errorf("not connected to network %s", only.Name)
		}
	}
	var touched []*Network
	var gone []string // the container's veths, a test root's default bridge
	hostsFile := ""
	var errs []string
	for _, n := range st.Networks {
		ep, ok := n.Endpoints[containerID]
		if !ok || (only != nil && n != only) {
			continue
		}
		gone = append(gone, ep.HostVeth)
		delete(n.Endpoints, containerID)
		touched = append(touched, n)
		hostsFile = ep.HostsFile
	}
	m.gc(st)
	if d, ok := st.Networks[DefaultName]; ok && !m.isDefaultRoot() && len(d.Endpoints) == 0 {
		// A test root's default bridge goes with its last container, so
		// that temporary roots leave nothing on the host.
		delete(st.Networks, DefaultName)
		gone = append(gone, d.Bridge)
	}
	// The devices go while the state and rules are rewritten, and whether
	// or not that succeeds: the state no longer has them.
	wait := startDeleteLinks(gone...)
	err = m.apply(st)
	if derr := wait(); derr != nil {
		errs = append(errs, derr.Error())
	}
	if err != nil {
		return err
	}
	for _, n := range touched {
		refreshHosts(st, n)
	}
	if hostsFile != "" {
		writeHosts(st, containerID, hostsFile)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// holds reports whether any network has an endpoint of the container or
// of a dead container (which gc would drop).
func (m *Manager) holds(st *state, id string) bool {
	for _, n := range st.Networks {
		for eid, ep := range n.Endpoints {
			if eid == id || procStart(ep.Pid) != ep.PidStart {
				return true
			}
		}
	}
	return false
}

// Endpoints returns the container's attachments, by network name.
func (m *Manager) Endpoints(containerID string) (map[string]*Endpoint, error) {
	st, err := m.load()
	if err != nil {
		return nil, err
	}
	out := map[string]*Endpoint{}
	for name, n := range st.Networks {
		if ep, ok := n.Endpoints[containerID]; ok && procStart(ep.Pid) == ep.PidStart {
			out[name] = ep
		}
	}
	return out, nil
}

// Ports lists the container's published ports.
func (m *Manager) Ports(containerID string) ([]PortBinding, error) {
	eps, err := m.Endpoints(containerID)
	if err != nil {
		return nil, err
	}
	var out []PortBinding
	for _, ep := range eps {
		out = append(out, ep.Ports...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerPort != out[j].ContainerPort {
			return out[i].ContainerPort < out[j].ContainerPort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// hostsMarker starts berth's part of a container's /etc/hosts: what comes
// before it is the engine's, and every rewrite keeps it.
const hostsMarker = "# berth: containers on the same networks\n"

// refreshHosts rewrites the hosts file of every container on a
// user-defined network n (the default bridge has no names but each
// container's own).
func refreshHosts(st *state, n *Network) {
	if n.Name == DefaultName {
		return
	}
	for id, ep := range n.Endpoints {
		if ep.HostsFile != "" {
			writeHosts(st, id, ep.HostsFile)
		}
	}
}

// writeHosts puts the names of the containers sharing a user-defined
// network with id after the marker in its hosts file. The file is
// rewritten in place: it is bind-mounted, so its inode must stay.
func writeHosts(st *state, id, path string) {
	// The container may write its hosts file: one it made larger than
	// any hosts file is left alone, rather than read whole into every
	// berth that attaches or detaches a neighbour.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHostsFile+1))
	if err != nil || len(b) > maxHostsFile {
		return
	}
	s := string(b)
	if i := strings.Index(s, hostsMarker); i >= 0 {
		s = s[:i]
	}
	var lines []string
	var names []string
	for name := range st.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	// Its own name on each of its networks first, the host's names there,
	// then its neighbours'.
	for _, name := range names {
		if ep, in := st.Networks[name].Endpoints[id]; in && ep.Hostname != "" {
			lines = append(lines, ep.IP+"\t"+ep.Hostname)
		}
	}
	for _, name := range names {
		n := st.Networks[name]
		if ep, in := n.Endpoints[id]; in {
			for _, g := range ep.GatewayNames {
				lines = append(lines, n.Gateway+"\t"+g)
			}
		}
	}
	for _, name := range names {
		n := st.Networks[name]
		if _, in := n.Endpoints[id]; !in || name == DefaultName {
			continue
		}
		var ids []string
		for other := range n.Endpoints {
			ids = append(ids, other)
		}
		sort.Strings(ids)
		for _, other := range ids {
			ep := n.Endpoints[other]
			if other == id {
				continue
			}
			hn := append([]string{ep.ContainerName}, ep.Aliases...)
			if len(other) >= 12 {
				hn = append(hn, other[:12])
			}
			lines = append(lines, ep.IP+"\t"+strings.Join(hn, " "))
		}
	}
	if len(lines) > 0 {
		s += hostsMarker + strings.Join(lines, "\n") + "\n"
	}
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(s), 0)
	}
}

// maxHostsFile is the largest container hosts file berth rewrites.
const maxHostsFile = 1 << 20
