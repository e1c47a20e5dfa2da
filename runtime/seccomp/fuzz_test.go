package seccomp

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Fuzz targets: Compile never panics, and whatever it accepts decides like
// the reference evaluator. Their seeds run as ordinary tests; explore with
// go test -run '^$' -fuzz '^FuzzCompile$' -fuzzminimizetime 1x ./runtime/seccomp/
// (minimising a large input can stall the fuzzer for minutes otherwise).

type byteStream struct{ b []byte }

func (s *byteStream) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteStream) u64() uint64 {
	var v [8]byte
	n := int(s.byte() % 9)
	for i := range n {
		v[i] = s.byte()
	}
	return binary.LittleEndian.Uint64(v[:])
}

var (
	fuzzActions = []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKill, specs.ActKillThread,
		specs.ActKillProcess, specs.ActTrap, specs.ActLog, specs.ActTrace, specs.ActNotify, "", "SCMP_ACT_BOGUS"}
	fuzzOps = []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual, "SCMP_CMP_BOGUS"}
	fuzzArches = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM,
		specs.ArchS390X, specs.ArchPARISC, "SCMP_ARCH_BOGUS"}
	fuzzNames = func() []string {
		var n []string
		n = append(n, tableX86_64.names()...)
		n = append(n, tableX86.names()...)
		slices.Sort(n)
		return append(slices.Compact(n), "no_such_call", "")
	}()
)

func profileFromBytes(data []byte) (*specs.LinuxSeccomp, *byteStream) {
	s := &byteStream{data}
	pick := func(n int) int { return int(s.byte()) % n }
	errno := func() *uint {
		if s.byte()%2 == 0 {
			return nil
		}
		v := uint(s.u64() % 70000)
		return &v
	}
	p := &specs.LinuxSeccomp{DefaultAction: fuzzActions[pick(len(fuzzActions))], DefaultErrnoRet: errno()}
	for range pick(4) {
		p.Architectures = append(p.Architectures, fuzzArches[pick(len(fuzzArches))])
	}
	for range pick(40) {
		sc := specs.LinuxSyscall{Action: fuzzActions[pick(len(fuzzActions))], ErrnoRet: errno()}
		for range 1 + pick(3) {
			// Cluster names so that rules pile up on the same syscalls.
			sc.Names = append(sc.Names, fuzzNames[(pick(32)*int(1+s.byte()%16))%len(fuzzNames)])
		}
		for range pick(4) {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: uint(pick(7)), Value: s.u64(), ValueTwo: s.u64(),
				Op: fuzzOps[pick(len(fuzzOps))]})
		}
		p.Syscalls = append(p.Syscalls, sc)
	}
	return p, s
}

func fuzzCheck(t *testing.T, p *specs.LinuxSeccomp, s *byteStream) {
	prog, err := Compile(p)
	if err != nil {
		return
	}
	audits := []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM, 1}
	var calls []call
	for _, sc := range p.Syscalls {
		for _, n := range sc.Names {
			for _, au := range audits {
				for _, a := range arches {
					if a.audit != au {
						continue
					}
					if nr, ok := a.table.nr(n); ok {
						c := call{audit: au, nr: nr}
						for i := range c.args {
							c.args[i] = s.u64()
						}
						if len(sc.Args) > 0 && s.byte()%2 == 0 {
							c.args[sc.Args[0].Index] = sc.Args[0].Value
						}
						calls = append(calls, c)
					}
				}
			}
		}
	}
	for range 20 {
		calls = append(calls, call{audit: audits[int(s.byte())%len(audits)], nr: uint32(s.u64())})
	}
	vm := newVM(t, prog)
	for _, c := range calls {
		if got, want := runVM(t, vm, c), refDecide(p, c); got != want {
			t.Fatalf("arch %#x nr %#x args %#x: filter %#x, reference %#x\nprofile %+v", c.audit, c.nr, c.args, got, want, p)
		}
	}
}

func FuzzCompile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 3, 0, 2, 4, 39, 1, 1, 5, 2, 3, 200, 1, 7, 9, 9, 9, 9})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, again and again and again"))
	f.Add(func() []byte { // many rules: exercises long jumps
		b := []byte{1, 0, 3, 0, 1, 2, 39}
		for i := range 400 {
			b = append(b, byte(i), 1, 2, 3, byte(i*7), 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1)
		}
		return b
	}())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, s := profileFromBytes(data)
		fuzzCheck(t, p, s)
	})
}

func FuzzCompileJSON(f *testing.F) {
	docker, _ := json.Marshal(dockerProfile(f))
	f.Add(string(docker))
	f.Add(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_GT"}]}]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X32"],"flags":["SECCOMP_FILTER_FLAG_LOG"]}`)
	f.Add(`{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["write"],"action":"SCMP_ACT_ERRNO","errnoRet":99999}]}`)
	f.Fuzz(func(t *testing.T, js string) {
		var p specs.LinuxSeccomp
		if json.Unmarshal([]byte(js), &p) != nil {
			return
		}
		fuzzCheck(t, &p, &byteStream{[]byte(js)})
	})
}
