package store

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
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
