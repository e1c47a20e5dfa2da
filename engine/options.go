package engine

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Options are what `berth create` and `berth run` are told: the container's
// configuration on top of the image's. They are kept in the container
// record so that every start generates the same spec.
type Options struct {
	Name        string
	Image       string
	Platform    string
	Args        []string // command after the image; replaces the image's Cmd
	Entrypoint  *string  // nil keeps the image's; "" clears it
	Env         []string // KEY=VAL or KEY (taken from berth's environment)
	EnvFiles    []string
	Workdir     string
	User        string
	Hostname    string
	AddHosts    []string // host:ip
	Volumes     []string // -v SRC:DST[:ro]
	Mounts      []string // --mount type=...,source=...,target=...
	Tmpfs       []string // --tmpfs DST[:opts]
	ReadOnly    bool
	Privileged  bool
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Memory      string
	MemorySwap  string
	CPUs        string
	CPUShares   int64
	PidsLimit   int64
	Ulimits     []string // name=soft[:hard]
	Init        bool
	StopSignal  string
	StopTimeout int    // seconds; -1 = default (10)
	Restart     string // no (default), always, unless-stopped, on-failure[:N]
	// Namespaces: "" is the container's own; host, or container:NAME to
	// share another's (pid, ipc); cgroupns: private (default) or host.
	PidMode, IpcMode, UtsMode, CgroupnsMode string
	Sysctls                                 []string // K=V
	ShmSize                                 string   // /dev/shm size (64m)
	DNS, DNSSearch, DNSOptions              []string // resolv.conf's nameserver, search, options lines
	GroupAdd                                []string // supplementary groups, names or numbers
	Devices                                 []string // HOST[:CONTAINER[:PERMS]]
	CPUsetCPUs, CPUsetMems                  string
	MemoryReservation                       string
	CPUPeriod, CPUQuota                     int64 // microseconds (--cpus sets both)
	BlkioWeight                             uint16
	MemorySwappiness                        *int64 // nil or -1: the kernel's
	OOMKillDisable                          bool
	OOMScoreAdj                             int
	IP, MACAddress                          string // on its user-defined network
	// Health checks: the image's HEALTHCHECK, or these over it.
	HealthCmd, HealthInterval, HealthTimeout, HealthStartPeriod string
	HealthRetries                                               int
	NoHealthcheck                                               bool
	Expose                                                      []string // --expose PORT[/PROTO], for -P
	VolumesFrom                                                 []string // NAME[:ro|rw]
	LogDriver                                                   string   // json-file (default) or none
	Network                                                     string   // none (default), host, container:NAME, bridge or a network's name
	Publish                                                     []string // -p [[IP:]HOST:]CTR[/PROTO] (bridge networks)
	PublishAll                                                  bool     // -P: every EXPOSEd port on a random host port
	NetAliases                                                  []string // --network-alias (user-defined networks)
	Tty                                                         bool
	Interactive                                                 bool
	AutoRemove                                                  bool
	Labels                                                      []string
	LogMaxSize                                                  string // rotate the json log past this size (default 10m)
	LogMaxFile                                                  int    // rotated files kept (default 3)
}

// RestartPolicy is --restart as docker's inspect shows it (HostConfig.
// RestartPolicy): the policy's name and most restarts.
func RestartPolicy(o *Options) (name string, max int) {
	name, max, _ = restartPolicy(o.Restart)
	if name == "" {
		name = "no"
	}
	return name, max
}

// restartPolicy parses --restart: the policy's name and, for on-failure,
// the most restarts (0: no limit).
func restartPolicy(s string) (name string, max int, err error) {
	name, n, hasN := strings.Cut(s, ":")
	switch name {
	case "", "no", "always", "unless-stopped":
		if !hasN {
			return name, 0, nil
		}
	case "on-failure":
		if !hasN {
			return name, 0, nil
		}
		if max, err = strconv.Atoi(n); err == nil && max >= 0 {
			return name, max, nil
		}
		return "", 0, fmt.Errorf("--restart %q: the most restarts must be a number 0 or more", s)
	}
	return "", 0, fmt.Errorf("--restart %q: want no, always, unless-stopped or on-failure[:MAX]", s)
}

// parseSize reads docker's byte sizes: 64m, 1g, 512k, 100b or plain bytes.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	t = strings.TrimSuffix(t, "b")
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional b, k, m or g suffix", s)
	}
	return int64(f * float64(mult)), nil
}

// rlimitNames maps docker's --ulimit names to RLIMIT_ constants.
var rlimitNames = map[string]string{
	"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
	"locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
	"nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
	"rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
	"stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

var rlimitNums = map[string]int{
	"RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": 10, "RLIMIT_MEMLOCK": 8, "RLIMIT_MSGQUEUE": 12,
	"RLIMIT_NICE": 13, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": 6, "RLIMIT_RSS": 5,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15, "RLIMIT_SIGPENDING": 11, "RLIMIT_STACK": unix.RLIMIT_STACK,
	"RLIMIT_AS": unix.RLIMIT_AS,
}

// parseUlimit reads name=soft[:hard] (-1 = unlimited).
func parseUlimit(s string) (typ string, soft, hard uint64, err error) {
	name, val, ok := strings.Cut(s, "=")
	typ = rlimitNames[strings.ToLower(name)]
	if !ok || typ == "" {
		return "", 0, 0, fmt.Errorf("invalid ulimit %q: want NAME=SOFT[:HARD] with NAME one of nofile, nproc, core, stack, memlock, ...", s)
	}
	num := func(v string) (uint64, error) {
		if v == "-1" || v == "unlimited" {
			return unix.RLIM_INFINITY, nil
		}
		return strconv.ParseUint(v, 10, 64)
	}
	sv, hv, hasHard := strings.Cut(val, ":")
	if soft, err = num(sv); err != nil {
		return "", 0, 0, fmt.Errorf("invalid ulimit %q: %v", s, err)
	}
	hard = soft
	if hasHard {
		if hard, err = num(hv); err != nil {
			return "", 0, 0, fmt.Errorf("invalid ulimit %q: %v", s, err)
		}
	}
	if soft > hard {
		return "", 0, 0, fmt.Errorf("invalid ulimit %q: soft limit exceeds hard limit", s)
	}
	return typ, soft, hard, nil
}

// readEnvFile reads docker's --env-file format: KEY=VAL lines, # comments,
// a bare KEY takes berth's own value.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _ := strings.Cut(line, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("env file %s line %d: invalid variable name %q", path, n, k)
		}
		env = append(env, line)
	}
	return env, sc.Err()
}

// mergeEnv applies overrides (KEY=VAL, or KEY to take it from berth's
// environment) on top of base, keeping base's order.
func mergeEnv(base []string, overrides ...string) []string {
	out := append([]string(nil), base...)
	idx := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		idx[k] = i
	}
	for _, kv := range overrides {
		k, _, hasVal := strings.Cut(kv, "=")
		if !hasVal {
			v, ok := os.LookupEnv(k)
			if !ok {
				continue
			}
			kv = k + "=" + v
		}
		if i, ok := idx[k]; ok {
			out[i] = kv
		} else {
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func envLookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// ResourceNumbers returns --memory, --memory-swap (docker's default: twice
// the memory) in bytes and --cpus in billionths, as docker's inspect shows
// them (0: unset).
func ResourceNumbers(o *Options) (memory, swap, nanoCPUs int64) {
	memory, _ = parseSize(o.Memory)
	switch {
	case o.MemorySwap == "-1":
		swap = -1
	case o.MemorySwap != "":
		swap, _ = parseSize(o.MemorySwap)
	case memory > 0:
		swap = 2 * memory
	}
	if f, err := strconv.ParseFloat(o.CPUs, 64); err == nil {
		nanoCPUs = int64(f * 1e9)
	}
	return
}
