package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzParseManifest feeds arbitrary bytes to the manifest, index and
// config parsers the store relies on: errors are fine, panics are not,
// and an accepted manifest's blobs are looked up only by valid digests.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:298ec633a90a4c92c885319a121bedd2346f7ec29862642b86f093395550e03e","size":349},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:ff95a51a32d8dbd85699135c2dbb046757ec6821a615c751ce5a04b14e7d0734","size":1184221}]}`))
	f.Add([]byte(`{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:1fc3982da425216f4524b81d2d842ac32240b9af6dca21b2c86525d0bdb13bb3"]}}`))
	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if img, err := s.ImageFromManifest(data); err == nil {
			img.Layers()
			img.ConfigFile()
			img.Digest()
		}
		if idx, err := s.IndexFromManifest(data); err == nil {
			if im, err := idx.IndexManifest(); err == nil {
				PickPlatform(idx, HostPlatform(), "fuzz")
				for _, d := range im.Manifests {
					s.checkDescriptor(d)
				}
			}
		}
		if cf, err := v1.ParseConfigFile(bytes.NewReader(data)); err == nil {
			ChainIDs(cf.RootFS.DiffIDs)
			cf.Platform()
		}
	})
}

// FuzzIngestLayer ingests arbitrary bytes as a layer: refused, or stored
// with every entry inside the root and a diffID that is the sha256 of the
// uncompressed stream.
func FuzzIngestLayer(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("a\n\n"))
	tw.WriteHeader(&tar.Header{Name: "etc/link", Typeflag: tar.TypeLink, Linkname: "etc/hosts"})
	tw.Close()
	f.Add(buf.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	f.Add(gz.Bytes())
	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	s.MaxLayerBytes = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := s.Ingest(bytes.NewReader(data), IngestOptions{Size: -1, Layer: true})
		if err != nil {
			return
		}
		rc, _, err := Decompress(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("accepted a layer that does not decompress: %v", err)
		}
		raw, _ := io.ReadAll(rc)
		if sum := sha256.Sum256(raw); b.DiffID.Hex != hex.EncodeToString(sum[:]) {
			t.Fatalf("diffID %s is not the sha256 of the tar", b.DiffID)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			if CheckEntry(hdr) != nil {
				t.Fatalf("accepted hostile entry %q -> %q", hdr.Name, hdr.Linkname)
			}
		}
	})
}
