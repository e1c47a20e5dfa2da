package network

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// PortBinding publishes a container port on the host.
type PortBinding struct {
	Proto         string // tcp or udp
	HostIP        string // empty: every host address, loopback included
	HostPort      int    // 0 before a random one is picked
	ContainerPort int
}

// String is docker's `port` form: 80/tcp -> 0.0.0.0:8080.
func (p PortBinding) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%d/%s -> %s", p.ContainerPort, p.Proto, net.JoinHostPort(ip, strconv.Itoa(p.HostPort)))
}

// ParsePort reads one -p value: [[IP:]HOST:]CTR[/tcp|/udp]; a missing or
// empty HOST means a random free host port.
func ParsePort(s string) (PortBinding, error) {
	p := PortBinding{Proto: "tcp"}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		p.Proto = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if p.Proto != "tcp" && p.Proto != "udp" {
			return p, fmt.Errorf("invalid port %q: protocol must be tcp or udp", s)
		}
	}
	var parts []string
	if strings.HasPrefix(rest, "[") {
		return p, fmt.Errorf("invalid port %q: IPv6 host addresses are not supported", s)
	}
	parts = strings.Split(rest, ":")
	var ctr, host string
	switch len(parts) {
	case 1:
		ctr = parts[0]
	case 2:
		host, ctr = parts[0], parts[1]
	case 3:
		p.HostIP, host, ctr = parts[0], parts[1], parts[2]
		ip := net.ParseIP(p.HostIP).To4()
		if ip == nil {
			return p, fmt.Errorf("invalid port %q: host address %q is not an IPv4 address", s, p.HostIP)
		}
		if ip.IsUnspecified() {
			p.HostIP = ""
		} else {
			p.HostIP = ip.String()
		}
	default:
		return p, fmt.Errorf("invalid port %q: want [[IP:]HOSTPORT:]CONTAINERPORT[/PROTO]", s)
	}
	num := func(v, what string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			if strings.Contains(v, "-") {
				return 0, fmt.Errorf("invalid port %q: port ranges are not supported", s)
			}
			return 0, fmt.Errorf("invalid port %q: %s port %q must be 1-65535", s, what, v)
		}
		return n, nil
	}
	var err error
	if p.ContainerPort, err = num(ctr, "container"); err != nil {
		return p, err
	}
	if host != "" {
		if p.HostPort, err = num(host, "host"); err != nil {
			return p, err
		}
	}
	return p, nil
}

// ExposedPorts turns an image's ExposedPorts keys ("80/tcp") into
// bindings with random host ports, for -P.
func ExposedPorts(exposed map[string]struct{}) ([]PortBinding, error) {
	var out []PortBinding
	for k := range exposed {
		// Only PORT[/PROTO]: the host side is the user's to choose. As a
		// -p value, "0.0.0.0:22:22" let an image pick the host port and
		// address it took with -P.
		if strings.Contains(k, ":") {
			return nil, fmt.Errorf("image EXPOSE %q: want PORT[/tcp|/udp]", k)
		}
		p, err := ParsePort(k)
		if err != nil {
			return nil, fmt.Errorf("image EXPOSE %s: %w", k, err)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerPort != out[j].ContainerPort {
			return out[i].ContainerPort < out[j].ContainerPort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// claimPorts gives each binding without a host port a free one and checks
// that none is in use on the host or by another container. The check
// binds the port for a moment: the kernel's answer covers every program,
// not only berth's containers.
func claimPorts(st *state, ports []PortBinding) ([]PortBinding, error) {
	type key struct {
		proto string
		port  int
	}
	ours := map[key]string{}
	for _, n := range st.Networks {
		for _, ep := range n.Endpoints {
			for _, p := range ep.Ports {
				ours[key{p.Proto, p.HostPort}] = ep.ContainerName
			}
		}
	}
	out := make([]PortBinding, 0, len(ports))
	for _, p := range ports {
		if p.HostIP != "" && !isLocalAddr(p.HostIP) {
			return nil, fmt.Errorf("cannot publish on %s: it is not an address of this host", p.HostIP)
		}
		if p.HostPort == 0 {
			for tries := 0; ; tries++ {
				port, err := freePort(p.Proto, p.HostIP)
				if err != nil {
					return nil, err
				}
				if _, taken := ours[key{p.Proto, port}]; !taken || tries > 20 {
					p.HostPort = port
					break
				}
			}
		} else {
			if who, taken := ours[key{p.Proto, p.HostPort}]; taken {
				return nil, fmt.Errorf("host port %d/%s is already published by container %s", p.HostPort, p.Proto, who)
			}
			if err := probePort(p.Proto, p.HostIP, p.HostPort); err != nil {
				return nil, fmt.Errorf("host port %d/%s is already in use: %v", p.HostPort, p.Proto, err)
			}
		}
		ours[key{p.Proto, p.HostPort}] = "this container"
		out = append(out, p)
	}
	return out, nil
}

func isLocalAddr(ip string) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

// probePort binds proto ip:port and releases it at once.
func probePort(proto, ip string, port int) error {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return unwrapOp(err)
		}
		return c.Close()
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return unwrapOp(err)
	}
	return l.Close()
}

func unwrapOp(err error) error {
	if op, ok := err.(*net.OpError); ok {
		return op.Err
	}
	return err
}

// freePort asks the kernel for a free port of proto.
func freePort(proto, ip string) (int, error) {
	addr := net.JoinHostPort(ip, "0")
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
