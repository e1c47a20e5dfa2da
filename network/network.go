// Package network connects containers' network namespaces to bridges,
// addresses and published ports: bridge networks with their own subnets,
// an address manager that never hands out an address twice, veth pairs,
// outbound NAT and port publishing through an nftables table of berth's
// own, and /etc/hosts entries so that containers on a user-defined network
// find each other by name.
package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/flock"
)

// DefaultName is the network a container joins unless told otherwise.
const DefaultName = "bridge"

// DefaultRoot is the store root whose default bridge is called berth0 and
// whose nftables table is "ip berth"; other roots (tests) get names of
// their own so that they never share a bridge or rules.
const DefaultRoot = "/var/lib/berth"

// Network is a bridge network as berth keeps it.
type Network struct {
	Name    string
	ID      string
	Driver  string // always "bridge"
	Bridge  string // the host's bridge device
	Subnet  string // CIDR
	Gateway string // the bridge's address, containers' default route
	Created time.Time
	// Endpoints are the containers attached, by container ID.
	Endpoints map[string]*Endpoint
	// LastIP is the last address handed out: allocation goes on from
	// there so that a freed address is not reused at once (conntrack
	// entries of its old owner may still point at it).
	LastIP string `json:",omitempty"`
}

// Endpoint is one container's attachment to a network.
type Endpoint struct {
	ContainerID   string
	ContainerName string
	Aliases       []string `json:",omitempty"`
	IP            string
	MAC           string
	HostVeth      string
	IfName        string        // inside the container
	Pid           int           // the container's init when attached
	PidStart      uint64        // its start time, against pid reuse
	HostsFile     string        `json:",omitempty"`
	Hostname      string        `json:",omitempty"`
	GatewayNames  []string      `json:",omitempty"` // names given the gateway in its hosts file
	Ports         []PortBinding `json:",omitempty"`
}

// state is everything kept in <root>/networks/networks.json.
type state struct {
	Networks map[string]*Network
}

// Manager is the networks of one store root.
type Manager struct {
	Root string // the store root
	dir  string
}

// Open returns the network manager of the store at root.
func Open(root string) *Manager {
	abs, err := filepath.Abs(root)
	if err != nil {
		abs = root
	}
	return &Manager{Root: abs, dir: filepath.Join(abs, "networks")}
}

func (m *Manager) isDefaultRoot() bool { return m.Root == DefaultRoot }

// rootTag distinguishes this root's host-wide names (bridge, table).
func (m *Manager) rootTag() string { return fmt.Sprintf("%08x", fnv32(m.Root)) }

// Table is the nftables table (family ip) holding this root's rules.
func (m *Manager) Table() string {
	if m.isDefaultRoot() {
		return "berth"
	}
	return "berth_" + m.rootTag()
}

// defaultBridge is the device of the default network.
func (m *Manager) defaultBridge() string {
	if m.isDefaultRoot() {
		return "berth0"
	}
	return "brt" + m.rootTag()
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// lock serializes every change to this root's networks across processes.
func (m *Manager) lock() (func(), error) {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	return flock.Lock(filepath.Join(m.dir, ".lock"), true)
}

// hostLock serializes subnet choice and bridge creation across store
// roots: two roots must not pick the same free subnet at once.
func hostLock() (func(), error) {
	if err := os.MkdirAll("/run/berth", 0o755); err != nil {
		return nil, err
	}
	return flock.Lock("/run/berth/network.lock", true)
}

// begin takes this root's network lock and loads the state under it;
// the caller saves (apply) before it unlocks.
func (m *Manager) begin() (*state, func(), error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, nil, err
	}
	st, err := m.load()
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return st, unlock, nil
}

func (m *Manager) statePath() string { return filepath.Join(m.dir, "networks.json") }

func (m *Manager) load() (*state, error) {
	st := &state{Networks: map[string]*Network{}}
	b, err := os.ReadFile(m.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("networks: corrupt state %s: %w", m.statePath(), err)
	}
	if st.Networks == nil {
		st.Networks = map[string]*Network{}
	}
	for _, n := range st.Networks {
		if n.Endpoints == nil {
			n.Endpoints = map[string]*Endpoint{}
		}
	}
	return st, nil
}

// save writes the state atomically (temp file + rename).
func (m *Manager) save(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.statePath())
}

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CreateOpts are `network create`'s flags.
type CreateOpts struct {
	Name    string
	Subnet  string // CIDR; empty picks a free one
	Gateway string // empty is the subnet's first address
}

// Create makes a user-defined bridge network and its bridge device.
func (m *Manager) Create(o CreateOpts) (*Network, error) {
	switch {
	case o.Name == DefaultName || o.Name == "host" || o.Name == "none":
		return nil, fmt.Errorf("network name %q is reserved", o.Name)
	case !nameRe.MatchString(o.Name) || strings.HasPrefix(o.Name, "container:"):
		return nil, fmt.Errorf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", o.Name)
	}
	st, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	hunlock, err := hostLock()
	if err != nil {
		return nil, err
	}
	defer hunlock()
	if _, ok := st.Networks[o.Name]; ok {
		return nil, fmt.Errorf("network %s already exists", o.Name)
	}
	n := &Network{Name: o.Name, ID: newID(), Driver: "bridge", Created: time.Now().UTC(),
		Endpoints: map[string]*Endpoint{}}
	n.Bridge = "br-" + n.ID[:12]
	if err := m.chooseSubnet(st, n, o.Subnet, o.Gateway); err != nil {
		return nil, err
	}
	if err := ensureBridge(n); err != nil {
		deleteLink(n.Bridge)
		return nil, err
	}
	st.Networks[n.Name] = n
	if err := m.apply(st); err != nil {
		deleteLink(n.Bridge)
		return nil, err
	}
	return n, nil
}

// List returns the networks, the default one first (if made yet).
func (m *Manager) List() ([]*Network, error) {
	st, err := m.load()
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, n := range st.Networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Name == DefaultName) != (out[j].Name == DefaultName) {
			return out[i].Name == DefaultName
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Inspect returns one network by name or ID prefix.
func (m *Manager) Inspect(ref string) (*Network, error) {
	st, err := m.load()
	if err != nil {
		return nil, err
	}
	return find(st, ref)
}

func find(st *state, ref string) (*Network, error) {
	if n, ok := st.Networks[ref]; ok {
		return n, nil
	}
	var match *Network
	if len(ref) >= 3 {
		for _, n := range st.Networks {
			if strings.HasPrefix(n.ID, ref) {
				if match != nil {
					return nil, fmt.Errorf("network ID prefix %q is ambiguous", ref)
				}
				match = n
			}
		}
	}
	if match == nil {
		return nil, fmt.Errorf("network %s not found", ref)
	}
	return match, nil
}

// Remove deletes a user-defined network that no running container uses.
func (m *Manager) Remove(ref string) error {
	st, unlock, err := m.begin()
	if err != nil {
		return err
	}
	defer unlock()
	n, err := find(st, ref)
	if err != nil {
		return err
	}
	if n.Name == DefaultName {
		return fmt.Errorf("network %s is berth's default network and cannot be removed", n.Name)
	}
	m.gc(st)
	if len(n.Endpoints) > 0 {
		return fmt.Errorf("network %s is in use by container(s) %s: disconnect or remove them first", n.Name, strings.Join(endpointNames(n), ", "))
	}
	delete(st.Networks, n.Name)
	if err := m.apply(st); err != nil {
		return err
	}
	return deleteLink(n.Bridge)
}

func endpointNames(n *Network) []string {
	var names []string
	for _, ep := range n.Endpoints {
		names = append(names, ep.ContainerName)
	}
	sort.Strings(names)
	return names
}

// Prune drops what dead containers left (addresses, rules, hosts
// entries) and removes the user-defined networks no container uses; it
// returns the names of the networks removed.
func (m *Manager) Prune() ([]string, error) { return m.PruneExcept(nil) }

// PruneExcept is Prune keeping the networks named in keep (those that
// containers are configured with, even stopped ones).
func (m *Manager) PruneExcept(keep map[string]bool) ([]string, error) {
	st, unlock, err := m.begin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	m.gc(st)
	var removed, bridges []string
	for name, n := range st.Networks {
		if len(n.Endpoints) == 0 && !keep[name] && (name != DefaultName || !m.isDefaultRoot()) {
			delete(st.Networks, name)
			bridges = append(bridges, n.Bridge)
			if name != DefaultName {
				removed = append(removed, name)
			}
		}
	}
	// prune is also the repair path when the table was flushed behind
	// berth's back: apply it whatever the cache says.
	os.Remove(m.rulesCache())
	if err := m.apply(st); err != nil {
		return nil, err
	}
	for _, b := range bridges {
		deleteLink(b)
	}
	sort.Strings(removed)
	return removed, nil
}

// gc drops endpoints whose container's init is gone (berth was killed
// before it could detach): their veth died with the netns, their address,
// rules and hosts entries go here. The caller holds the lock and saves.
func (m *Manager) gc(st *state) {
	var touched []*Network
	for _, n := range st.Networks {
		for id, ep := range n.Endpoints {
			if procStart(ep.Pid) != ep.PidStart {
				delete(n.Endpoints, id)
				deleteLink(ep.HostVeth)
				touched = append(touched, n)
			}
		}
	}
	for _, n := range touched {
		refreshHosts(st, n)
	}
}

// apply saves the state and makes the host's nftables table match it.
func (m *Manager) apply(st *state) error {
	if err := m.save(st); err != nil {
		return err
	}
	return m.syncRules(st)
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// procStart is the start time of pid (field 22 of /proc/pid/stat), 0 if
// it does not exist or is a zombie.
func procStart(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// Collect drops what containers that died without detaching left behind
// (berth or its monitor killed): addresses, rules, hosts entries, and a
// test root's default bridge once nothing uses it.
func (m *Manager) Collect() error {
	if _, err := os.Stat(m.statePath()); errors.Is(err, os.ErrNotExist) {
		return nil // no network was ever used: nothing to lock or sync
	}
	return m.Detach("", "")
}
