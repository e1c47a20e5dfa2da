package store

import (
	"io"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// A blob already in the store is held to every new config's diffID: an
// image that reuses a stored layer under another layer's diffID would
// otherwise get the other layer's snapshot (chain IDs come from diffIDs).
func TestStoredLayerHeldToNewConfig(t *testing.T) {
	s := openTemp(t)
	img := randomImage(t, 1)
	if _, err := s.Write(img, "a"); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	blob, _ := ls[0].Digest()
	rc, _ := ls[0].Uncompressed()
	tarSize, _ := io.Copy(io.Discard, rc)
	rc.Close()
	if n, ok := s.UnpackedSize(blob); !ok || n != tarSize {
		t.Fatalf("unpacked size %d (%v), the layer's tar has %d bytes", n, ok, tarSize)
	}

	victim := randomImage(t, 1)
	vcf, _ := victim.ConfigFile()
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = vcf.RootFS.DiffIDs[0]
	liar, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, s.Root)
	if _, err := s.Write(liar, "liar"); err == nil || !strings.Contains(err.Error(), "uncompressed digest") {
		t.Fatalf("stored layer under another diffID: err = %v", err)
	}
	if after := treeDigest(t, s.Root); after != before {
		t.Fatal("a refused image changed the store")
	}
	// Without its record (a store from before records, or a crash right
	// after the blob came in) the blob is read again: still refused.
	os.Remove(s.recordPath(blob))
	if _, err := s.Write(liar, "liar"); err == nil || !strings.Contains(err.Error(), "uncompressed digest") {
		t.Fatalf("stored layer without a record under another diffID: err = %v", err)
	}
	if d, n, ok := s.readRecord(blob); !ok || d != mustDiff(t, ls[0]) || n != tarSize {
		t.Fatalf("record not rebuilt: %s %d %v", d, n, ok)
	}

	// A forged record gets the lie stored, but not unpacked: a snapshot is
	// checked against its diffID.
	if err := s.writeRecord(blob, vcf.RootFS.DiffIDs[0], tarSize); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(liar, "liar"); err != nil {
		t.Fatal(err)
	}
	stored, err := s.Image("liar", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshots(stored); err == nil || !strings.Contains(err.Error(), "content has digest") {
		t.Fatalf("snapshot of a layer under the wrong diffID: err = %v", err)
	}
	if _, err := os.Stat(s.SnapshotDir(vcf.RootFS.DiffIDs[0])); !os.IsNotExist(err) {
		t.Fatalf("refused snapshot left behind: %v", err)
	}

	// Records go with their blobs.
	for _, ref := range []string{"a", "liar"} {
		if _, err := s.Remove(ref, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.readRecord(blob); ok || s.HasBlob(blob, -1) {
		t.Fatal("blob or its record outlived GC")
	}
}

func mustDiff(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
