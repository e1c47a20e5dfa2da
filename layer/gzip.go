package layer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// Blocked gzip. Inflate cannot be split across cores: every block may
// refer back into the one before. So berth writes gzip layers as a series
// of gzip members (RFC 1952 allows any number, and every gzip reader reads
// them as one stream), each holding memberInput bytes of the tar with no
// history shared between members, and each naming its own compressed
// length in an FEXTRA subfield ("Br", like BGZF's "BC"). Both compressing
// and inflating such a stream then spread over all cores. A stream or
// member without that exact header is inflated sequentially, so what
// Decompress yields is always what any gzip reader yields for the same
// bytes, or an error.
const (
	memberInput  = 1 << 20 // tar bytes per member berth writes
	memberHeader = 20      // gzip header with the "Br" subfield
	memberMaxOut = 8 << 20 // a member inflating to more is refused
	memberMaxIn  = memberMaxOut + memberMaxOut/1024 + 64
)

// memberSize returns the length of the member whose header starts h, or
// false when h is not the header berth writes.
func memberSize(h []byte) (int, bool) {
	if len(h) < memberHeader || !bytes.Equal(h[:4], []byte{0x1f, 0x8b, 8, 4}) ||
		!bytes.Equal(h[10:16], []byte{8, 0, 'B', 'r', 4, 0}) {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint32(h[16:20]))
	// Smallest: header, an empty final block (2 bytes), CRC and size.
	if n < memberHeader+2+8 || n > memberMaxIn {
		return 0, false
	}
	return n, true
}

var bufPool sync.Pool // *[]byte, member inputs and outputs

func getBuf(n int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n, max(n, memberInput+memberInput/8))
}

func putBuf(b []byte) {
	if cap(b) >= memberInput {
		bufPool.Put(&b)
	}
}

// NewGzipWriter returns a writer that compresses into w as blocked gzip
// (flate level BestSpeed, members compressed on all cores). The output is
// a function of the input only. Close flushes; it does not close w.
func NewGzipWriter(w io.Writer) io.WriteCloser {
	procs := runtime.GOMAXPROCS(0)
	g := &gzipWriter{
		w:     w,
		block: getBuf(memberInput)[:0],
		queue: make(chan chan []byte, 2*procs),
		sem:   make(chan struct{}, procs),
		done:  make(chan struct{}),
	}
	go g.loop()
	return g
}

type gzipWriter struct {
	w      io.Writer
	block  []byte
	queue  chan chan []byte // members being compressed, in input order
	sem    chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	err    error
	wrote  bool
	closed bool
}

func (g *gzipWriter) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// loop writes the members to w in order.
func (g *gzipWriter) loop() {
	defer close(g.done)
	for ch := range g.queue {
		m := <-ch
		if g.failed() == nil {
			if _, err := g.w.Write(m); err != nil {
				g.mu.Lock()
				g.err = err
				g.mu.Unlock()
			}
		}
		putBuf(m)
	}
}

func (g *gzipWriter) Write(p []byte) (int, error) {
	if g.closed {
		return 0, errors.New("gzip: write after close")
	}
	n := 0
	for len(p) > 0 {
		if err := g.failed(); err != nil {
			return n, err
		}
		c := copy(g.block[len(g.block):memberInput], p)
		g.block = g.block[:len(g.block)+c]
		p = p[c:]
		n += c
		if len(g.block) == memberInput {
			g.flush()
		}
	}
	return n, nil
}

func (g *gzipWriter) flush() {
	blk := g.block
	g.block = getBuf(memberInput)[:0]
	g.wrote = true
	ch := make(chan []byte, 1)
	g.sem <- struct{}{}
	go func() {
		ch <- compressMember(blk)
		putBuf(blk)
		<-g.sem
	}()
	g.queue <- ch
}

// Close writes the last member (an empty one for empty input, so the
// output is always a gzip stream) and waits for all to be written.
func (g *gzipWriter) Close() error {
	if g.closed {
		return g.failed()
	}
	if len(g.block) > 0 || !g.wrote {
		g.flush()
	}
	g.closed = true
	close(g.queue)
	<-g.done
	return g.failed()
}

var flatePool sync.Pool // *flate.Writer at BestSpeed

func compressMember(blk []byte) []byte {
	out := bytes.NewBuffer(getBuf(memberHeader))
	fw, _ := flatePool.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(out, flate.BestSpeed)
	} else {
		fw.Reset(out)
	}
	// Writes to a bytes.Buffer cannot fail.
	fw.Write(blk)
	fw.Close()
	flatePool.Put(fw)
	m := out.Bytes()
	m = binary.LittleEndian.AppendUint32(m, crc32.ChecksumIEEE(blk))
	m = binary.LittleEndian.AppendUint32(m, uint32(len(blk)))
	// ID1 ID2 CM=deflate FLG=FEXTRA, MTIME 0, XFL 4 (fastest), OS 255
	// (unknown), XLEN 8, subfield "Br" of 4 bytes: the member's length.
	copy(m, []byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 4, 255, 8, 0, 'B', 'r', 4, 0})
	binary.LittleEndian.PutUint32(m[16:20], uint32(len(m)))
	return m
}

// memberReader inflates a blocked gzip stream: one goroutine cuts it into
// members, GOMAXPROCS workers inflate them, Read hands the results out in
// order. From the first member that is not berth's on, the rest of the
// stream goes through a sequential gzip reader.
type memberReader struct {
	items    chan memberItem // in stream order
	stop     chan struct{}
	produced chan struct{}
	cur, buf []byte
	tail     *gzip.Reader
	err      error
	once     sync.Once
}

type memberItem struct {
	res  chan memberResult // a member being inflated
	tail *gzip.Reader      // or: the rest of the stream
	err  error
}

type memberResult struct {
	out []byte
	err error
}

type memberJob struct {
	in  []byte
	res chan memberResult
}

func newMemberReader(br *bufio.Reader) *memberReader {
	procs := runtime.GOMAXPROCS(0)
	m := &memberReader{
		items:    make(chan memberItem, 2*procs),
		stop:     make(chan struct{}),
		produced: make(chan struct{}),
	}
	jobs := make(chan memberJob, procs)
	for range procs {
		go inflateMembers(jobs)
	}
	go m.produce(br, jobs)
	return m
}

func (m *memberReader) send(it memberItem) bool {
	select {
	case m.items <- it:
		return true
	case <-m.stop:
		return false
	}
}

func (m *memberReader) produce(br *bufio.Reader, jobs chan<- memberJob) {
	defer close(m.produced)
	defer close(m.items)
	defer close(jobs)
	for {
		h, err := br.Peek(memberHeader)
		if len(h) == 0 && err == io.EOF {
			return
		}
		n, ok := memberSize(h)
		if !ok {
			zr, err := gzip.NewReader(br)
			m.send(memberItem{tail: zr, err: err})
			return
		}
		in := getBuf(n)
		if _, err := io.ReadFull(br, in); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			m.send(memberItem{err: err})
			return
		}
		res := make(chan memberResult, 1)
		select {
		case jobs <- memberJob{in, res}:
		case <-m.stop:
			return
		}
		if !m.send(memberItem{res: res}) {
			return
		}
	}
}

func inflateMembers(jobs <-chan memberJob) {
	var zr gzip.Reader
	for j := range jobs {
		out, err := inflateMember(&zr, j.in)
		putBuf(j.in)
		j.res <- memberResult{out, err}
	}
}

// inflateMember inflates one whole member, which must end exactly where
// its header said and inflate to exactly what its trailer says (the
// gzip reader checks the CRC).
func inflateMember(zr *gzip.Reader, in []byte) ([]byte, error) {
	size := binary.LittleEndian.Uint32(in[len(in)-4:])
	if size > memberMaxOut {
		return nil, fmt.Errorf("member inflates to %d bytes, more than %d", size, memberMaxOut)
	}
	r := bytes.NewReader(in)
	if err := zr.Reset(r); err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out := getBuf(int(size))
	if _, err := io.ReadFull(zr, out); err != nil {
		putBuf(out)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		putBuf(out)
		if err == nil || err == io.EOF {
			err = errors.New("member holds more data than its trailer says")
		}
		return nil, err
	}
	if r.Len() != 0 {
		putBuf(out)
		return nil, fmt.Errorf("member ends %d bytes before the length its header gives", r.Len())
	}
	return out, nil
}

func (m *memberReader) Read(p []byte) (int, error) {
	for len(m.cur) == 0 {
		if m.err != nil {
			return 0, m.err
		}
		if m.tail != nil {
			return m.tail.Read(p)
		}
		if m.buf != nil {
			putBuf(m.buf)
			m.buf = nil
		}
		it, ok := <-m.items
		switch {
		case !ok:
			m.err = io.EOF
		case it.err != nil:
			m.err = fmt.Errorf("gzip: %w", it.err)
		case it.tail != nil:
			m.tail = it.tail
		default:
			r := <-it.res
			if r.err != nil {
				m.err = fmt.Errorf("gzip: %w", r.err)
				continue
			}
			m.cur, m.buf = r.out, r.out
		}
	}
	n := copy(p, m.cur)
	m.cur = m.cur[n:]
	return n, nil
}

// Close stops the goroutines; once it returns the underlying reader is
// no longer read.
func (m *memberReader) Close() error {
	m.once.Do(func() {
		close(m.stop)
		<-m.produced
		for it := range m.items {
			if it.res != nil {
				if r := <-it.res; r.out != nil {
					putBuf(r.out)
				}
			}
		}
		m.err = errors.New("gzip: read after close")
		m.cur = nil
	})
	return nil
}
