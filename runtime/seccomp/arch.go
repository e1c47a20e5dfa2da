package seccomp

import (
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

//go:generate go run gen_tables.go

// x32SyscallBit marks x32 system calls: they arrive with the x86_64 audit
// arch and this bit set in the number. As in libseccomp's filters, every
// number at or above it counts as x32's.
const x32SyscallBit = 0x40000000

// arch is one ABI a filter can match: the seccomp_data.arch value the
// kernel reports for it and its syscall numbers.
type arch struct {
	name   specs.Arch
	audit  uint32
	table  lookup
	bits32 bool // arguments are 32-bit registers: only the low word is compared
	// x32 and x86_64 share an audit arch; the x32 bit tells them apart.
	x32 bool
}

// lookup maps a syscall name to its number on one ABI.
type lookup interface {
	nr(name string) (uint32, bool)
	names() []string
}

// sysTable is a generated table, sorted by name.
type sysTable []struct {
	name string
	nr   uint32
}

func (t sysTable) nr(name string) (uint32, bool) {
	i, ok := slices.BinarySearchFunc(t, name, func(e struct {
		name string
		nr   uint32
	}, n string) int {
		return strings.Compare(e.name, n)
	})
	if !ok {
		return 0, false
	}
	return t[i].nr, true
}

func (t sysTable) names() []string {
	out := make([]string, len(t))
	for i, e := range t {
		out[i] = e.name
	}
	return out
}

// overlay is a table with some entries replaced or added and an optional
// bit ORed into the base table's numbers.
type overlay struct {
	base  sysTable
	or    uint32
	extra map[string]uint32
}

func (o *overlay) nr(name string) (uint32, bool) {
	if nr, ok := o.extra[name]; ok {
		return nr, true
	}
	nr, ok := o.base.nr(name)
	return nr | o.or, ok
}

func (o *overlay) names() []string {
	n := o.base.names()
	for k := range o.extra {
		n = append(n, k)
	}
	slices.Sort(n)
	return slices.Compact(n)
}

var arches = map[specs.Arch]*arch{
	specs.ArchX86_64:      {audit: unix.AUDIT_ARCH_X86_64, table: tableX86_64},
	specs.ArchX86:         {audit: unix.AUDIT_ARCH_I386, table: tableX86, bits32: true},
	specs.ArchX32:         {audit: unix.AUDIT_ARCH_X86_64, table: tableX32, x32: true},
	specs.ArchAARCH64:     {audit: unix.AUDIT_ARCH_AARCH64, table: tableAARCH64},
	specs.ArchARM:         {audit: unix.AUDIT_ARCH_ARM, table: tableARMWithPrivate, bits32: true},
	specs.ArchRISCV64:     {audit: unix.AUDIT_ARCH_RISCV64, table: tableRISCV64},
	specs.ArchPPC64LE:     {audit: unix.AUDIT_ARCH_PPC64LE, table: tablePPC64LE},
	specs.ArchPPC64:       {audit: unix.AUDIT_ARCH_PPC64, table: tablePPC64},
	specs.ArchPPC:         {audit: unix.AUDIT_ARCH_PPC, table: tablePPC, bits32: true},
	specs.ArchS390X:       {audit: unix.AUDIT_ARCH_S390X, table: tableS390X},
	specs.ArchMIPS:        {audit: unix.AUDIT_ARCH_MIPS, table: tableMIPS, bits32: true},
	specs.ArchMIPSEL:      {audit: unix.AUDIT_ARCH_MIPSEL, table: tableMIPSEL, bits32: true},
	specs.ArchMIPS64:      {audit: unix.AUDIT_ARCH_MIPS64, table: tableMIPS64},
	specs.ArchMIPSEL64:    {audit: unix.AUDIT_ARCH_MIPSEL64, table: tableMIPSEL64},
	specs.ArchLOONGARCH64: {audit: unix.AUDIT_ARCH_LOONGARCH64, table: tableLOONGARCH64},
}

func init() {
	for n, a := range arches {
		a.name = n
	}
}

// nativeArch is the ABI of this build of berth, which (as with libseccomp)
// every filter covers whether or not the profile lists it.
var nativeArch = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "386": specs.ArchX86, "arm64": specs.ArchAARCH64, "arm": specs.ArchARM,
	"riscv64": specs.ArchRISCV64, "ppc64le": specs.ArchPPC64LE, "ppc64": specs.ArchPPC64,
	"s390x": specs.ArchS390X, "mips": specs.ArchMIPS, "mipsle": specs.ArchMIPSEL,
	"mips64": specs.ArchMIPS64, "mips64le": specs.ArchMIPSEL64, "loong64": specs.ArchLOONGARCH64,
}[runtime.GOARCH]

// x32Own are the system calls whose x32 entry differs from x86_64's
// (their arguments have x32-sized layouts); the kernel numbers them from
// 512 in the x32 range.
var x32Own = []string{
	"rt_sigaction", "rt_sigreturn", "ioctl", "readv", "writev", "recvfrom", "sendmsg", "recvmsg",
	"execve", "ptrace", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "sigaltstack",
	"timer_create", "mq_notify", "kexec_load", "waitid", "set_robust_list", "get_robust_list",
	"vmsplice", "move_pages", "preadv", "pwritev", "rt_tgsigqueueinfo", "recvmmsg", "sendmmsg",
	"process_vm_readv", "process_vm_writev", "setsockopt", "getsockopt", "io_setup", "io_submit",
	"execveat", "preadv2", "pwritev2",
}

// tableX32 has x86_64's numbers with the x32 bit, except the calls above.
var tableX32 = func() *overlay {
	o := &overlay{base: tableX86_64, or: x32SyscallBit, extra: map[string]uint32{}}
	for i, n := range x32Own {
		o.extra[n] = uint32(512+i) | x32SyscallBit
	}
	return o
}()

// tableARMWithPrivate adds the ARM-private calls (numbered from
// __ARM_NR_BASE 0x0f0000), which x/sys/unix does not list and Docker's
// profile allows.
var tableARMWithPrivate = &overlay{base: tableARM, extra: map[string]uint32{
	"breakpoint": 0x0f0001, "cacheflush": 0x0f0002, "usr26": 0x0f0003,
	"usr32": 0x0f0004, "set_tls": 0x0f0005, "get_tls": 0x0f0006,
}}

// SyscallNumber reports the number of syscall name on arch a, if known.
func SyscallNumber(a specs.Arch, name string) (uint32, bool) {
	ar, ok := arches[a]
	if !ok {
		return 0, false
	}
	return ar.table.nr(name)
}
