package layer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression names a layer's compression as detected from its first bytes.
type Compression string

const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

var (
	magicGzip = []byte{0x1f, 0x8b, 0x08}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// readBufSize is large so that the decompressors and the tar reader see few,
// big reads.
const readBufSize = 1 << 20

// Decompress detects gzip, zstd or an uncompressed stream from r's first
// bytes and returns a reader of the uncompressed data (blocked gzip, see
// NewGzipWriter, is inflated on all cores). Close releases the
// decompressor's goroutines; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, readBufSize)
	head, err := br.Peek(memberHeader)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, "", err
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		if _, ok := memberSize(head); ok {
			return newMemberReader(br), Gzip, nil
		}
		// Not berth's blocked gzip: inflated by one goroutine, which pgzip
		// at least runs ahead of the reader (1 MiB blocks, 4 ahead).
		zr, err := pgzip.NewReaderN(br, 1<<20, 4)
		if err != nil {
			return nil, "", fmt.Errorf("gzip: %w", err)
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(head, magicZstd):
		// The window cap bounds memory a hostile frame can make us allocate.
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(1<<28), zstd.WithDecoderMaxMemory(1<<32))
		if err != nil {
			return nil, "", fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), Zstd, nil
	case len(head) >= 10 && bytes.HasPrefix(head, []byte("BZh")) && string(head[4:10]) == "1AY&SY":
		return nil, "", fmt.Errorf("unsupported layer compression bzip2 (OCI layers are gzip, zstd or plain tar)")
	case bytes.HasPrefix(head, magicXz):
		return nil, "", fmt.Errorf("unsupported layer compression xz (OCI layers are gzip, zstd or plain tar)")
	}
	return io.NopCloser(br), None, nil
}
