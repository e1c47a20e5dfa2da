package initproc

import (
	"io"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fill sets every field reachable from v to a value other than its zero
// value (two items per slice and map), so that a field the wire form
// leaves out shows in the round trip.
func fill(v reflect.Value, n *uint64) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(*n%1000) - 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(*n%200 + 1)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	}
}

// Every field of the init's config survives the wire form: one added to
// Config, Spec or any type inside them, and not to wire.go, fails here.
func TestConfigWireRoundTrip(t *testing.T) {
	var n uint64
	want := &Config{}
	fill(reflect.ValueOf(want).Elem(), &n)
	b, err := EncodeConfig(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip lost something:\n got %+v\nwant %+v", got.Spec, want.Spec)
	}
	// Nil and empty stay apart; a zero config too.
	for _, c := range []*Config{{}, {Spec: &Spec{Process: &initProcess{Args: []string{}}, Mounts: []specs.Mount{}}, CgroupTasks: []string{}}} {
		b, _ := EncodeConfig(c)
		if got, err := DecodeConfig(b); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("%+v came back as %+v, %v", c, got, err)
		}
	}
	// Short, long or bad input is an error, never a half config.
	for i := 0; i < len(b); i++ {
		if _, err := DecodeConfig(b[:i]); err == nil {
			t.Fatalf("a config cut at %d of %d bytes was accepted", i, len(b))
		}
	}
	if _, err := DecodeConfig(append(b, 0)); err == nil {
		t.Error("trailing bytes were accepted")
	}
}

func FuzzDecodeConfig(f *testing.F) {
	var n uint64
	c := &Config{}
	fill(reflect.ValueOf(c).Elem(), &n)
	b, _ := EncodeConfig(c)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeConfig(b)
		if err != nil {
			return
		}
		again, err := EncodeConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := DecodeConfig(again); err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("a decoded config does not survive its own round trip: %v", err)
		}
	})
}

// Messages cross the sync socket whole, in order, after the config.
func TestSyncFrames(t *testing.T) {
	p, c, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parent, child := NewSync(p), NewSync(c)
	cfg := &Config{ID: "x", CgroupTasks: []string{"/a"}}
	go func() {
		parent.SendConfig(cfg)
		parent.Send(Msg{T: MsgGo, Pid: 42})
		parent.Send(Msg{T: MsgError, Msg: "two\nlines"})
		p.Close()
	}()
	if got, err := child.RecvConfig(); err != nil || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("config %+v, %v", got, err)
	}
	if m, err := child.Expect(MsgGo); err != nil || m.Pid != 42 {
		t.Fatalf("go: %+v %v", m, err)
	}
	if _, err := child.Expect(MsgReady); err == nil || err.Error() != "two\nlines" {
		t.Fatalf("an error message: %v", err)
	}
	if _, err := child.Recv(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}
