package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccomp_data layout: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// bpfMaxInsns is the kernel's limit on a classic BPF program.
const bpfMaxInsns = 4096

// littleEndian: the kernel stores seccomp_data in host byte order, so the
// low word of a 64-bit argument comes first on little-endian hosts.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func argOffsets(i uint) (lo, hi uint32) {
	base := uint32(offArgs + 8*i)
	if littleEndian {
		return base, base + 4
	}
	return base + 4, base
}

// rule is one compiled profile entry for one syscall: all its conditions
// must hold for its action to apply.
type rule struct {
	action uint32
	conds  []specs.LinuxSeccompArg
}

// syscallRules holds what a filter does with one syscall number: the
// conditional rules in profile order, then the unconditional action, if
// any. A profile entry without conditions is less specific than one with,
// so a call matching a conditional rule gets that rule's action; otherwise
// the first unconditional entry's action, otherwise the default action.
type syscallRules struct {
	conditional []rule
	uncond      *uint32
}

// program is a profile resolved against the architectures it covers.
type program struct {
	defaultAction uint32
	badArch       uint32
	enosys        bool // numbers above the profile's highest return ENOSYS (see compileArch)
	arches        []*arch
	rules         map[*arch]map[uint32]*syscallRules
	flags         uintptr
	waitKillable  bool // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV asked for
}

// badArchAction is what a syscall from an ABI the filter does not cover
// gets. libseccomp's default is KILL (the thread); berth kills the whole
// process, as a thread silently vanishing wedges multi-threaded programs.
const badArchAction = unix.SECCOMP_RET_KILL_PROCESS

// Compile turns s into a seccomp BPF program for this host. It covers the
// native architecture and every architecture s lists that berth has a
// syscall table for; calls from any other ABI kill the process.
func Compile(s *specs.LinuxSeccomp) ([]bpf.RawInstruction, error) {
	p, err := resolve(s)
	if err != nil {
		return nil, err
	}
	return p.assemble()
}

func action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := func(def uint) (uint32, error) {
		v := def
		if errnoRet != nil {
			v = *errnoRet
		}
		if v > 0xffff {
			return 0, fmt.Errorf("errnoRet %d out of range (0-65535)", v)
		}
		return uint32(v), nil
	}
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActErrno:
		d, err := data(uint(unix.EPERM))
		return unix.SECCOMP_RET_ERRNO | d, err
	case specs.ActTrace:
		d, err := data(uint(unix.EPERM))
		return unix.SECCOMP_RET_TRACE | d, err
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil // installable only with LoadListener
	case "":
		return 0, errors.New("missing action")
	}
	return 0, fmt.Errorf("unknown action %q", a)
}

// knownArches are the spec's architecture names, with or without a table.
var knownArches = []specs.Arch{specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
	specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL, specs.ArchMIPSEL64, specs.ArchMIPSEL64N32,
	specs.ArchPPC, specs.ArchPPC64, specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
	specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K, specs.ArchSH, specs.ArchSHEB}

var flagBits = map[specs.LinuxSeccompFlag]uintptr{
	specs.LinuxSeccompFlagLog:       unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow: unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	// Only meaningful with a notify listener (LoadListener adds it there);
	// the kernel rejects it without one.
	specs.LinuxSeccompFlagWaitKillableRecv: 0,
}

func resolve(s *specs.LinuxSeccomp) (*program, error) {
	if s == nil {
		return nil, errors.New("seccomp: no profile")
	}
	def, err := action(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	p := &program{defaultAction: def, badArch: badArchAction, rules: map[*arch]map[uint32]*syscallRules{}}
	for _, f := range s.Flags {
		bit, ok := flagBits[f]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown flag %q", f)
		}
		p.flags |= bit
		if f == specs.LinuxSeccompFlagWaitKillableRecv {
			p.waitKillable = true
		}
	}
	if nat, ok := arches[nativeArch]; ok {
		p.arches = append(p.arches, nat)
	}
	for _, a := range s.Architectures {
		ar, ok := arches[a]
		if !ok {
			if !slices.Contains(knownArches, a) {
				return nil, fmt.Errorf("seccomp: unknown architecture %q", a)
			}
			continue // no table here: its calls fall to the bad-arch action
		}
		if !slices.Contains(p.arches, ar) {
			p.arches = append(p.arches, ar)
		}
	}
	if len(p.arches) == 0 {
		return nil, errors.New("seccomp: no architecture berth has a syscall table for")
	}
	for _, ar := range p.arches {
		p.rules[ar] = map[uint32]*syscallRules{}
	}
	for i, sc := range s.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, sc.Names, err)
		}
		for _, c := range sc.Args {
			if c.Index > 5 {
				return nil, fmt.Errorf("seccomp: syscalls[%d] %v: argument index %d (0-5)", i, sc.Names, c.Index)
			}
			switch c.Op {
			case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
				specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
			default:
				return nil, fmt.Errorf("seccomp: syscalls[%d] %v: unknown operator %q", i, sc.Names, c.Op)
			}
		}
		for _, name := range sc.Names {
			for _, ar := range p.arches {
				nr, ok := ar.table.nr(name)
				if !ok {
					continue // unknown here (another arch's, or newer than our table): skipped, as runc does
				}
				sr := p.rules[ar][nr]
				if sr == nil {
					sr = &syscallRules{}
					p.rules[ar][nr] = sr
				}
				if len(sc.Args) == 0 {
					if sr.uncond == nil {
						a := act
						sr.uncond = &a
					}
				} else {
					sr.conditional = append(sr.conditional, rule{action: act, conds: sc.Args})
				}
			}
		}
	}
	// runc answers syscalls newer than any the profile names with ENOSYS,
	// so that programs fall back to older calls instead of failing on the
	// default action's EPERM (clone3 -> clone is the classic case).
	switch def {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG:
	default:
		p.enosys = true
	}
	return p, nil
}

// interval is a run of syscall numbers [start, next interval's start) that
// the filter treats alike: a plain return, or (complex) the rules of a
// single number.
type interval struct {
	start   uint32
	ret     uint32
	complex *syscallRules
}

func (p *program) intervals(ar *arch, base, end uint32) []interval {
	var nrs []uint32
	for nr := range p.rules[ar] {
		if nr >= base && nr < end {
			nrs = append(nrs, nr)
		}
	}
	slices.Sort(nrs)
	var out []interval
	add := func(iv interval) {
		if n := len(out); n > 0 && out[n-1].complex == nil && iv.complex == nil && out[n-1].ret == iv.ret {
			return // same outcome as the run before: extend it
		}
		out = append(out, iv)
	}
	cur := base
	for _, nr := range nrs {
		if nr > cur {
			add(interval{start: cur, ret: p.defaultAction})
		}
		sr := p.rules[ar][nr]
		if len(sr.conditional) == 0 {
			add(interval{start: nr, ret: *sr.uncond})
		} else {
			add(interval{start: nr, complex: sr})
		}
		cur = nr + 1
	}
	tail := p.defaultAction
	if p.enosys && len(nrs) > 0 {
		tail = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	if cur < end || len(out) == 0 {
		add(interval{start: cur, ret: tail})
	}
	return out
}

func (p *program) assemble() ([]bpf.RawInstruction, error) {
	a := &asm{}
	bad := a.newLabel()
	// Group the ABIs by audit arch: x86_64 and x32 share one.
	type section struct {
		audit    uint32
		native   *arch // numbers below the x32 bit
		x32      *arch // numbers with it
		hasX32ID bool  // this audit arch is x86_64's, where the x32 bit matters
	}
	var secs []*section
	byAudit := map[uint32]*section{}
	for _, ar := range p.arches {
		s := byAudit[ar.audit]
		if s == nil {
			s = &section{audit: ar.audit, hasX32ID: ar.audit == unix.AUDIT_ARCH_X86_64}
			byAudit[ar.audit] = s
			secs = append(secs, s)
		}
		if ar.x32 {
			s.x32 = ar
		} else {
			s.native = ar
		}
	}
	labels := make([]*label, len(secs))
	a.load(offArch)
	for i, s := range secs {
		labels[i] = a.newLabel()
		a.jmp(bpf.JumpEqual, s.audit, labels[i], nil)
	}
	a.ret(p.badArch) // no section for this audit arch
	usedBad := false
	for i, s := range secs {
		a.mark(labels[i])
		a.load(offNr)
		if !s.hasX32ID {
			p.tree(a, s.native, p.intervals(s.native, 0, 0xffffffff))
			continue
		}
		x32 := bad
		if s.x32 != nil {
			x32 = a.newLabel()
		} else {
			usedBad = true
		}
		if s.native != nil {
			a.jmp(bpf.JumpGreaterOrEqual, x32SyscallBit, x32, nil)
			p.tree(a, s.native, p.intervals(s.native, 0, x32SyscallBit))
		} else {
			usedBad = true
			a.jmp(bpf.JumpGreaterOrEqual, x32SyscallBit, nil, bad)
		}
		if s.x32 != nil {
			a.mark(x32)
			p.tree(a, s.x32, p.intervals(s.x32, x32SyscallBit, 0xffffffff))
		}
	}
	if usedBad {
		a.mark(bad) // jumps only go forward: the shared bad-arch return goes last
		a.ret(p.badArch)
	}
	prog, err := a.resolve()
	if err != nil {
		return nil, err
	}
	if len(prog) > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: filter has %d instructions, more than the kernel's %d", len(prog), bpfMaxInsns)
	}
	return prog, nil
}

// tree emits a binary search over the intervals on the syscall number in
// A: log2(n) comparisons reach any syscall, instead of a linear scan.
func (p *program) tree(a *asm, ar *arch, ivs []interval) {
	if len(ivs) == 1 {
		p.leaf(a, ar, ivs[0])
		return
	}
	mid := len(ivs) / 2
	right := a.newLabel()
	a.jmp(bpf.JumpGreaterOrEqual, ivs[mid].start, right, nil)
	p.tree(a, ar, ivs[:mid])
	a.mark(right)
	p.tree(a, ar, ivs[mid:])
}

func (p *program) leaf(a *asm, ar *arch, iv interval) {
	if iv.complex == nil {
		a.ret(iv.ret)
		return
	}
	for _, r := range iv.complex.conditional {
		next := a.newLabel()
		for _, c := range r.conds {
			cond(a, ar, c, next)
		}
		a.ret(r.action)
		a.mark(next)
	}
	if iv.complex.uncond != nil {
		a.ret(*iv.complex.uncond)
	} else {
		a.ret(p.defaultAction)
	}
}

// cond emits a test of one argument condition: it falls through when the
// condition holds and jumps to fail otherwise. 64-bit arguments are
// compared as two 32-bit halves, high first; 32-bit ABIs pass 32-bit
// registers, so only the low half is compared there (as libseccomp does).
func cond(a *asm, ar *arch, c specs.LinuxSeccompArg, fail *label) {
	loOff, hiOff := argOffsets(c.Index)
	v, v2 := c.Value, c.ValueTwo
	lo, hi := uint32(v), uint32(v>>32)
	ok := a.newLabel()
	defer a.mark(ok)
	if ar.bits32 {
		a.load(loOff)
		switch c.Op {
		case specs.OpEqualTo:
			a.jmp(bpf.JumpEqual, lo, ok, fail)
		case specs.OpNotEqual:
			a.jmp(bpf.JumpEqual, lo, fail, ok)
		case specs.OpGreaterThan:
			a.jmp(bpf.JumpGreaterThan, lo, ok, fail)
		case specs.OpGreaterEqual:
			a.jmp(bpf.JumpGreaterOrEqual, lo, ok, fail)
		case specs.OpLessThan:
			a.jmp(bpf.JumpGreaterOrEqual, lo, fail, ok)
		case specs.OpLessEqual:
			a.jmp(bpf.JumpGreaterThan, lo, fail, ok)
		case specs.OpMaskedEqual:
			a.and(lo)
			a.jmp(bpf.JumpEqual, uint32(v2), ok, fail)
		}
		return
	}
	a.load(hiOff)
	switch c.Op {
	case specs.OpEqualTo:
		a.jmp(bpf.JumpEqual, hi, nil, fail)
		a.load(loOff)
		a.jmp(bpf.JumpEqual, lo, ok, fail)
	case specs.OpNotEqual:
		a.jmp(bpf.JumpEqual, hi, nil, ok)
		a.load(loOff)
		a.jmp(bpf.JumpEqual, lo, fail, ok)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		a.jmp(bpf.JumpGreaterThan, hi, ok, nil)
		a.jmp(bpf.JumpEqual, hi, nil, fail)
		a.load(loOff)
		test := bpf.JumpGreaterThan
		if c.Op == specs.OpGreaterEqual {
			test = bpf.JumpGreaterOrEqual
		}
		a.jmp(test, lo, ok, fail)
	case specs.OpLessThan, specs.OpLessEqual:
		a.jmp(bpf.JumpGreaterThan, hi, fail, nil)
		a.jmp(bpf.JumpEqual, hi, nil, ok)
		a.load(loOff)
		// A < v  <=>  !(A >= v);  A <= v  <=>  !(A > v)
		test := bpf.JumpGreaterOrEqual
		if c.Op == specs.OpLessEqual {
			test = bpf.JumpGreaterThan
		}
		a.jmp(test, lo, fail, ok)
	case specs.OpMaskedEqual:
		a.and(hi)
		a.jmp(bpf.JumpEqual, uint32(v2>>32), nil, fail)
		a.load(loOff)
		a.and(lo)
		a.jmp(bpf.JumpEqual, uint32(v2), ok, fail)
	}
}
