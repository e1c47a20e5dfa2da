package seccomp

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The reference evaluator decides a syscall straight from the profile, the
// way the package documentation states the semantics, with no intervals,
// trees or BPF. Compiled filters must agree with it everywhere.

type call struct {
	audit uint32
	nr    uint32
	args  [6]uint64
}

func refDecide(s *specs.LinuxSeccomp, c call) uint32 {
	def := mustAction(s.DefaultAction, s.DefaultErrnoRet)
	var abi *arch
	covered := []specs.Arch{nativeArch}
	covered = append(covered, s.Architectures...)
	for _, name := range covered {
		a, ok := arches[name]
		if !ok || a.audit != c.audit {
			continue
		}
		if a.audit == unix.AUDIT_ARCH_X86_64 && (c.nr >= x32SyscallBit) != a.x32 {
			continue
		}
		abi = a
	}
	if abi == nil {
		return badArchAction
	}
	holds := func(cd specs.LinuxSeccompArg) bool {
		arg, v, v2 := c.args[cd.Index], cd.Value, cd.ValueTwo
		if abi.bits32 {
			arg, v, v2 = uint64(uint32(arg)), uint64(uint32(v)), uint64(uint32(v2))
		}
		switch cd.Op {
		case specs.OpEqualTo:
			return arg == v
		case specs.OpNotEqual:
			return arg != v
		case specs.OpLessThan:
			return arg < v
		case specs.OpLessEqual:
			return arg <= v
		case specs.OpGreaterThan:
			return arg > v
		case specs.OpGreaterEqual:
			return arg >= v
		case specs.OpMaskedEqual:
			return arg&v == v2
		}
		panic("op")
	}
	var uncond *uint32
	maxNr, any := uint32(0), false
	for _, sc := range s.Syscalls {
		match := false
		for _, n := range sc.Names {
			if nr, ok := abi.table.nr(n); ok {
				if !any || nr > maxNr {
					maxNr, any = nr, true
				}
				if nr == c.nr {
					match = true
				}
			}
		}
		if !match {
			continue
		}
		act := mustAction(sc.Action, sc.ErrnoRet)
		if len(sc.Args) == 0 {
			if uncond == nil {
				uncond = &act
			}
			continue
		}
		all := true
		for _, cd := range sc.Args {
			all = all && holds(cd)
		}
		if all {
			return act
		}
	}
	if uncond != nil {
		return *uncond
	}
	if any && c.nr > maxNr && def != unix.SECCOMP_RET_ALLOW && def != unix.SECCOMP_RET_LOG {
		return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	return def
}

func mustAction(a specs.LinuxSeccompAction, e *uint) uint32 {
	v, err := action(a, e)
	if err != nil {
		panic(err)
	}
	return v
}

// seccompData lays c out as the kernel does, word by word, for the two
// evaluators below. x/net/bpf's VM loads words big-endian (packet order),
// so each word is stored big-endian there; the kernel loads native words.
func seccompData(c call, bigEndianWords bool) []byte {
	b := make([]byte, 64)
	put := func(off uint32, v uint32) {
		if bigEndianWords {
			binary.BigEndian.PutUint32(b[off:], v)
		} else {
			binary.NativeEndian.PutUint32(b[off:], v)
		}
	}
	put(offNr, c.nr)
	put(offArch, c.audit)
	for i, a := range c.args {
		lo, hi := argOffsets(uint(i))
		put(lo, uint32(a))
		put(hi, uint32(a>>32))
	}
	return b
}

// newVM loads the assembled program into x/net/bpf's VM.
func newVM(t testing.TB, prog []bpf.RawInstruction) *bpf.VM {
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func runVM(t testing.TB, vm *bpf.VM, c call) uint32 {
	r, err := vm.Run(seccompData(c, true))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(r)
}

// step interprets the raw program as the kernel would (native words) and
// counts the instructions executed: the filter's cost per syscall.
func step(t testing.TB, prog []bpf.RawInstruction, c call) (uint32, int) {
	data := seccompData(c, false)
	var A uint32
	for pc, n := 0, 0; pc < len(prog); pc++ {
		n++
		in := prog[pc]
		switch in.Op {
		case 0x20: // ld [k]
			A = binary.NativeEndian.Uint32(data[in.K:])
		case 0x54: // and #k
			A &= in.K
		case 0x05: // ja
			pc += int(in.K)
		case 0x15, 0x25, 0x35: // jeq, jgt, jge #k
			var tr bool
			switch in.Op {
			case 0x15:
				tr = A == in.K
			case 0x25:
				tr = A > in.K
			case 0x35:
				tr = A >= in.K
			}
			if tr {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case 0x06: // ret #k
			return in.K, n
		default:
			t.Fatalf("unexpected opcode %#x at %d", in.Op, pc)
		}
	}
	t.Fatal("program ran off its end")
	return 0, 0
}

// dockerProfile is Docker's default profile as the engine gets it: for a
// container with Docker's default capabilities (no CAP_SYS_ADMIN).
func dockerProfile(t testing.TB) *specs.LinuxSeccomp {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	s, err := mobyseccomp.GetDefaultProfile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// probeCalls are the calls to check a profile on: every number of every
// ABI the host can issue, with argument values around the profile's
// constants, plus random ones.
func probeCalls(s *specs.LinuxSeccomp, rnd *rand.Rand) []call {
	var vals []uint64
	for _, sc := range s.Syscalls {
		for _, a := range sc.Args {
			for _, v := range []uint64{a.Value, a.ValueTwo, a.Value | a.ValueTwo} {
				vals = append(vals, v, v+1, v-1, v|1<<32, v^0xffffffff00000000, ^v)
			}
		}
	}
	vals = append(vals, 0, 1, 0xffffffff, 0x100000000, ^uint64(0))
	slices.Sort(vals)
	vals = slices.Compact(vals)
	var calls []call
	audits := []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM, 0xdeadbeef}
	for _, au := range audits {
		for _, base := range []uint32{0, x32SyscallBit} {
			for nr := uint32(0); nr < 600; nr++ {
				c := call{audit: au, nr: base | nr}
				calls = append(calls, c)
				for i := range 3 {
					c.args[i] = vals[rnd.IntN(len(vals))]
				}
				calls = append(calls, c)
			}
		}
		for _, nr := range []uint32{0x0f0002, 0x0f0005, 0x7fffffff, 0x80000000, 0xffffffff} {
			calls = append(calls, call{audit: au, nr: nr})
		}
	}
	// Every value on every argument of every conditional rule.
	for _, sc := range s.Syscalls {
		if len(sc.Args) == 0 {
			continue
		}
		for _, n := range sc.Names {
			nr, ok := tableX86_64.nr(n)
			if !ok {
				continue
			}
			for _, a := range sc.Args {
				for _, v := range vals {
					c := call{audit: unix.AUDIT_ARCH_X86_64, nr: nr}
					c.args[a.Index] = v
					calls = append(calls, c)
				}
			}
		}
	}
	return calls
}

func checkAgainstReference(t *testing.T, s *specs.LinuxSeccomp, calls []call) (avgSteps float64, maxSteps int) {
	t.Helper()
	prog, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	total, bad := 0, 0
	vm := newVM(t, prog)
	for _, c := range calls {
		want := refDecide(s, c)
		got := runVM(t, vm, c)
		got2, n := step(t, prog, c)
		total += n
		maxSteps = max(maxSteps, n)
		if got != want || got2 != want {
			bad++
			if bad < 10 {
				t.Errorf("arch %#x nr %#x args %#x: filter says %#x (stepper %#x), reference %#x", c.audit, c.nr, c.args, got, got2, want)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d calls decided differently", bad, len(calls))
	}
	return float64(total) / float64(len(calls)), maxSteps
}

func TestDockerProfileMatchesReference(t *testing.T) {
	s := dockerProfile(t)
	prog, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	calls := probeCalls(s, rand.New(rand.NewPCG(1, 2)))
	avg, mx := checkAgainstReference(t, s, calls)
	jas := 0
	for _, in := range prog {
		if in.Op == 0x05 {
			jas++
		}
	}
	if jas == 0 {
		t.Error("no long-jump trampolines: the far-jump path went untested")
	}
	t.Logf("Docker profile: %d syscall entries, %d BPF instructions (%d trampolines); %d calls checked; %.1f instructions run per call on average, %d at most",
		len(s.Syscalls), len(prog), jas, len(calls), avg, mx)
	vm := newVM(t, prog)

	// And the named decisions a container relies on, for x86_64.
	nr := func(n string) uint32 { v, _ := tableX86_64.nr(n); return v }
	x86 := func(n string, args ...uint64) uint32 {
		c := call{audit: unix.AUDIT_ARCH_X86_64, nr: nr(n)}
		copy(c.args[:], args)
		return runVM(t, vm, c)
	}
	eperm := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	for _, n := range []string{"read", "write", "openat", "mmap", "futex", "execve", "getpid", "rt_sigaction"} {
		if got := x86(n); got != unix.SECCOMP_RET_ALLOW {
			t.Errorf("%s: %#x, want allow", n, got)
		}
	}
	for _, n := range []string{"keyctl", "add_key", "request_key", "kexec_load", "init_module", "finit_module", "mount", "bpf", "unshare", "setns"} {
		if got := x86(n); got != eperm {
			t.Errorf("%s: %#x, want EPERM", n, got)
		}
	}
	if got := x86("clone3"); got != unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS) {
		t.Errorf("clone3: %#x, want ENOSYS (errnoRet 38)", got)
	}
	if got := x86("personality", 0xffffffff); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("personality(0xffffffff): %#x, want allow", got)
	}
	if got := x86("personality", 0x0040000); got != eperm {
		t.Errorf("personality(ADDR_NO_RANDOMIZE): %#x, want EPERM", got)
	}
	if got := x86("clone", unix.CLONE_NEWUSER); got != eperm {
		t.Errorf("clone(CLONE_NEWUSER): %#x, want EPERM", got)
	}
	if got := x86("clone", unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND); got != unix.SECCOMP_RET_ALLOW {
		t.Errorf("clone(thread): %#x, want allow", got)
	}
}

func TestSmallProfilesMatchReference(t *testing.T) {
	u := func(v uint) *uint { return &v }
	profiles := []*specs.LinuxSeccomp{
		{DefaultAction: specs.ActAllow},
		{DefaultAction: specs.ActKillProcess, Architectures: []specs.Arch{specs.ArchX86_64}},
		{DefaultAction: specs.ActErrno, DefaultErrnoRet: u(13), Architectures: []specs.Arch{specs.ArchAARCH64}},
		{DefaultAction: specs.ActTrap, Architectures: []specs.Arch{specs.ArchX32, specs.ArchX86},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid", "nonexistent_call", "_llseek"}, Action: specs.ActTrace, ErrnoRet: u(7)},
				{Names: []string{"write"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
					{Index: 0, Op: specs.OpLessEqual, Value: 2}, {Index: 2, Op: specs.OpLessThan, Value: 1 << 33}}},
				{Names: []string{"write"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpGreaterThan, Value: 0xffffffff}}},
				{Names: []string{"write"}, Action: specs.ActErrno},
				{Names: []string{"mmap"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
					{Index: 3, Op: specs.OpMaskedEqual, Value: 0xff00000000ff, ValueTwo: 0x1200000034}}},
				{Names: []string{"ioctl"}, Action: specs.ActKillThread, Args: []specs.LinuxSeccompArg{{Index: 5, Op: specs.OpNotEqual, Value: 1 << 40}}},
				{Names: []string{"ioctl"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 4, Op: specs.OpGreaterEqual, Value: 1<<32 + 5}}},
			}},
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	ioctlNr, _ := tableX86_64.nr("ioctl")
	for i, s := range profiles {
		calls := probeCalls(s, rnd)
		for range 2000 {
			c := call{audit: unix.AUDIT_ARCH_X86_64, nr: uint32(rnd.IntN(20)) + ioctlNr - 10}
			for j := range c.args {
				c.args[j] = rnd.Uint64() >> rnd.IntN(64)
			}
			calls = append(calls, c)
		}
		if _, _, err := checkProfile(t, s, calls); err != nil {
			t.Errorf("profile %d: %v", i, err)
		}
	}
}

func checkProfile(t *testing.T, s *specs.LinuxSeccomp, calls []call) (float64, int, error) {
	var avg float64
	var mx int
	t.Run("", func(t *testing.T) { avg, mx = checkAgainstReference(t, s, calls) })
	return avg, mx, nil
}

// BenchmarkCompileDocker is the cost Load adds to every container start
// with Docker's profile.
func BenchmarkCompileDocker(b *testing.B) {
	s := dockerProfile(b)
	for b.Loop() {
		if _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}
