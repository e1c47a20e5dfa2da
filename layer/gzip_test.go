package layer

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"io"
	"math/rand"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// gzipData is compressible but not trivially so: words from a small
// vocabulary with random bytes mixed in.
func gzipData(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	words := []string{"usr/", "bin/", "lib/", "x86_64-linux-gnu", ".so.6", "\x00\x00\x00\x00", "ustar", "0000644"}
	var b bytes.Buffer
	for b.Len() < n {
		if r.Intn(4) == 0 {
			b.WriteByte(byte(r.Intn(256)))
		} else {
			b.WriteString(words[r.Intn(len(words))])
		}
	}
	return b.Bytes()[:n]
}

func blockedGzip(t testing.TB, data []byte) []byte {
	var out bytes.Buffer
	w := NewGzipWriter(&out)
	// Odd write sizes: block boundaries must not depend on them.
	for p := data; len(p) > 0; {
		n := min(len(p), 1+len(p)%777777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// stdInflate is what any gzip reader makes of z (Go's standard library,
// multistream as gzip(1)).
func stdInflate(z []byte) ([]byte, error) {
	zr, err := stdgzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func ourInflate(z []byte) ([]byte, Compression, error) {
	rc, c, err := Decompress(bytes.NewReader(z))
	if err != nil {
		return nil, c, err
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	return out, c, err
}

// members counts the gzip members of a blocked stream by their headers.
func members(t *testing.T, z []byte) int {
	n := 0
	for len(z) > 0 {
		size, ok := memberSize(z)
		if !ok || size > len(z) {
			t.Fatalf("member %d: not a blocked gzip member", n)
		}
		z = z[size:]
		n++
	}
	return n
}

func TestBlockedGzipRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 1000, memberInput - 1, memberInput, memberInput + 1, 3*memberInput + 12345} {
		data := gzipData(size, int64(size))
		z := blockedGzip(t, data)
		if want := max(1, (size+memberInput-1)/memberInput); members(t, z) != want {
			t.Fatalf("%d bytes: %d members, want %d", size, members(t, z), want)
		}
		if z2 := blockedGzip(t, data); !bytes.Equal(z, z2) {
			t.Fatalf("%d bytes: two compressions differ", size)
		}
		got, c, err := ourInflate(z)
		if err != nil || c != Gzip || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: Decompress gave %d bytes (%s), err %v", size, len(got), c, err)
		}
		if std, err := stdInflate(z); err != nil || !bytes.Equal(std, data) {
			t.Fatalf("%d bytes: a standard gzip reader gives %d bytes, err %v", size, len(std), err)
		}
	}
}

// Whatever is done to a blocked stream, Decompress either fails or yields
// exactly what a standard gzip reader yields: the diffID checked on load
// is of the bytes every other tool (and the snapshot) unpacks.
func TestBlockedGzipTampered(t *testing.T) {
	data := gzipData(3*memberInput+500, 1)
	z := blockedGzip(t, data)
	first, _ := memberSize(z)
	var foreign bytes.Buffer
	fw := stdgzip.NewWriter(&foreign)
	fw.Write([]byte("a foreign member after berth's"))
	fw.Close()
	cases := map[string]func([]byte) []byte{
		"header size too big": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:], uint32(first+1))
			return b
		},
		"header size too small": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:], uint32(first-1))
			return b
		},
		"header size huge": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16:], 1<<31)
			return b
		},
		"crc": func(b []byte) []byte {
			b[first-8] ^= 1
			return b
		},
		"trailer size": func(b []byte) []byte {
			b[first-4] ^= 1
			return b
		},
		"trailer size huge": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[first-4:], 1<<30)
			return b
		},
		"deflate data": func(b []byte) []byte {
			b[first/2] ^= 0x40
			return b
		},
		"truncated": func(b []byte) []byte { return b[:len(b)-100] },
		"truncated header": func(b []byte) []byte {
			return append(b, z[:10]...)
		},
		"trailing garbage":     func(b []byte) []byte { return append(b, "garbage"...) },
		"foreign member":       func(b []byte) []byte { return append(b, foreign.Bytes()...) },
		"foreign member first": func(b []byte) []byte { return append(append([]byte{}, foreign.Bytes()...), b...) },
		"second header not berth's": func(b []byte) []byte {
			b[first+12] = 'X'
			return b
		},
		"fhcrc flag": func(b []byte) []byte {
			b[first+3] |= 2
			return b
		},
	}
	for name, mutate := range cases {
		bad := mutate(append([]byte{}, z...))
		got, _, err := ourInflate(bad)
		std, stdErr := stdInflate(bad)
		switch {
		case err == nil && stdErr != nil:
			t.Errorf("%s: accepted, a standard reader says %v", name, stdErr)
		case err == nil && !bytes.Equal(got, std):
			t.Errorf("%s: %d bytes, a standard reader gives %d other bytes", name, len(got), len(std))
		}
		if name == "foreign member" && (err != nil || !bytes.Equal(got, append(append([]byte{}, data...), "a foreign member after berth's"...))) {
			t.Errorf("%s: err %v, %d bytes", name, err, len(got))
		}
	}
}

// FuzzBlockedGzip: for any input, Decompress agrees with a standard gzip
// reader or fails.
func FuzzBlockedGzip(f *testing.F) {
	f.Add(blockedGzip(f, gzipData(100, 1)))
	f.Add(blockedGzip(f, nil))
	two := blockedGzip(f, gzipData(memberInput+10, 2))
	f.Add(two)
	f.Add(two[:len(two)-3])
	f.Fuzz(func(t *testing.T, z []byte) {
		if !bytes.HasPrefix(z, magicGzip) {
			return // not gzip: nothing to compare with
		}
		got, _, err := ourInflate(z)
		if err != nil {
			return
		}
		std, stdErr := stdInflate(z)
		if stdErr != nil || !bytes.Equal(got, std) {
			t.Fatalf("Decompress gave %d bytes, a standard reader %d bytes, err %v", len(got), len(std), stdErr)
		}
	})
}

// Closing early stops the goroutines without reading on.
func TestBlockedGzipCloseEarly(t *testing.T) {
	z := blockedGzip(t, gzipData(8*memberInput, 3))
	rc, _, err := Decompress(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := rc.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// BenchmarkInflate compares a blocked gzip layer with the single stream
// pgzip writes, on the benchmark layer.
func BenchmarkInflate(b *testing.B) {
	data, err := os.ReadFile(benchLayer(b))
	if err != nil {
		b.Fatal(err)
	}
	var single bytes.Buffer
	zw, _ := pgzip.NewWriterLevel(&single, pgzip.BestSpeed)
	zw.Write(data)
	zw.Close()
	for name, z := range map[string][]byte{"blocked": blockedGzip(b, data), "single": single.Bytes()} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				rc, _, err := Decompress(bytes.NewReader(z))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}

// zstd is inflated ahead of the reader: all of it arrives, in order, and
// closing early is clean.
func TestZstdReadAhead(t *testing.T) {
	data := gzipData(5*memberInput+7, 4)
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	got, c, err := ourInflate(z.Bytes())
	if err != nil || c != Zstd || !bytes.Equal(got, data) {
		t.Fatalf("zstd: %d bytes (%s), err %v", len(got), c, err)
	}
	if _, _, err := ourInflate(z.Bytes()[:z.Len()/2]); err == nil {
		t.Fatal("truncated zstd stream read without an error")
	}
	rc, _, err := Decompress(bytes.NewReader(z.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(rc, make([]byte, 100))
	rc.Close()
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
