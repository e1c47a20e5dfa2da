// Package store keeps images on disk as an OCI image layout (blobs by
// digest, index.json refs), with unpacked layer snapshots beside it, and
// guards both with atomic writes, locks and integrity checks.
package store

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Store is an image store rooted at a directory (default /var/lib/berth).
// Layout under Root:
//
//	oci/          OCI image layout: oci-layout, index.json, blobs/sha256/...
//	              index.json entries carry org.opencontainers.image.ref.name
//	              with the full name (docker.io/library/busybox:latest); an
//	              entry without it is a dangling (<none>) image.
//	diffids/      <blob hex>: "<diffID> <uncompressed size>" of a checked layer blob
//	snapshots/    <chainID hex>/fs: one unpacked layer, overlayfs lower-dir format
//	              (<chainID hex>/diffid names the layer it holds)
//	containers/   owned by package engine (see "Images in use" below)
//	volumes/      owned by package engine
//	tmp/          staging for atomic writes (blobs, index.json, snapshots)
//	lock          flock held exclusively while index.json is rewritten
//	gc.lock       flock: shared by writers, exclusive by prune/check/rmi GC
//
// Images in use: an image is in use, and rmi/prune leave it alone, when
// any file containers/<id>/berth.json (or container.json, config.json) has a
// top-level string field "ImageDigest", "ImageID" or "Image" equal to the
// image's manifest digest or its ID (config digest), "sha256:<hex>".
// Engines that keep state elsewhere can add theirs with SetUsedBy. An
// image in use is never deleted: rmi -f only untags it (it stays <none>).
// Hold Lock(false) from Snapshots until that file is written, so that a
// concurrent prune cannot delete the image in between.
//
// Beyond the contract (Open, Image, Write, Snapshots):
//
//	refs:      Resolve, List, Tag, Remove (docker rmi rules), ID, Normalize, Familiar, SplitName
//	reading:   EntryImage, ImageByDigest, Index, Manifest, ImageFromManifest, IndexFromManifest, Layout
//	writing:   WriteIndex (multi-platform), Ingest (verified blob copy), Layer (blob as v1.Layer), HasBlob
//	platforms: HostPlatform, ParsePlatform, PickPlatform, PlatformString
//	upkeep:    Lock, InUse, SetUsedBy, Prune, GC, Check (repair), DiskUsage, ChainIDs, SnapshotDir
type Store struct {
	Root string
	// Progress, when set, hears about every blob copied in (pull, load,
	// import). Nil means silent.
	Progress Progress
	// MaxLayerBytes bounds a layer's uncompressed size on ingest
	// (decompression bombs); 0 means 64 GiB.
	MaxLayerBytes int64

	usedBy func() ([]v1.Hash, error)
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	s := &Store{Root: root}
	for _, d := range []string{"oci/blobs/sha256", "diffids", "snapshots", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("store %s: %w", root, err)
		}
	}
	// Only the owner may enter the store: below it are image snapshots and
	// container upper dirs (whose paths /proc/self/mountinfo shows anyone)
	// holding whatever setuid-root files an image or a container's root
	// put there, which any host user could otherwise run, and the layers
	// of private images.
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("store %s: %w", root, err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(root, fi.Mode().Perm()&0o700); err != nil {
			return nil, fmt.Errorf("store %s: %w", root, err)
		}
	}
	_, err1 := os.Stat(filepath.Join(root, "oci", "oci-layout"))
	_, err2 := os.Stat(s.indexPath())
	if err1 == nil && err2 == nil {
		return s, nil
	}
	// First use: create the layout under the index lock, so that two
	// processes opening a fresh root cannot overwrite each other's refs.
	unlock, err := s.flock("lock", true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(root, "oci", "oci-layout")); err != nil {
		if err := s.writeFileAtomic(filepath.Join(root, "oci", "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(s.indexPath()); err != nil {
		if err := s.writeIndexFile(&v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json"}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Image resolves a reference ("busybox", "localhost/x:1", "sha256:<id>",
// an ID prefix, name@sha256:<manifest>) to an image for platform ("" =
// the host's, "linux/arm64"). A multi-platform entry yields the matching
// child; a single image is returned as is when platform is "" (callers
// check its config's platform), and must match when platform is given.
func (s *Store) Image(ref, platform string) (v1.Image, error) {
	e, err := s.Resolve(ref)
	if err != nil {
		return nil, err
	}
	return s.imageFor(e.Descriptor, ref, platform)
}

// Write stores img (its blobs, then its manifest) and points each tag at
// it. Without tags the image is kept as a dangling (<none>) entry.
// It returns the manifest digest.
func (s *Store) Write(img v1.Image, tags ...string) (v1.Hash, error) {
	return s.write(img, tags)
}

// Snapshots unpacks img's layers (each once, shared by chain ID) and
// returns their directories, lowest first: ready to be overlayfs lowerdirs
// (whiteouts as 0:0 char devices, opaque dirs as trusted.overlay.opaque=y).
func (s *Store) Snapshots(img v1.Image) ([]string, error) { return s.snapshots(img) }

// SetUsedBy adds a source of in-use manifest or config digests, consulted
// with the containers/ scan by rmi and prune.
func (s *Store) SetUsedBy(f func() ([]v1.Hash, error)) { s.usedBy = f }

// Progress receives blob copy events; id is a short digest.
type Progress interface {
	Start(id string, total int64) // total < 0 when unknown
	Update(id string, done int64)
	Done(id string, err error)
}

// Layout is the OCI image layout inside the store, for reading with ggcr.
func (s *Store) Layout() layout.Path { return layout.Path(filepath.Join(s.Root, "oci")) }

func (s *Store) indexPath() string { return filepath.Join(s.Root, "oci", "index.json") }

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.Root, "oci", "blobs", h.Algorithm, h.Hex)
}
