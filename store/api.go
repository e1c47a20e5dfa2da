// Package store keeps images on disk as an OCI image layout (blobs by
// digest, index.json refs), with unpacked layer snapshots beside it, and
// guards both with atomic writes, locks and integrity checks.
package store

import (
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var errTODO = errors.New("store: not implemented yet")

// Store is an image store rooted at a directory (default /var/lib/berth).
// Layout under Root:
//
//	oci/          OCI image layout: oci-layout, index.json, blobs/sha256/...
//	snapshots/    <chainID hex>/fs: one unpacked layer, overlayfs lower-dir format
//	containers/   owned by package engine
//	volumes/      owned by package engine
//	tmp/          staging for atomic writes
type Store struct {
	Root string
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) { return &Store{Root: root}, nil }

// Image resolves a reference ("busybox", "localhost/x:1", "sha256:<id>",
// an ID prefix) to an image for platform ("" = host's, "linux/arm64").
func (s *Store) Image(ref, platform string) (v1.Image, error) { return nil, errTODO }

// Write stores img (its blobs, then its manifest) and points each tag at it.
func (s *Store) Write(img v1.Image, tags ...string) (v1.Hash, error) { return v1.Hash{}, errTODO }

// Snapshots unpacks img's layers (each once, shared by chain ID) and
// returns their directories, lowest first: ready to be overlayfs lowerdirs
// (whiteouts as 0:0 char devices, opaque dirs as trusted.overlay.opaque=y).
func (s *Store) Snapshots(img v1.Image) ([]string, error) { return nil, errTODO }
