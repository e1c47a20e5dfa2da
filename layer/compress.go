package layer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

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
		// Decoding is synchronous (the decoder's own async mode was slower
		// here) but runs ahead of the reader in a goroutine of its own.
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(1<<28), zstd.WithDecoderMaxMemory(1<<32), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, "", fmt.Errorf("zstd: %w", err)
		}
		return newAheadReader(zr.IOReadCloser()), Zstd, nil
	case len(head) >= 10 && bytes.HasPrefix(head, []byte("BZh")) && string(head[4:10]) == "1AY&SY":
		return nil, "", fmt.Errorf("unsupported layer compression bzip2 (OCI layers are gzip, zstd or plain tar)")
	case bytes.HasPrefix(head, magicXz):
		return nil, "", fmt.Errorf("unsupported layer compression xz (OCI layers are gzip, zstd or plain tar)")
	}
	return io.NopCloser(br), None, nil
}

// aheadReader reads r in a goroutine a few buffers ahead, so that
// decoding overlaps with what consumes it (hashing, unpacking). Close
// stops the goroutine, then closes r.
type aheadReader struct {
	r        io.ReadCloser
	full     chan aheadBuf
	free     chan []byte
	stop     chan struct{}
	done     chan struct{}
	cur, buf []byte
	err      error
	once     sync.Once
}

type aheadBuf struct {
	b   []byte
	err error
}

func newAheadReader(r io.ReadCloser) *aheadReader {
	a := &aheadReader{r: r, full: make(chan aheadBuf, 3), free: make(chan []byte, 4), stop: make(chan struct{}), done: make(chan struct{})}
	for range 4 {
		a.free <- make([]byte, 1<<20)
	}
	go a.fill()
	return a
}

func (a *aheadReader) fill() {
	defer close(a.done)
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.stop:
			return
		}
		// Fill b (not io.ReadFull: it would turn the decoder's own
		// ErrUnexpectedEOF, a truncated stream, into nothing special).
		n := 0
		var err error
		for n < len(b) && err == nil {
			var m int
			m, err = a.r.Read(b[n:])
			n += m
		}
		select {
		case a.full <- aheadBuf{b[:n], err}:
		case <-a.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		f := <-a.full
		a.cur, a.buf = f.b, f.b
		if f.err != nil {
			a.err = f.err
		}
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

func (a *aheadReader) Close() error {
	var err error
	a.once.Do(func() {
		close(a.stop)
		<-a.done
		err = a.r.Close()
		a.err, a.cur = errors.New("read after close"), nil
	})
	return err
}
