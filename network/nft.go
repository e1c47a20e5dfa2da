package network

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// rules renders this root's whole nftables table from the state: port
// publishing (DNAT in prerouting for traffic from outside and containers,
// in output for the host's own connections, loopback included), outbound
// masquerade for every network, and masquerade of loopback-sourced
// connections into a bridge (route_localnet lets them be routed there,
// the replies need an address the container can answer).
func (m *Manager) rules(st *state) string {
	var names []string
	for name := range st.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	var dnat, post []string
	for _, name := range names {
		n := st.Networks[name]
		br := quote(n.Bridge)
		post = append(post,
			fmt.Sprintf("ip saddr %s oifname != %s masquerade", n.Subnet, br),
			fmt.Sprintf("oifname %s ip saddr 127.0.0.0/8 masquerade", br),
			// a container reaching a published port of the host through
			// its own bridge: replies must come back through the host.
			fmt.Sprintf("oifname %s ip saddr %s ct status dnat masquerade", br, n.Subnet))
		var ids []string
		for id := range n.Endpoints {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			ep := n.Endpoints[id]
			for _, p := range ep.Ports {
				r := ""
				if p.HostIP != "" {
					r = "ip daddr " + p.HostIP + " "
				}
				dnat = append(dnat, fmt.Sprintf("%s%s dport %d dnat to %s:%d", r, p.Proto, p.HostPort, ep.IP, p.ContainerPort))
			}
		}
	}
	var b strings.Builder
	t := m.Table()
	// Declaring then deleting makes the delete safe when the table does
	// not exist yet; the whole file is one transaction.
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\n", t, t)
	if len(names) == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "table ip %s {\n", t)
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tfib daddr type local jump publish\n\t}\n")
	b.WriteString("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tfib daddr type local jump publish\n\t}\n")
	b.WriteString("\tchain publish {\n")
	for _, r := range dnat {
		b.WriteString("\t\t" + r + "\n")
	}
	b.WriteString("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	for _, r := range post {
		b.WriteString("\t\t" + r + "\n")
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

func quote(s string) string { return `"` + s + `"` }

// rulesCache holds the text last applied to the table: a container
// without ports joining or leaving a network that stays changes nothing,
// and skipping nft saves ~20 ms a start. It lives under /run, so that
// after a reboot (which empties the kernel's tables) it is gone too.
func (m *Manager) rulesCache() string { return "/run/berth/nft-" + m.Table() + ".rules" }

// syncRules replaces the table with the one the state describes, in one
// nft transaction: either all of it applies or nothing changes.
func (m *Manager) syncRules(st *state) error {
	text := m.rules(st)
	if b, err := os.ReadFile(m.rulesCache()); err == nil && string(b) == text {
		return nil
	}
	os.Remove(m.rulesCache()) // unknown until nft succeeds
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if _, lerr := exec.LookPath("nft"); lerr != nil {
			return fmt.Errorf("nft not found: berth's bridge networking needs nftables (apt-get install nftables)")
		}
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(out.String()))
	}
	if len(st.Networks) == 0 {
		return nil // no table, no cache: temporary roots leave nothing in /run
	}
	if err := os.MkdirAll("/run/berth", 0o755); err == nil {
		os.WriteFile(m.rulesCache(), []byte(text), 0o600)
	}
	return nil
}
