package store

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/berthproject/berth/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

// Blob describes a blob that Ingest put in the store.
type Blob struct {
	Digest v1.Hash
	Size   int64
	// Layer is set when the blob is a (compressed) tar; DiffID is then the
	// digest of the uncompressed tar and Compression "gzip", "zstd" or "".
	Layer       bool
	DiffID      v1.Hash
	Compression string
	Unpacked    int64 // a layer's uncompressed size
	// New is false when the store had the blob already.
	New bool
}

// IngestOptions say what a blob must be.
type IngestOptions struct {
	Digest *v1.Hash // expected digest, nil when unknown
	Size   int64    // expected size, < 0 when unknown
	// Layer forces layer handling (diffID, hostile entry check); without
	// it a blob is treated as a layer when it sniffs as gzip, zstd or tar.
	Layer bool
	// Compress decompresses the input (whatever it is) and stores it
	// compressed as Compression says: a rootfs tarball becomes a layer.
	Compress bool
	// Compression is what Compress writes: "gzip" (the default; blocked
	// gzip, see layer.NewGzipWriter), "zstd", or "none" (the plain tar,
	// whose digest is its diffID).
	Compression string
	// Label names the blob in progress output (default: its digest).
	Label string
}

// ErrHostileLayer marks a layer refused for an entry that would land
// outside the directory it is applied to.
var ErrHostileLayer = errors.New("hostile layer")

// HasBlob reports whether the store holds blob h with the given size
// (size < 0: any).
func (s *Store) HasBlob(h v1.Hash, size int64) bool {
	fi, err := os.Stat(s.blobPath(h))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// Ingest copies r into the store as a blob: to a temp file first, then,
// once its digest and size match what is expected (and a layer passed the
// entry check), renamed into blobs/. Nothing is left behind on failure.
// Callers hold Lock(false) so a concurrent GC does not drop the blob
// before a manifest references it.
func (s *Store) Ingest(r io.Reader, o IngestOptions) (Blob, error) {
	label := s.progressStart(o)
	b, err := s.ingest(r, o, label)
	s.progressDone(label, err)
	return b, err
}

func (s *Store) progressStart(o IngestOptions) string {
	label := o.Label
	if label == "" && o.Digest != nil {
		label = short(*o.Digest)
	}
	if label == "-" {
		label = ""
	}
	if s.Progress != nil && label != "" {
		total := o.Size
		if o.Compress {
			total = -1
		}
		s.Progress.Start(label, total)
	}
	return label
}

func (s *Store) progressDone(label string, err error) {
	if s.Progress != nil && label != "" {
		s.Progress.Done(label, err)
	}
}

// checkSlots bounds the layer checks IngestAsync runs at once.
var checkSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// IngestAsync is Ingest for a caller with more to read from the same
// stream (an archive). The blob is copied to a temp file and its digest
// and size checked before it returns; a layer is checked (inflated) by a
// goroutine that reads the temp file as it grows, so the check overlaps
// the copy and goes on after IngestAsync returns: the layers of an
// archive are checked in parallel, a few at once. wait returns what
// Ingest would have; call it before using the blob, and always.
func (s *Store) IngestAsync(r io.Reader, o IngestOptions) (wait func() (Blob, error)) {
	now := func(b Blob, err error) func() (Blob, error) { return func() (Blob, error) { return b, err } }
	if o.Compress || o.Digest != nil && (o.Digest.Algorithm != "sha256" || s.HasBlob(*o.Digest, o.Size) && !o.Layer) {
		return now(s.Ingest(r, o))
	}
	label := s.progressStart(o)
	f, err := os.CreateTemp(filepath.Join(s.Root, "tmp"), "blob-")
	if err != nil {
		s.progressDone(label, err)
		return now(Blob{}, err)
	}
	if s.Progress != nil && label != "" {
		r = &countReader{r: r, fn: func(n int64) { s.Progress.Update(label, n) }}
	}
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(512)
	comp, isTar := sniff(head)
	isLayer := o.Layer || comp != "" || isTar
	sf := newSpill(f)
	copied := make(chan error, 1)
	checked := make(chan struct{})
	var b Blob
	var checkErr error
	if isLayer {
		go func() {
			defer close(checked)
			checkSlots <- struct{}{}
			diff, n, comp, err := s.scanLayer(sf.reader(), io.Discard, false)
			<-checkSlots
			// The copy's own verdict (digest, size) comes first.
			if cerr := <-copied; cerr != nil {
				err = cerr
			}
			if err != nil {
				f.Close()
				os.Remove(f.Name())
				b, checkErr = Blob{}, err
				s.progressDone(label, err)
				return
			}
			if comp == "" {
				diff = b.Digest
			}
			b.Layer, b.DiffID, b.Compression, b.Unpacked = true, diff, comp, n
			b, checkErr = s.commit(f, b)
			s.progressDone(label, checkErr)
		}()
	}
	blobHash := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(sf, blobHash), 1<<20)
	size, err := io.Copy(bw, br)
	if err == nil {
		err = bw.Flush()
	}
	// Written before copied is sent: the checker reads b after receiving.
	b.Size = size
	b.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(blobHash.Sum(nil))}
	switch {
	case err != nil:
	case o.Digest != nil && b.Digest != *o.Digest:
		err = fmt.Errorf("blob %s: content has digest %s: refused", o.Digest, b.Digest)
	case o.Size >= 0 && size != o.Size:
		err = fmt.Errorf("blob %s: %d bytes, expected %d: refused", b.Digest, size, o.Size)
	}
	sf.finish(err)
	if isLayer {
		copied <- err
		return func() (Blob, error) {
			<-checked
			return b, checkErr
		}
	}
	if err == nil {
		b, err = s.commit(f, b)
	} else {
		f.Close()
		os.Remove(f.Name())
		b = Blob{}
	}
	s.progressDone(label, err)
	return now(b, err)
}

// spill is a temp file being written (with writeback started early) that
// a checker may read as it grows.
type spill struct {
	f    *os.File
	mu   sync.Mutex
	cond *sync.Cond
	n    int64 // bytes written
	done bool
	err  error
	// flushed is how far writeback was started (writer only).
	flushed int64
}

func newSpill(f *os.File) *spill {
	s := &spill{f: f}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *spill) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.mu.Lock()
	s.n += int64(n)
	written := s.n
	s.mu.Unlock()
	s.cond.Broadcast()
	// Start writeback as the file grows, so that the fsync before the
	// rename has little left to wait for.
	if written-s.flushed >= 8<<20 {
		unix.SyncFileRange(int(s.f.Fd()), s.flushed, written-s.flushed, unix.SYNC_FILE_RANGE_WRITE)
		s.flushed = written
	}
	return n, err
}

// finish tells the reader the file is complete, or (err != nil) that the
// copy failed.
func (s *spill) finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *spill) reader() io.Reader { return &spillReader{s: s} }

type spillReader struct {
	s   *spill
	off int64
}

func (r *spillReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	for r.off >= s.n && !s.done {
		s.cond.Wait()
	}
	n, done, err := s.n, s.done, s.err
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if r.off >= n && done {
		return 0, io.EOF
	}
	m, err := s.f.ReadAt(p[:min(int64(len(p)), n-r.off)], r.off)
	r.off += int64(m)
	if err == io.EOF && m > 0 {
		err = nil
	}
	return m, err
}

func (s *Store) ingest(r io.Reader, o IngestOptions, label string) (Blob, error) {
	if o.Digest != nil && o.Digest.Algorithm != "sha256" {
		return Blob{}, fmt.Errorf("unsupported digest algorithm %q", o.Digest.Algorithm)
	}
	if o.Digest != nil && s.HasBlob(*o.Digest, o.Size) && !o.Layer {
		io.Copy(io.Discard, r)
		return Blob{Digest: *o.Digest, Size: o.Size}, nil
	}
	f, err := os.CreateTemp(filepath.Join(s.Root, "tmp"), "blob-")
	if err != nil {
		return Blob{}, err
	}
	fail := func(err error) (Blob, error) {
		f.Close()
		os.Remove(f.Name())
		return Blob{}, err
	}
	if s.Progress != nil && label != "" {
		r = &countReader{r: r, fn: func(n int64) { s.Progress.Update(label, n) }}
	}
	blobHash := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(newSpill(f), blobHash), 1<<20)
	var b Blob
	var size int64
	if o.Compress {
		size, b, err = s.compressLayer(r, bw, o.Compression)
	} else {
		size, b, err = s.copyBlob(r, bw, o.Layer)
	}
	if err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	b.Size = size
	b.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(blobHash.Sum(nil))}
	if b.Layer && b.DiffID.Hex == "" {
		b.DiffID = b.Digest // an uncompressed layer: the same bytes
	}
	if o.Digest != nil && b.Digest != *o.Digest {
		return fail(fmt.Errorf("blob %s: content has digest %s: refused", o.Digest, b.Digest))
	}
	if o.Size >= 0 && !o.Compress && size != o.Size {
		return fail(fmt.Errorf("blob %s: %d bytes, expected %d: refused", b.Digest, size, o.Size))
	}
	return s.commit(f, b)
}

// commit renames the checked temp file f into blobs/ (or drops it when
// the store has the blob already) and records a layer's diffID.
func (s *Store) commit(f *os.File, b Blob) (Blob, error) {
	fail := func(err error) (Blob, error) {
		f.Close()
		os.Remove(f.Name())
		return Blob{}, err
	}
	if s.HasBlob(b.Digest, b.Size) {
		if _, _, ok := s.readRecord(b.Digest); b.Layer && !ok {
			s.writeRecord(b.Digest, b.DiffID, b.Unpacked)
		}
		f.Close()
		os.Remove(f.Name())
		return b, nil
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return Blob{}, err
	}
	if err := os.Rename(f.Name(), s.blobPath(b.Digest)); err != nil {
		os.Remove(f.Name())
		return Blob{}, err
	}
	b.New = true
	if b.Layer {
		// Before the blob is referenced, so a blob in an image always has one
		// (unless a crash came between: then it is recomputed).
		s.writeRecord(b.Digest, b.DiffID, b.Unpacked)
	}
	return b, syncDir(filepath.Dir(s.blobPath(b.Digest)))
}

// copyBlob stores r as is; a layer is also decompressed on the side (in
// another goroutine, so that copying, hashing and inflating overlap) to
// compute its diffID and check its entries. For an uncompressed layer the
// diffID is the blob's digest: DiffID is left for the caller to fill.
func (s *Store) copyBlob(r io.Reader, w io.Writer, layer bool) (int64, Blob, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(512)
	comp, isTar := sniff(head)
	if !layer && comp == "" && !isTar {
		n, err := io.Copy(w, br)
		return n, Blob{}, err
	}
	pr, pw := io.Pipe()
	type result struct {
		diff v1.Hash
		n    int64
		comp string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		d, n, c, err := s.scanLayer(pr, io.Discard, false)
		pr.CloseWithError(err)
		done <- result{d, n, c, err}
	}()
	n, err := io.Copy(io.MultiWriter(w, pw), br)
	pw.CloseWithError(err)
	res := <-done
	if res.err != nil {
		return 0, Blob{}, res.err
	}
	if err != nil {
		return 0, Blob{}, err
	}
	return n, Blob{Layer: true, DiffID: res.diff, Compression: res.comp, Unpacked: res.n}, nil
}

// compressLayer decompresses r, checks it as a layer, and writes it to w
// compressed as comp says (gzip: blocked, compressed and later inflated
// on all cores).
func (s *Store) compressLayer(r io.Reader, w io.Writer, comp string) (int64, Blob, error) {
	cw := &countWriter{w: w}
	var zw io.WriteCloser
	switch comp {
	case "", "gzip":
		comp, zw = "gzip", layer.NewGzipWriter(cw)
	case "zstd":
		enc, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return 0, Blob{}, err
		}
		zw = enc
	case "none":
		comp, zw = "", nopWriteCloser{cw}
	default:
		return 0, Blob{}, fmt.Errorf("unknown layer compression %q (gzip, zstd or none)", comp)
	}
	diff, un, _, err := s.scanLayer(r, zw, true)
	if err != nil {
		zw.Close()
		return 0, Blob{}, err
	}
	if err := zw.Close(); err != nil {
		return 0, Blob{}, err
	}
	return cw.n, Blob{Layer: true, DiffID: diff, Compression: comp, Unpacked: un}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// scanLayer decompresses r (detected as layer.Decompress does, so that
// what is checked here is what a snapshot unpacks), copies the tar to
// sink and returns its digest and compression, refusing hostile entry
// names and more than MaxLayerBytes. An uncompressed tar is only hashed
// when hashPlain is set (otherwise its digest is the blob's, known to the
// caller, and the returned one is zero).
func (s *Store) scanLayer(r io.Reader, sink io.Writer, hashPlain bool) (v1.Hash, int64, string, error) {
	rc, lc, err := layer.Decompress(r)
	if err != nil {
		return v1.Hash{}, 0, "", fmt.Errorf("layer: %w", err)
	}
	defer rc.Close()
	comp := string(lc)
	if lc == layer.None {
		comp = ""
	}
	max := s.MaxLayerBytes
	if max <= 0 {
		max = 64 << 30
	}
	var h hash.Hash
	if comp != "" || hashPlain {
		h = sha256.New()
		sink = io.MultiWriter(h, sink)
	}
	lim := &io.LimitedReader{R: rc, N: max + 1}
	tee := io.TeeReader(lim, sink)
	tr := tar.NewReader(tee)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if lim.N <= 0 {
				return v1.Hash{}, 0, "", fmt.Errorf("%w: more than %d bytes uncompressed", ErrHostileLayer, max)
			}
			return v1.Hash{}, 0, "", fmt.Errorf("layer is not a valid tar: %v", err)
		}
		if err := CheckEntry(hdr); err != nil {
			return v1.Hash{}, 0, "", err
		}
	}
	// The trailer (zero blocks, padding) belongs to the diffID too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return v1.Hash{}, 0, "", err
	}
	if lim.N <= 0 {
		return v1.Hash{}, 0, "", fmt.Errorf("%w: more than %d bytes uncompressed", ErrHostileLayer, max)
	}
	var diff v1.Hash
	if h != nil {
		diff = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	}
	return diff, max + 1 - lim.N, comp, nil
}

// CheckEntry refuses a tar entry whose name or hardlink target is absolute
// or climbs out with "..": such a layer can only be an attack. (Symlink
// targets may be absolute; they are resolved inside the rootfs on apply.)
func CheckEntry(hdr *tar.Header) error {
	bad := func(p string) bool {
		if strings.HasPrefix(p, "/") {
			return true
		}
		for _, c := range strings.Split(p, "/") {
			if c == ".." {
				return true
			}
		}
		return false
	}
	if bad(hdr.Name) || path.Clean(hdr.Name) == ".." {
		return fmt.Errorf("%w: entry %q escapes the rootfs", ErrHostileLayer, hdr.Name)
	}
	if hdr.Typeflag == tar.TypeLink && bad(hdr.Linkname) {
		return fmt.Errorf("%w: hardlink %q -> %q escapes the rootfs", ErrHostileLayer, hdr.Name, hdr.Linkname)
	}
	// An id chown cannot take as itself (uid_t is 32-bit; -1 is "leave
	// it") would unpack as root: refused here as layer.Apply refuses it.
	if id := func(n int) bool { return n >= 0 && n < 1<<32-1 }; !id(hdr.Uid) || !id(hdr.Gid) {
		return fmt.Errorf("%w: entry %q has owner %d:%d, out of range", ErrHostileLayer, hdr.Name, hdr.Uid, hdr.Gid)
	}
	return nil
}

// sniff tells a blob's compression from its first bytes, and whether the
// bytes look like an uncompressed tar.
func sniff(head []byte) (comp string, isTar bool) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip", false
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", false
	case len(head) >= 262 && bytes.HasPrefix(head[257:], []byte("ustar")):
		return "", true
	}
	return "", false
}

// Decompress wraps r in a gzip or zstd reader when its first bytes say so.
func Decompress(r io.Reader) (io.ReadCloser, string, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(4)
	comp, _ := sniff(head)
	switch comp {
	case "gzip":
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, "", err
		}
		return zr, comp, nil
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, "", err
		}
		return zr.IOReadCloser(), comp, nil
	}
	return io.NopCloser(br), "", nil
}

func short(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}

type countReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.fn(c.n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
