package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// A small label-based assembler over x/net/bpf. Classic BPF conditional
// jumps reach at most 255 instructions ahead; a long profile needs farther
// jumps, so resolve inserts an unconditional jump (32-bit offset) right
// after any conditional one whose target is too far, and points the
// conditional jump at it.

type label struct{ at *insn } // the instruction the label stands before

type opKind uint8

const (
	opJump opKind = iota // conditional, or unconditional with ja
	opLoad               // A = seccomp_data word at val
	opAnd                // A &= val
	opRet                // return val
)

type insn struct {
	op     opKind
	cond   bpf.JumpTest // for conditional jumps
	val    uint32       // the jump's or the op's constant
	jt, jf *label       // conditional jump targets; jt alone for an unconditional jump
	ja     bool
	pos    int // position in the program, set by layout
}

type asm struct {
	code    []*insn
	pending []*label // labels placed before the next instruction
	// Slabs: a profile compiles to ~1000 instructions and labels, and
	// allocating them one by one was most of Compile's time.
	insns  []insn
	labels []label
}

func (a *asm) newLabel() *label {
	if len(a.labels) == cap(a.labels) {
		a.labels = make([]label, 0, 1024)
	}
	a.labels = a.labels[:len(a.labels)+1]
	return &a.labels[len(a.labels)-1]
}

func (a *asm) newInsn(i insn) *insn {
	if len(a.insns) == cap(a.insns) {
		a.insns = make([]insn, 0, 1024)
	}
	a.insns = append(a.insns, i)
	return &a.insns[len(a.insns)-1]
}

// mark binds l to the next instruction emitted.
func (a *asm) mark(l *label) { a.pending = append(a.pending, l) }

func (a *asm) emit(in insn) *insn {
	i := a.newInsn(in)
	for _, l := range a.pending {
		l.at = i
	}
	a.pending = a.pending[:0]
	a.code = append(a.code, i)
	return i
}

func (a *asm) load(off uint32) { a.emit(insn{op: opLoad, val: off}) }
func (a *asm) and(v uint32)    { a.emit(insn{op: opAnd, val: v}) }
func (a *asm) ret(v uint32)    { a.emit(insn{op: opRet, val: v}) }

// jmp emits "if A <cond> val goto jt else goto jf"; a nil target means the
// next instruction.
func (a *asm) jmp(cond bpf.JumpTest, val uint32, jt, jf *label) {
	var next *label
	if jt == nil || jf == nil {
		next = a.newLabel()
		if jt == nil {
			jt = next
		}
		if jf == nil {
			jf = next
		}
	}
	a.emit(insn{op: opJump, cond: cond, val: val, jt: jt, jf: jf})
	if next != nil {
		a.mark(next)
	}
}

// resolve lays the program out and assembles it.
func (a *asm) resolve() ([]bpf.RawInstruction, error) {
	if len(a.pending) > 0 {
		return nil, fmt.Errorf("seccomp: internal error: label at end of program")
	}
	layout := func() {
		for n, i := range a.code {
			i.pos = n
		}
	}
	for {
		layout()
		far := func(from int, l *label) bool { return l.at.pos-from-1 > 255 }
		var out []*insn
		for n, i := range a.code {
			if i.op != opJump || i.ja || (!far(n, i.jt) && !far(n, i.jf)) {
				if out != nil {
					out = append(out, i)
				}
				continue
			}
			if out == nil {
				out = append(make([]*insn, 0, len(a.code)+16), a.code[:n]...)
			}
			out = append(out, i)
			for _, t := range []**label{&i.jt, &i.jf} {
				if far(n, *t) {
					tramp := a.newInsn(insn{op: opJump, ja: true, jt: *t})
					l := a.newLabel()
					l.at = tramp
					*t = l
					out = append(out, tramp)
				}
			}
		}
		if out == nil {
			break
		}
		a.code = out
	}
	// Each instruction assembles on its own: no []bpf.Instruction of boxed
	// values to allocate.
	prog := make([]bpf.RawInstruction, len(a.code))
	for n, i := range a.code {
		var err error
		switch {
		case i.op == opLoad:
			prog[n], err = bpf.LoadAbsolute{Off: i.val, Size: 4}.Assemble()
		case i.op == opAnd:
			prog[n], err = bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: i.val}.Assemble()
		case i.op == opRet:
			prog[n], err = bpf.RetConstant{Val: i.val}.Assemble()
		case i.ja:
			prog[n], err = bpf.Jump{Skip: uint32(i.jt.at.pos - n - 1)}.Assemble()
		default:
			st, sf := i.jt.at.pos-n-1, i.jf.at.pos-n-1
			if st < 0 || sf < 0 || st > 255 || sf > 255 {
				return nil, fmt.Errorf("seccomp: internal error: jump %d/%d at %d", st, sf, n)
			}
			prog[n], err = bpf.JumpIf{Cond: i.cond, Val: i.val, SkipTrue: uint8(st), SkipFalse: uint8(sf)}.Assemble()
		}
		if err != nil {
			return nil, err
		}
	}
	return prog, nil
}
