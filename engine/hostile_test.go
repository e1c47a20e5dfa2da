package engine

import (
	"archive/tar"
	"bytes"
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

// TestCpIntoSwappingContainer: a running container swaps a directory on
// the cp destination's path for a symlink to a host directory, over and
// over. cp must always land inside the container, never in the host
// directory (the lookup and the extraction must be one resolution).
func TestCpIntoSwappingContainer(t *testing.T) {
	bb := busyboxImage(t)
	host := t.TempDir()
	if err := os.Mkdir(filepath.Join(host, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	loop := "mkdir -p /w/sub; while :; do mv /w /w.real; ln -s " + host + " /w; rm /w; mv /w.real /w; done"
	id := strings.TrimSpace(berthOK(t, append(append([]string{"run", "-d"}, sec(t)...), bb, "sh", "-c", loop)...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	payload := mkTarBytes(t, "payload", "pwned")
	landed := 0
	for i := 0; i < 8000; i++ {
		if e.CopyTo(id, "/w/sub", bytes.NewReader(payload)) == nil {
			landed++
		}
		if _, err := os.Lstat(filepath.Join(host, "sub", "payload")); err == nil {
			t.Fatalf("copy %d wrote into the host directory %s", i, host)
		}
	}
	if landed == 0 {
		t.Fatal("no copy went through at all: the race was not exercised")
	}
	t.Logf("%d of 8000 copies landed in the container", landed)
}

// mkTarBytes is a tar holding one file.
func mkTarBytes(t *testing.T, name, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	return b.Bytes()
}
