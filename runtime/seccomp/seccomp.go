// Package seccomp compiles an OCI seccomp profile (linux.seccomp) into a
// classic BPF filter and installs it, in pure Go: no libseccomp.
//
// Semantics follow runc with libseccomp: the native architecture is always
// covered; calls from a listed ABI use that ABI's syscall numbers; calls
// from an ABI not covered (say x32 when only x86_64 is listed) kill the
// process; unknown syscall names are skipped; several conditions in one
// entry must all hold, several entries for one syscall are alternatives;
// syscalls newer than every one the profile names get ENOSYS.
//
// Profiles with SCMP_ACT_NOTIFY go through LoadListener and SendListener
// (notify.go) instead of Load.
package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Load compiles s and installs it on every thread of the calling process
// (SECCOMP_FILTER_FLAG_TSYNC). A nil s does nothing. The caller must have
// set no_new_privs or hold CAP_SYS_ADMIN; Load goes last before execve,
// since the filter applies to everything after it.
func Load(s *specs.LinuxSeccomp) error {
	if s == nil {
		return nil
	}
	f, err := NewFilter(s)
	if err != nil {
		return err
	}
	return f.Load()
}

// Filter is a compiled profile, ready to install. The runtime compiles it
// while the container's init starts (a millisecond or more for Docker's
// default profile) and hands it over; the init only installs it.
type Filter struct {
	Prog  []byte `json:"prog"`            // sock_filter instructions, 8 bytes each, native byte order
	Flags uint   `json:"flags,omitempty"` // seccomp(2) flags the profile asks for (log, spec_allow)
}

// NewFilter compiles s (not a SCMP_ACT_NOTIFY profile: see LoadListener).
func NewFilter(s *specs.LinuxSeccomp) (*Filter, error) {
	fprog, p, err := build(s, false)
	if err != nil {
		return nil, err
	}
	prog := unsafe.Slice((*byte)(unsafe.Pointer(fprog.Filter)), int(fprog.Len)*int(unsafe.Sizeof(unix.SockFilter{})))
	return &Filter{Prog: append([]byte(nil), prog...), Flags: uint(p.flags)}, nil
}

// Load installs f on every thread of the calling process, as Load does.
func (f *Filter) Load() error {
	size := int(unsafe.Sizeof(unix.SockFilter{}))
	n := len(f.Prog) / size
	if n == 0 || n*size != len(f.Prog) || n > 0xffff {
		return fmt.Errorf("seccomp: bad compiled filter (%d bytes)", len(f.Prog))
	}
	filter := make([]unix.SockFilter, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), len(f.Prog)), f.Prog)
	fprog := &unix.SockFprog{Len: uint16(n), Filter: &filter[0]}
	flags := uintptr(f.Flags) | unix.SECCOMP_FILTER_FLAG_TSYNC
	err := install(fprog, flags)
	if errors.Is(err, unix.EINVAL) && flags != unix.SECCOMP_FILTER_FLAG_TSYNC {
		// An older kernel without LOG or SPEC_ALLOW: both only relax
		// logging or mitigations, so the filter goes in without them.
		err = install(fprog, unix.SECCOMP_FILTER_FLAG_TSYNC)
	}
	runtime.KeepAlive(filter)
	return err
}

// build compiles s into the kernel's sock_fprog.
func build(s *specs.LinuxSeccomp, notify bool) (*unix.SockFprog, *program, error) {
	if !notify && UsesNotify(s) {
		return nil, nil, errors.New("seccomp: the profile uses SCMP_ACT_NOTIFY: it needs a seccomp agent (LoadListener and listenerPath)")
	}
	p, err := resolve(s)
	if err != nil {
		return nil, nil, err
	}
	prog, err := p.assemble()
	if err != nil {
		return nil, nil, err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}, p, nil
}

func install(fprog *unix.SockFprog, flags uintptr) error {
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(fprog)))
	switch {
	case errno == unix.EACCES:
		return errors.New("seccomp: loading the filter needs no_new_privs or CAP_SYS_ADMIN")
	case errno != 0:
		return fmt.Errorf("seccomp: install filter: %w", errno)
	case r != 0:
		return fmt.Errorf("seccomp: thread %d could not be synchronised to the filter", r)
	}
	return nil
}
