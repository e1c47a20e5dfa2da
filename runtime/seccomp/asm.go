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

type insn struct {
	op     bpf.Instruction // LoadAbsolute, ALUOpConstant or RetConstant; nil for jumps
	cond   bpf.JumpTest    // for conditional jumps
	val    uint32
	jt, jf *label // conditional jump targets; jt alone for an unconditional jump
	ja     bool
	labels []*label // labels bound to this instruction
}

type asm struct {
	code    []*insn
	pending []*label // labels placed before the next instruction
}

func (a *asm) newLabel() *label { return &label{} }

// mark binds l to the next instruction emitted.
func (a *asm) mark(l *label) { a.pending = append(a.pending, l) }

func (a *asm) emit(i *insn) {
	for _, l := range a.pending {
		l.at = i
	}
	i.labels = a.pending
	a.pending = nil
	a.code = append(a.code, i)
}

func (a *asm) load(off uint32) { a.emit(&insn{op: bpf.LoadAbsolute{Off: off, Size: 4}}) }
func (a *asm) and(v uint32)    { a.emit(&insn{op: bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: v}}) }
func (a *asm) ret(v uint32)    { a.emit(&insn{op: bpf.RetConstant{Val: v}}) }
func (a *asm) jump(to *label)  { a.emit(&insn{ja: true, jt: to}) }

// jmp emits "if A <cond> val goto jt else goto jf"; a nil target means the
// next instruction.
func (a *asm) jmp(cond bpf.JumpTest, val uint32, jt, jf *label) {
	i := &insn{cond: cond, val: val, jt: jt, jf: jf}
	next := &label{}
	if jt == nil {
		i.jt = next
	}
	if jf == nil {
		i.jf = next
	}
	a.emit(i)
	if i.jt == next || i.jf == next {
		a.mark(next)
	}
}

// resolve lays the program out and assembles it.
func (a *asm) resolve() ([]bpf.RawInstruction, error) {
	if len(a.pending) > 0 {
		return nil, fmt.Errorf("seccomp: internal error: label at end of program")
	}
	for {
		pos := make(map[*insn]int, len(a.code))
		for n, i := range a.code {
			pos[i] = n
		}
		far := func(from int, l *label) bool { return pos[l.at]-from-1 > 255 }
		var out []*insn
		changed := false
		for n, i := range a.code {
			out = append(out, i)
			if i.ja || i.jt == nil {
				continue
			}
			for _, t := range []**label{&i.jt, &i.jf} {
				if far(n, *t) {
					tramp := &insn{ja: true, jt: *t}
					l := &label{at: tramp}
					tramp.labels = []*label{l}
					*t = l
					out = append(out, tramp)
					changed = true
				}
			}
		}
		a.code = out
		if !changed {
			break
		}
	}
	pos := make(map[*insn]int, len(a.code))
	for n, i := range a.code {
		pos[i] = n
	}
	prog := make([]bpf.Instruction, len(a.code))
	for n, i := range a.code {
		switch {
		case i.ja:
			prog[n] = bpf.Jump{Skip: uint32(pos[i.jt.at] - n - 1)}
		case i.jt != nil:
			st, sf := pos[i.jt.at]-n-1, pos[i.jf.at]-n-1
			if st < 0 || sf < 0 || st > 255 || sf > 255 {
				return nil, fmt.Errorf("seccomp: internal error: jump %d/%d at %d", st, sf, n)
			}
			prog[n] = bpf.JumpIf{Cond: i.cond, Val: i.val, SkipTrue: uint8(st), SkipFalse: uint8(sf)}
		default:
			prog[n] = i.op
		}
	}
	return bpf.Assemble(prog)
}
