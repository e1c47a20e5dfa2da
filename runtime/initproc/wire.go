package initproc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/runtime/seccomp"
)

// The config travels to the init in a binary form of its own, not JSON:
// encoding/json's first decode in a fresh process spends ~0.7 ms building
// its reflection caches, a sizable part of a container's start. Fields go
// in declaration order; wire_test fills every field of Config by
// reflection and checks the round trip, so a field added to any of these
// types and not here fails the tests instead of being dropped (failing
// open). A seccomp profile the parent could not compile, rare, goes as
// JSON inside.

// maxConfig bounds what the init reads as its config.
const maxConfig = 64 << 20

type wenc struct{ b []byte }

func (w *wenc) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wenc) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *wenc) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}
func (w *wenc) bytes(v []byte) {
	if v == nil {
		w.uint(0)
		return
	}
	w.uint(uint64(len(v)) + 1) // +1: nil and empty stay apart
	w.b = append(w.b, v...)
}
func (w *wenc) str(s string) { w.uint(uint64(len(s))); w.b = append(w.b, s...) }

// count writes a slice's length, nil as 0; it reports whether items follow.
func (w *wenc) count(n int, isNil bool) bool {
	if isNil {
		w.uint(0)
		return false
	}
	w.uint(uint64(n) + 1)
	return n > 0
}
func (w *wenc) strs(v []string) {
	w.count(len(v), v == nil)
	for _, s := range v {
		w.str(s)
	}
}
func (w *wenc) strMap(m map[string]string) {
	w.count(len(m), m == nil)
	for k, v := range m {
		w.str(k)
		w.str(v)
	}
}
func (w *wenc) u32p(p *uint32) {
	w.bool(p != nil)
	if p != nil {
		w.uint(uint64(*p))
	}
}

type wdec struct {
	b   []byte
	err error
}

func (d *wdec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("init config: bad %s", what)
	}
}
func (d *wdec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}
func (d *wdec) int() int64 {
	u := d.uint() // zigzag, as binary.AppendVarint wrote it
	return int64(u>>1) ^ -int64(u&1)
}
func (d *wdec) u32() uint32 {
	v := d.uint()
	if v > math.MaxUint32 {
		d.fail("32-bit number")
	}
	return uint32(v)
}
func (d *wdec) bool() bool {
	if len(d.b) == 0 {
		d.fail("flag")
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail("flag")
	}
	return v == 1
}
func (d *wdec) take(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail("length")
		d.b = nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *wdec) bytes() []byte {
	n := d.uint()
	if n == 0 {
		return nil
	}
	return append([]byte{}, d.take(n-1)...)
}
func (d *wdec) str() string { return string(d.take(d.uint())) }

// count reads a slice's length: -1 for nil.
func (d *wdec) count() int {
	n := d.uint()
	if n == 0 {
		return -1
	}
	if n-1 > uint64(len(d.b)) { // every item takes a byte at least
		d.fail("count")
		d.b = nil
		return -1
	}
	return int(n - 1)
}
func (d *wdec) strs() []string {
	n := d.count()
	if n < 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = d.str()
	}
	return v
}
func (d *wdec) strMap() map[string]string {
	n := d.count()
	if n < 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k := d.str()
		m[k] = d.str()
	}
	return m
}
func (d *wdec) u32p() *uint32 {
	if !d.bool() {
		return nil
	}
	v := d.u32()
	return &v
}

// EncodeConfig is c in the init's wire form.
func EncodeConfig(c *Config) ([]byte, error) {
	w := &wenc{}
	w.str(c.ID)
	w.str(c.Bundle)
	w.str(c.Rootfs)
	w.bool(c.Spec != nil)
	if c.Spec != nil {
		if err := w.spec(c.Spec); err != nil {
			return nil, err
		}
	}
	w.bool(c.Exec)
	w.bool(c.NoPivot)
	w.bool(c.Console)
	w.bool(c.JoinMnt)
	w.bool(c.CgroupNS)
	w.bool(c.Hooks)
	w.int(int64(c.LastCap))
	w.bool(c.Seccomp != nil)
	if c.Seccomp != nil {
		w.bytes(c.Seccomp.Prog)
		w.uint(uint64(c.Seccomp.Flags))
	}
	w.bool(c.NoDev)
	w.bool(c.StartPipe)
	w.int(c.Debug)
	w.strs(c.CgroupTasks)
	return w.b, nil
}

func (w *wenc) spec(s *Spec) error {
	w.bool(s.Process != nil)
	if p := s.Process; p != nil {
		w.bool(p.Terminal)
		w.uint(uint64(p.User.UID))
		w.uint(uint64(p.User.GID))
		w.u32p(p.User.Umask)
		w.count(len(p.User.AdditionalGids), p.User.AdditionalGids == nil)
		for _, g := range p.User.AdditionalGids {
			w.uint(uint64(g))
		}
		w.str(p.User.Username)
		w.strs(p.Args)
		w.strs(p.Env)
		w.str(p.Cwd)
		w.bool(p.Capabilities != nil)
		if c := p.Capabilities; c != nil {
			for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
				w.strs(set)
			}
		}
		w.count(len(p.Rlimits), p.Rlimits == nil)
		for _, r := range p.Rlimits {
			w.str(r.Type)
			w.uint(r.Hard)
			w.uint(r.Soft)
		}
		w.bool(p.NoNewPrivileges)
		w.str(p.ApparmorProfile)
		w.str(p.SelinuxLabel)
	}
	w.str(s.Root.Path)
	w.bool(s.Root.Readonly)
	w.str(s.Hostname)
	w.str(s.Domainname)
	w.count(len(s.Mounts), s.Mounts == nil)
	for _, m := range s.Mounts {
		w.str(m.Destination)
		w.str(m.Type)
		w.str(m.Source)
		w.strs(m.Options)
		for _, ms := range [][]specs.LinuxIDMapping{m.UIDMappings, m.GIDMappings} {
			w.count(len(ms), ms == nil)
			for _, id := range ms {
				w.uint(uint64(id.ContainerID))
				w.uint(uint64(id.HostID))
				w.uint(uint64(id.Size))
			}
		}
	}
	for _, hs := range [][]specs.Hook{s.Hooks.CreateContainer, s.Hooks.StartContainer} {
		w.count(len(hs), hs == nil)
		for _, h := range hs {
			w.str(h.Path)
			w.strs(h.Args)
			w.strs(h.Env)
			w.bool(h.Timeout != nil)
			if h.Timeout != nil {
				w.int(int64(*h.Timeout))
			}
		}
	}
	w.strMap(s.Annotations)
	l := &s.Linux
	w.count(len(l.Namespaces), l.Namespaces == nil)
	for _, ns := range l.Namespaces {
		w.str(string(ns.Type))
		w.str(ns.Path)
	}
	w.count(len(l.Devices), l.Devices == nil)
	for _, d := range l.Devices {
		w.str(d.Path)
		w.str(d.Type)
		w.int(d.Major)
		w.int(d.Minor)
		w.bool(d.FileMode != nil)
		if d.FileMode != nil {
			w.uint(uint64(*d.FileMode))
		}
		w.u32p(d.UID)
		w.u32p(d.GID)
	}
	var sc []byte
	if l.Seccomp != nil {
		var err error
		if sc, err = json.Marshal(l.Seccomp); err != nil {
			return err
		}
	}
	w.bytes(sc)
	w.strMap(l.Sysctl)
	w.strs(l.MaskedPaths)
	w.strs(l.ReadonlyPaths)
	w.str(l.RootfsPropagation)
	w.str(l.MountLabel)
	return nil
}

// DecodeConfig reads EncodeConfig's form; anything left over or short is
// an error.
func DecodeConfig(b []byte) (*Config, error) {
	d := &wdec{b: b}
	c := &Config{}
	c.ID = d.str()
	c.Bundle = d.str()
	c.Rootfs = d.str()
	if d.bool() {
		c.Spec = d.spec()
	}
	c.Exec = d.bool()
	c.NoPivot = d.bool()
	c.Console = d.bool()
	c.JoinMnt = d.bool()
	c.CgroupNS = d.bool()
	c.Hooks = d.bool()
	c.LastCap = int(d.int())
	if d.bool() {
		c.Seccomp = &seccomp.Filter{Prog: d.bytes(), Flags: uint(d.uint())}
	}
	c.NoDev = d.bool()
	c.StartPipe = d.bool()
	c.Debug = d.int()
	c.CgroupTasks = d.strs()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("init config: trailing bytes")
	}
	return c, d.err
}

func (d *wdec) spec() *Spec {
	s := &Spec{}
	if d.bool() {
		p := &initProcess{}
		p.Terminal = d.bool()
		p.User.UID = d.u32()
		p.User.GID = d.u32()
		p.User.Umask = d.u32p()
		if n := d.count(); n >= 0 {
			p.User.AdditionalGids = make([]uint32, n)
			for i := range p.User.AdditionalGids {
				p.User.AdditionalGids[i] = d.u32()
			}
		}
		p.User.Username = d.str()
		p.Args = d.strs()
		p.Env = d.strs()
		p.Cwd = d.str()
		if d.bool() {
			p.Capabilities = &specs.LinuxCapabilities{Bounding: d.strs(), Effective: d.strs(), Inheritable: d.strs(), Permitted: d.strs(), Ambient: d.strs()}
		}
		if n := d.count(); n >= 0 {
			p.Rlimits = make([]specs.POSIXRlimit, n)
			for i := range p.Rlimits {
				p.Rlimits[i] = specs.POSIXRlimit{Type: d.str(), Hard: d.uint(), Soft: d.uint()}
			}
		}
		p.NoNewPrivileges = d.bool()
		p.ApparmorProfile = d.str()
		p.SelinuxLabel = d.str()
		s.Process = p
	}
	s.Root.Path = d.str()
	s.Root.Readonly = d.bool()
	s.Hostname = d.str()
	s.Domainname = d.str()
	if n := d.count(); n >= 0 {
		s.Mounts = make([]specs.Mount, n)
		for i := range s.Mounts {
			m := &s.Mounts[i]
			m.Destination, m.Type, m.Source, m.Options = d.str(), d.str(), d.str(), d.strs()
			for _, ms := range []*[]specs.LinuxIDMapping{&m.UIDMappings, &m.GIDMappings} {
				if n := d.count(); n >= 0 {
					*ms = make([]specs.LinuxIDMapping, n)
					for j := range *ms {
						(*ms)[j] = specs.LinuxIDMapping{ContainerID: d.u32(), HostID: d.u32(), Size: d.u32()}
					}
				}
			}
		}
	}
	for _, hs := range []*[]specs.Hook{&s.Hooks.CreateContainer, &s.Hooks.StartContainer} {
		if n := d.count(); n >= 0 {
			*hs = make([]specs.Hook, n)
			for i := range *hs {
				h := &(*hs)[i]
				h.Path, h.Args, h.Env = d.str(), d.strs(), d.strs()
				if d.bool() {
					t := int(d.int())
					h.Timeout = &t
				}
			}
		}
	}
	s.Annotations = d.strMap()
	l := &s.Linux
	if n := d.count(); n >= 0 {
		l.Namespaces = make([]specs.LinuxNamespace, n)
		for i := range l.Namespaces {
			l.Namespaces[i] = specs.LinuxNamespace{Type: specs.LinuxNamespaceType(d.str()), Path: d.str()}
		}
	}
	if n := d.count(); n >= 0 {
		l.Devices = make([]specs.LinuxDevice, n)
		for i := range l.Devices {
			dv := &l.Devices[i]
			dv.Path, dv.Type, dv.Major, dv.Minor = d.str(), d.str(), d.int(), d.int()
			if d.bool() {
				m := os.FileMode(d.u32())
				dv.FileMode = &m
			}
			dv.UID, dv.GID = d.u32p(), d.u32p()
		}
	}
	if sc := d.bytes(); sc != nil {
		l.Seccomp = &specs.LinuxSeccomp{}
		if err := json.Unmarshal(sc, l.Seccomp); err != nil && d.err == nil {
			d.err = fmt.Errorf("init config: seccomp profile: %w", err)
		}
	}
	l.Sysctl = d.strMap()
	l.MaskedPaths = d.strs()
	l.ReadonlyPaths = d.strs()
	l.RootfsPropagation = d.str()
	l.MountLabel = d.str()
	return s
}

// SendConfig sends the config, the first thing on the stream: its length
// (4 bytes, big-endian), then its wire form.
func (s *Sync) SendConfig(c *Config) error {
	b, err := EncodeConfig(c)
	if err != nil {
		return err
	}
	if len(b) > maxConfig {
		return fmt.Errorf("init config of %d bytes", len(b))
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = s.f.Write(append(frame, b...))
	return err
}

// RecvConfig reads what SendConfig sent, the first frame on the stream.
func (s *Sync) RecvConfig() (*Config, error) {
	b, err := s.frame()
	if err != nil {
		return nil, err
	}
	return DecodeConfig(b)
}
