package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForgedRecordByPathID: a 64-byte "ID" that climbs out of containers/
// must not make berth read a record planted elsewhere (here: next to the
// store, as in a world-writable /tmp) and act on it: rm on the forged
// record, whose own ID pointed at a victim directory, deleted that
// directory.
func TestForgedRecordByPathID(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	e, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "data"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	// containers/../../<evil> is dir/<evil>; pad the name to 64 bytes.
	prefix := "../../"
	evil := "evil" + strings.Repeat("x", 64-len(prefix)-4)
	ref := prefix + evil
	if err := os.MkdirAll(filepath.Join(dir, evil), 0o755); err != nil {
		t.Fatal(err)
	}
	// Its ID makes rm rename dir/victim to store/victim and remove that.
	rec := `{"ID":"../../victim","Name":"forged","Image":"x"}`
	if err := os.WriteFile(filepath.Join(dir, evil, "container.json"), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := e.Lookup(ref); err == nil {
		t.Errorf("Lookup(%q) found the forged record %q", ref, c.ID)
	}
	if err := e.Remove(ref, RemoveOpts{Force: true}); err == nil {
		t.Errorf("Remove(%q) succeeded", ref)
	}
	if b, err := os.ReadFile(filepath.Join(victim, "data")); err != nil || string(b) != "precious" {
		t.Fatalf("victim directory damaged: %v", err)
	}
	// A record under a real ID that names another ID is refused too.
	id := strings.Repeat("ab", 32)
	if err := os.MkdirAll(e.dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.recordPath(id), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := e.Lookup(id); err == nil {
		t.Errorf("Lookup(%s) returned a record naming ID %q", id, c.ID)
	}
	if _, err := os.Stat(filepath.Join(victim, "data")); err != nil {
		t.Fatal(err)
	}
}
