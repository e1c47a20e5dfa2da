package cgroup

import (
	"errors"
	"fmt"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultDeviceRules allow the devices every OCI container gets (null,
// zero, full, random, urandom, tty, console, ptmx and the pty slaves). The
// runtime appends them to the spec's rules, after its deny-all, as runc does.
var DefaultDeviceRules = []specs.LinuxDeviceCgroup{
	charRule(1, 3), charRule(1, 5), charRule(1, 7), charRule(1, 8), charRule(1, 9),
	charRule(5, 0), charRule(5, 1), charRule(5, 2), charRule(136, -1),
}

func charRule(major, minor int64) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// convert maps OCI resources onto opencontainers/cgroups' configuration.
// The two hierarchies differ in units for CPU weight; memory swap and IO
// weight are converted by the v2 manager itself.
func convert(r *specs.LinuxResources, v2 bool) (*cgroups.Resources, error) {
	res := &cgroups.Resources{}
	if r == nil {
		res.SkipDevices = true // leave the device rules as they are
		return res, nil
	}
	if len(r.Devices) == 0 {
		// No rules is not "deny everything" (what an empty allowlist
		// would be to the library): the device rules are left as they are.
		res.SkipDevices = true
	}
	for i, d := range r.Devices {
		rule, err := deviceRule(d)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		res.Devices = append(res.Devices, rule)
	}
	if m := r.Memory; m != nil {
		res.Memory = deref(m.Limit)
		res.MemoryReservation = deref(m.Reservation)
		res.MemorySwap = deref(m.Swap)
		res.MemorySwappiness = m.Swappiness
		if m.Swappiness != nil && *m.Swappiness > 100 {
			return nil, fmt.Errorf("linux.resources.memory.swappiness %d: must be 0..100", *m.Swappiness)
		}
		res.OomKillDisable = m.DisableOOMKiller != nil && *m.DisableOOMKiller
		res.MemoryCheckBeforeUpdate = m.CheckBeforeUpdate != nil && *m.CheckBeforeUpdate
		if res.Memory > 0 && res.MemorySwap > 0 && res.MemorySwap < res.Memory {
			return nil, fmt.Errorf("linux.resources.memory: swap %d (memory+swap) is below limit %d", res.MemorySwap, res.Memory)
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			if v2 {
				res.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*c.Shares)
			} else {
				res.CpuShares = *c.Shares
			}
		}
		res.CpuQuota = deref(c.Quota)
		res.CpuPeriod = deref(c.Period)
		res.CpuBurst = c.Burst
		res.CpuRtRuntime = deref(c.RealtimeRuntime)
		res.CpuRtPeriod = deref(c.RealtimePeriod)
		res.CpusetCpus = c.Cpus
		res.CpusetMems = c.Mems
		res.CPUIdle = c.Idle
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		l := *p.Limit
		if l <= 0 {
			l = -1 // 0 and negative mean "no limit", as in runc and Docker
		}
		res.PidsLimit = &l
	}
	if b := r.BlockIO; b != nil {
		res.BlkioWeight = deref(b.Weight)
		res.BlkioLeafWeight = deref(b.LeafWeight)
		for _, wd := range b.WeightDevice {
			res.BlkioWeightDevice = append(res.BlkioWeightDevice,
				cgroups.NewWeightDevice(wd.Major, wd.Minor, deref(wd.Weight), deref(wd.LeafWeight)))
		}
		res.BlkioThrottleReadBpsDevice = throttle(b.ThrottleReadBpsDevice)
		res.BlkioThrottleWriteBpsDevice = throttle(b.ThrottleWriteBpsDevice)
		res.BlkioThrottleReadIOPSDevice = throttle(b.ThrottleReadIOPSDevice)
		res.BlkioThrottleWriteIOPSDevice = throttle(b.ThrottleWriteIOPSDevice)
	}
	for _, h := range r.HugepageLimits {
		res.HugetlbLimit = append(res.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	if n := r.Network; n != nil {
		res.NetClsClassid = deref(n.ClassID)
		for _, p := range n.Priorities {
			res.NetPrioIfpriomap = append(res.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	if len(r.Rdma) > 0 {
		res.Rdma = map[string]cgroups.LinuxRdma{}
		for k, v := range r.Rdma {
			res.Rdma[k] = cgroups.LinuxRdma{HcaHandles: v.HcaHandles, HcaObjects: v.HcaObjects}
		}
	}
	if len(r.Unified) > 0 {
		if !v2 {
			return nil, errors.New("linux.resources.unified needs cgroup v2, this host uses v1")
		}
		res.Unified = r.Unified
	}
	return res, nil
}

func deviceRule(d specs.LinuxDeviceCgroup) (*devices.Rule, error) {
	rule := &devices.Rule{Allow: d.Allow, Major: devices.Wildcard, Minor: devices.Wildcard,
		Permissions: devices.Permissions(d.Access)}
	switch d.Type {
	case "", "a":
		rule.Type = devices.WildcardDevice
	case "c", "u":
		rule.Type = devices.CharDevice
	case "b":
		rule.Type = devices.BlockDevice
	default:
		return nil, fmt.Errorf("type %q: must be a, b or c", d.Type)
	}
	if rule.Permissions == "" {
		rule.Permissions = "rwm"
	}
	if !rule.Permissions.IsValid() {
		return nil, fmt.Errorf("access %q: must be a combination of r, w and m", d.Access)
	}
	if d.Major != nil {
		rule.Major = *d.Major
	}
	if d.Minor != nil {
		rule.Minor = *d.Minor
	}
	return rule, nil
}

func throttle(ds []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
	var out []*cgroups.ThrottleDevice
	for _, d := range ds {
		out = append(out, cgroups.NewThrottleDevice(d.Major, d.Minor, d.Rate))
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
