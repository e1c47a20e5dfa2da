package store

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOutOfRangeOwnerRefused: an owner of 1<<32 or -1 would be root once
// chown truncates it, behind a tar listing that shows no root file.
func TestOutOfRangeOwnerRefused(t *testing.T) {
	s := openTemp(t)
	before := treeDigest(t, s.Root)
	for _, id := range []int{1 << 32, -1} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "su", Mode: 0o4755, Typeflag: tar.TypeReg, Uid: id, Gid: 1, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		_, err := s.Ingest(&buf, IngestOptions{Size: -1, Layer: true})
		if !errors.Is(err, ErrHostileLayer) || !strings.Contains(err.Error(), `"su"`) {
			t.Fatalf("uid %d: err = %v, want hostile layer naming the entry", id, err)
		}
	}
	if after := treeDigest(t, s.Root); after != before {
		t.Fatal("a refused layer changed the store")
	}
}

// TestRootPrivate: the store root is the owner's alone. Under it lie
// image snapshots and container upper dirs with any setuid-root file an
// image (or a container's root) put there; reachable, any host user could
// run one and be root.
func TestRootPrivate(t *testing.T) {
	parent := t.TempDir()
	os.Chmod(parent, 0o755)
	os.Chmod(filepath.Dir(parent), 0o755) // TempDir's own base is 0700
	fresh := filepath.Join(parent, "fresh")
	old := filepath.Join(parent, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{fresh, old} {
		if _, err := Open(root); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(root)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, others can reach the snapshots", root, fi.Mode().Perm())
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	// As nobody, a setuid file in a snapshot is out of reach.
	s, _ := Open(fresh)
	p := filepath.Join(s.Root, "snapshots", "x", "fs", "suid")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o4755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/busybox", "test", "-x", p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Run(); err == nil {
		t.Errorf("nobody can execute %s", p)
	}
}
