package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/runtime/cgroup"
)

// Usage is one reading of a container's resource use, what docker stats
// shows once two readings give a CPU rate.
type Usage struct {
	ID, Name              string
	Running               bool
	Read                  time.Time
	CPUNanos              uint64 // CPU time used so far, all processes
	MemUsage              uint64 // without the page cache's inactive files, as docker counts
	MemLimit              uint64 // the cgroup's limit, or the host's memory if that is less
	NetRx, NetTx          uint64 // bytes, every interface but lo
	BlockRead, BlockWrite uint64 // bytes
	Pids                  uint64
}

// Usage reads c's counters from its cgroup and network namespace; a
// container that is not running reads as zeros.
func (e *Engine) Usage(ref string) (Usage, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{ID: c.ID, Name: c.Name, Running: c.State.Running, Read: time.Now()}
	if !c.State.Running {
		return u, nil
	}
	cg, err := cgroup.Load(cgroupsPath(c.ID))
	if err != nil {
		return u, fmt.Errorf("container %s: %w", c.Name, err)
	}
	st, err := cg.Stats()
	if err != nil {
		return u, fmt.Errorf("container %s: %w", c.Name, err)
	}
	u.CPUNanos = st.CpuStats.CpuUsage.TotalUsage
	u.MemUsage = st.MemoryStats.Usage.Usage
	inactive := st.MemoryStats.Stats["total_inactive_file"] // v1
	if v, ok := st.MemoryStats.Stats["inactive_file"]; ok && cg.V2() {
		inactive = v
	}
	if inactive < u.MemUsage {
		u.MemUsage -= inactive
	}
	u.MemLimit = st.MemoryStats.Usage.Limit
	if host := hostMemory(); host > 0 && (u.MemLimit == 0 || u.MemLimit > host) {
		u.MemLimit = host
	}
	u.Pids = st.PidsStats.Current
	for _, b := range st.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			u.BlockRead += b.Value
		case "write":
			u.BlockWrite += b.Value
		}
	}
	u.NetRx, u.NetTx = netBytes(c.State.Pid)
	return u, nil
}

// CPUPercent is the CPU the container used between two readings, in
// percent of one CPU (200% is two CPUs busy), as docker stats shows it.
func CPUPercent(before, after Usage) float64 {
	wall := after.Read.Sub(before.Read)
	if wall <= 0 || after.CPUNanos < before.CPUNanos {
		return 0
	}
	return float64(after.CPUNanos-before.CPUNanos) / float64(wall.Nanoseconds()) * 100
}

// netBytes sums the bytes received and sent on the interfaces of pid's
// network namespace, lo left out.
func netBytes(pid int) (rx, tx uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || strings.TrimSpace(name) == "lo" || len(f) < 9 {
			continue // the two header lines, lo
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx
}

// hostMemory is MemTotal of /proc/meminfo in bytes (0 if unreadable).
func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
